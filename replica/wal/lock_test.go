package wal

import (
	"errors"
	"strings"
	"testing"
)

func TestASecondOpenerOfADataDirIsRefusedNamingTheDir(t *testing.T) {
	dir := t.TempDir()
	d, err := OpenDataDir(dir, smallSegments)
	if err != nil {
		t.Fatalf("OpenDataDir: %v", err)
	}
	_, err = OpenDataDir(dir, smallSegments)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second OpenDataDir: got %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), dir) {
		t.Fatalf("message %q does not name %s", err, dir)
	}
	if _, err := ImportSnapshot(dir, strings.NewReader(""), Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("ImportSnapshot into a data dir in use: got %v, want ErrLocked", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d, err = OpenDataDir(dir, smallSegments)
	if err != nil {
		t.Fatalf("OpenDataDir after Close: %v", err)
	}
	d.Close()
}

func TestASecondOpenerOfAWALDirIsRefused(t *testing.T) {
	dir := t.TempDir()
	w := mustOpen(t, dir, smallSegments)
	defer w.Close()
	if _, err := Open(dir, smallSegments); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: got %v, want ErrLocked", err)
	}
}

func TestTheLockErrorNamesTheHoldingProcess(t *testing.T) {
	dir := t.TempDir()
	l, err := LockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	_, err = LockDir(dir)
	if err == nil || !strings.Contains(err.Error(), "held by process") {
		t.Fatalf("got %v, want the holder's pid in the message", err)
	}
}
