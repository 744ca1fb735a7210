package mount

import (
	"testing"
)

func TestInotifyOnTheOtherMountSeesChangesMadeThroughThisOne(t *testing.T) {
	s, a, b := twoHosts(t)
	s.Mkdir("/d")
	s.Set("/d/f", []byte("one\n"))
	bash(t, b.Dir(), "ls -l d/f >/dev/null") // the kernel knows d/f
	caughtUp(t, b)
	w := watch(t, b.Dir(), "d", "d/f")

	bash(t, a.Dir(), "echo two > d/f")
	lines := w.waitFor("CLOSE_WRITE,CLOSE d/f")
	eventually(t, "events on both the file and the directory watch", func() bool {
		lines = w.all()
		return count(lines, "MODIFY d/f") == 2 && count(lines, "CLOSE_WRITE,CLOSE d/f") == 2
	})

	bash(t, a.Dir(), "echo new > d/g")
	w.waitFor("CREATE d/g")
	w.waitFor("CLOSE_WRITE,CLOSE d/g")
	w.waitFor("MODIFY d/g")

	bash(t, a.Dir(), "rm d/g")
	w.waitFor("DELETE d/g")

	bash(t, a.Dir(), "mv d/f d/h")
	w.waitFor("MOVED_FROM d/f")
	w.waitFor("MOVED_TO d/h")
	w.waitFor("MOVE_SELF d/f") // the file watch follows the inode

	bash(t, a.Dir(), "mkdir d/sub && echo x > d/sub/x")
	w.waitFor("CREATE,ISDIR d/sub")
	bash(t, a.Dir(), "mv d/sub d/sub2")
	w.waitFor("MOVED_FROM,ISDIR d/sub")
	w.waitFor("MOVED_TO,ISDIR d/sub2")

	s.Set("/d/h", []byte("from another host\n"))
	w.waitFor("MODIFY d/h")

	bash(t, a.Dir(), "rm d/h")
	w.waitFor("DELETE d/h")
	w.waitFor("DELETE_SELF d/f")

	if got := mustRead(t, b.Dir()+"/d/sub2/x"); got != "x\n" {
		t.Errorf("d/sub2/x on b: %q", got)
	}
	t.Logf("events: %q", w.all())
}

func TestLocalChangesFireInotifyOnce(t *testing.T) {
	s, a, _ := twoHosts(t)
	s.Mkdir("/d")
	s.Set("/d/f", []byte("one\n"))
	caughtUp(t, a)
	w := watch(t, a.Dir(), "d")

	bash(t, a.Dir(), "echo two > d/f; echo new > d/k; mv d/k d/m; rm d/m; mkdir d/sub")
	// A change from elsewhere after them: once its events arrive, any
	// replay of the local ones would have arrived too.
	s.Set("/d/sentinel", []byte("x"))
	lines := w.waitFor("CLOSE_WRITE,CLOSE d/sentinel")
	for _, want := range []string{
		"CLOSE_WRITE,CLOSE d/f", "CREATE d/k", "CLOSE_WRITE,CLOSE d/k",
		"MOVED_FROM d/k", "MOVED_TO d/m", "DELETE d/m", "CREATE,ISDIR d/sub",
	} {
		if n := count(lines, want); n != 1 {
			t.Errorf("%q seen %d times, want once; all: %q", want, n, lines)
		}
	}
}
