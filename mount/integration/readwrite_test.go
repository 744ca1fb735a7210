package integration

import (
	"path/filepath"
	"testing"
)

func TestAWriteOnOneHostIsReadOnTheOtherAndThroughTheCLI(t *testing.T) {
	c := newCluster(t)
	f1, f2 := filepath.Join(c.m1, "f"), filepath.Join(c.m2, "f")

	// Through the replica's mount: the replica has applied it when the
	// write returns, so the CLI reads it at once; the client mount as
	// soon as its mirror has applied that revision, and then at its
	// very next open.
	mustSh(t, c.m1, "echo x > f")
	if got := c.mustCLI("", "get", "/f"); got != "x\n" {
		t.Errorf("doozerfs get /f after echo x > m1/f: %q", got)
	}
	rev := c.rev()
	waitRev(t, c.m2, rev)
	if got := mustSh(t, c.m2, "cat f"); got != "x\n" {
		t.Errorf("cat m2/f: %q, want %q", got, "x\n")
	}

	// Through the client mount: its write returns once its own mirror
	// has applied it, which the replica did first.
	mustSh(t, c.m2, "echo y > f")
	if got := mustSh(t, c.m1, "cat f"); got != "y\n" {
		t.Errorf("cat m1/f right after echo y > m2/f: %q", got)
	}
	if got := c.mustCLI("", "get", "/f"); got != "y\n" {
		t.Errorf("doozerfs get /f after echo y > m2/f: %q", got)
	}
	if got := read(t, f2); got != "y\n" {
		t.Errorf("m2/f read back: %q", got)
	}

	// Through the CLI: both mounts.
	rev = parseRev(t, c.mustCLI("z\n", "set", "/f", "-1"))
	if got := mustSh(t, c.m1, "cat f"); got != "z\n" {
		t.Errorf("cat m1/f right after doozerfs set: %q", got)
	}
	waitRev(t, c.m2, rev)
	if got := mustSh(t, c.m2, "cat f"); got != "z\n" {
		t.Errorf("cat m2/f after doozerfs set: %q", got)
	}

	// A new file in a new directory, and its deletion.
	rev = parseRev(t, c.mustCLI("deep\n", "set", "/a/b/c", "0"))
	waitRev(t, c.m2, rev)
	if got := mustSh(t, c.m2, "cat a/b/c; ls a/b"); got != "deep\nc\n" {
		t.Errorf("m2 after doozerfs set /a/b/c: %q", got)
	}
	mustSh(t, c.m2, "rm a/b/c")
	if out, err := c.cli("", "get", "/a/b/c"); err == nil {
		t.Errorf("doozerfs get /a/b/c after rm on m2: %q, want NOENT", out)
	}
	if out, err := sh(c.m1, "cat a/b/c"); err == nil {
		t.Errorf("cat m1/a/b/c after rm on m2: %q, want an error", out)
	}
	if got := read(t, f1); got != "z\n" {
		t.Errorf("m1/f: %q", got)
	}
}
