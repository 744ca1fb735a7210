package integration

import (
	"testing"
)

func TestInotifyOnTheClientMountFiresForChangesMadeThroughTheOtherMountAndTheCLI(t *testing.T) {
	c := newCluster(t)
	mustSh(t, c.m1, "mkdir d && echo one > d/f")
	waitRev(t, c.m2, c.rev())
	// One watcher on the directory and one on the file: a change to d/f
	// shows on both, so twice.
	w := watchInotify(t, c.m2, "d", "d/f")

	// Through the replica's mount.
	mustSh(t, c.m1, "echo two > d/f")
	w.waitCount("MODIFY d/f", 2)
	w.waitCount("CLOSE_WRITE,CLOSE d/f", 2)

	mustSh(t, c.m1, "echo new > d/g")
	w.waitFor("CREATE d/g")
	w.waitFor("MODIFY d/g")
	w.waitFor("CLOSE_WRITE,CLOSE d/g")
	mustSh(t, c.m1, "rm d/g")
	w.waitFor("DELETE d/g")

	// Through the command line.
	c.mustCLI("three\n", "set", "/d/f", "-1")
	w.waitCount("MODIFY d/f", 4)
	w.waitCount("CLOSE_WRITE,CLOSE d/f", 4)

	c.mustCLI("made by the CLI\n", "add", "/d/k")
	w.waitFor("CREATE d/k")
	w.waitFor("CLOSE_WRITE,CLOSE d/k")
	c.mustCLI("", "del", "/d/k", "-1")
	w.waitFor("DELETE d/k")

	c.mustCLI("", "mkdir", "/d/sub")
	w.waitFor("CREATE,ISDIR d/sub")

	// A rename through the replica's mount (the CLI has no rename). The
	// file's watch follows the inode and keeps its first name.
	mustSh(t, c.m1, "mv d/f d/h")
	w.waitFor("MOVED_FROM d/f")
	w.waitFor("MOVED_TO d/h")
	w.waitFor("MOVE_SELF d/f")

	mustSh(t, c.m1, "mv d/sub d/sub2")
	w.waitFor("MOVED_FROM,ISDIR d/sub")
	w.waitFor("MOVED_TO,ISDIR d/sub2")

	// Its deletion, through the CLI: the directory's watch sees the
	// name go, the file's its inode.
	c.mustCLI("", "del", "/d/h", "-1")
	w.waitFor("DELETE d/h")
	w.waitFor("DELETE_SELF d/f")

	if got := mustSh(t, c.m2, "ls d"); got != "sub2\n" {
		t.Errorf("ls m2/d at the end: %q, want sub2", got)
	}
	t.Logf("events: %q", w.all())
}

func TestAChangeMadeThroughTheClientMountFiresInotifyThereOnce(t *testing.T) {
	c := newCluster(t)
	mustSh(t, c.m1, "mkdir d && echo one > d/f")
	waitRev(t, c.m2, c.rev())
	w := watchInotify(t, c.m2, "d")

	mustSh(t, c.m2, "echo two > d/f; echo new > d/k; mv d/k d/m; rm d/m; mkdir d/sub")
	// A change from the other host after them: once its events arrive
	// here, any replay of the local ones would have arrived too.
	mustSh(t, c.m1, "echo x > d/sentinel")
	lines := w.waitFor("CLOSE_WRITE,CLOSE d/sentinel")
	if n := count(lines, "MODIFY d/f"); n != 2 {
		t.Errorf("MODIFY d/f seen %d times, want twice (truncate, write); all: %q", n, lines)
	}
	// (echo's O_TRUNC and its write each fire IN_MODIFY, locally too.)
	for _, want := range []string{
		"OPEN d/f", "CLOSE_WRITE,CLOSE d/f", "CREATE d/k", "CLOSE_WRITE,CLOSE d/k",
		"MOVED_FROM d/k", "MOVED_TO d/m", "DELETE d/m", "CREATE,ISDIR d/sub",
	} {
		if n := count(lines, want); n != 1 {
			t.Errorf("%q seen %d times, want once; all: %q", want, n, lines)
		}
	}
}
