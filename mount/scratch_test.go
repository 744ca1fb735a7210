package mount

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

func TestScratchTrace(t *testing.T) {
	if os.Getenv("SCRATCH") == "" {
		t.Skip()
	}
	var lines []string
	debugFUSE = func(msg any) {
		s := fmt.Sprint(msg)
		if strings.Contains(s, "security.") || strings.Contains(s, "Statfs") {
			return
		}
		lines = append(lines, s)
	}
	defer func() { debugFUSE = nil }()
	s, a, _ := twoHosts(t)
	s.Set("/existing", []byte("hello\n"))
	s.Set("/src", []byte("source\n"))
	lines = nil
	script := os.Getenv("SCRATCH")
	out, err := run(t, a.Dir(), "bash", "-c", script)
	t.Logf("out=%q err=%v", out, err)
	for _, l := range lines {
		t.Log(l)
	}
	for _, p := range []string{"/existing", "/new", "/f"} {
		b, ok := storeBody(s, p)
		t.Logf("%s: %q %v", p, b, ok)
	}
	t.Logf("rev %d", s.Rev())
}
