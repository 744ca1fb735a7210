package mount

import (
	"path/filepath"
	"testing"
)

func TestEchoThroughOneMountIsReadThroughTheOther(t *testing.T) {
	s, a, b := twoHosts(t)
	bash(t, a.Dir(), "echo hello > greeting")
	if got, ok := storeBody(s, "/greeting"); !ok || got != "hello\n" {
		t.Fatalf("store has %q (%v), want %q", got, ok, "hello\n")
	}
	if got := mustRead(t, filepath.Join(b.Dir(), "greeting")); got != "hello\n" {
		t.Fatalf("read through b: %q, want %q", got, "hello\n")
	}
	bash(t, b.Dir(), "echo bye > greeting")
	if got := mustRead(t, filepath.Join(a.Dir(), "greeting")); got != "bye\n" {
		t.Fatalf("read through a: %q, want %q", got, "bye\n")
	}
}
