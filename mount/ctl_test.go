package mount

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/doozerfs/doozerfs/mount/internal/teststore"
)

func TestControlDirectoryIsFoundByNameButNotListed(t *testing.T) {
	s, a, _ := twoHosts(t)
	s.Set("/f", []byte("x"))
	if out := bash(t, a.Dir(), "ls -a"); strings.Contains(out, ".doozerfs") {
		t.Errorf("ls -a shows the control directory: %q", out)
	}
	if out := bash(t, a.Dir(), "ls .doozerfs"); out != "events\nrev\n" {
		t.Errorf("ls .doozerfs: %q", out)
	}
	for i := range 3 {
		rev := s.Set("/f", []byte(strconv.Itoa(i)))
		caughtUp(t, a)
		if got := mustRead(t, filepath.Join(a.Dir(), ".doozerfs/rev")); got != fmt.Sprintf("%d\n", rev) {
			t.Errorf(".doozerfs/rev = %q, want %d", got, rev)
		}
	}
	if out, err := run(t, a.Dir(), "bash", "-c", "echo 1 > .doozerfs/rev"); err == nil {
		t.Errorf("writing .doozerfs/rev succeeded: %q", out)
	}
}

func TestEventsFileStreamsChangesFromItsOpen(t *testing.T) {
	s, a, b := twoHosts(t)
	s.Set("/before", []byte("x"))
	fd, err := unix.Open(filepath.Join(b.Dir(), ".doozerfs/events"), unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 10)
	go func() {
		// Only this goroutine closes fd, once the unmount has ended its
		// read: closed earlier, its number could be reused under it.
		defer unix.Close(fd)
		buf := make([]byte, 4096)
		for {
			n, err := unix.Read(fd, buf) // blocks until there are lines
			if err != nil || n == 0 {
				close(lines)
				return
			}
			for _, l := range strings.SplitAfter(string(buf[:n]), "\n") {
				if l != "" {
					lines <- l
				}
			}
		}
	}()
	bash(t, a.Dir(), "mkdir d && echo hi > d/f && mv d/f d/g")
	r1 := s.Rev()
	want := []string{
		fmt.Sprintf("%d mkdir /d\n", r1-2),
		fmt.Sprintf("%d set /d/f\n", r1-1),
		fmt.Sprintf("%d set /d/g\n", r1),
		fmt.Sprintf("%d del /d/f\n", r1),
	}
	for _, w := range want {
		if got := <-lines; got != w {
			t.Errorf("events: %q, want %q", got, w)
		}
	}
}

func TestEventsFileSupportsPollAndInterruptedReadsFailWithEINTR(t *testing.T) {
	requireTool(t, "python3")
	s, a, _ := twoHosts(t)
	cmd, stdin, out := startBash(t, a.Dir(), `python3 -u -c '
import os, select, sys
fd = os.open(".doozerfs/events", os.O_RDONLY)
p = select.poll()
p.register(fd, select.POLLIN)
print("idle", p.poll(0))
sys.stdin.readline()
print("ready", [ev & select.POLLIN for _, ev in p.poll(10000)])
print(os.read(fd, 100).decode(), end="")
import signal
def alarm(*_): raise TimeoutError("interrupted")
signal.signal(signal.SIGALRM, alarm)
signal.setitimer(signal.ITIMER_REAL, 0.2)
try:
    os.read(fd, 100)
except TimeoutError as e:
    print(e)
'`)
	if got := readLine(t, out); got != "idle []" {
		t.Fatalf("poll before any change: %q", got)
	}
	rev := s.Set("/x", []byte("x"))
	stdin.Write([]byte("\n"))
	if got := readLine(t, out); got != "ready [1]" {
		t.Errorf("poll after a change: %q", got)
	}
	if got := readLine(t, out); got != fmt.Sprintf("%d set /x", rev) {
		t.Errorf("read after poll: %q", got)
	}
	if got := readLine(t, out); got != "interrupted" {
		t.Errorf("interrupted read: %q", got)
	}
	cmd.Wait()
}

func TestRootMountsASubtree(t *testing.T) {
	s := teststore.New()
	s.Set("/sub/a", []byte("a"))
	s.Set("/other", []byte("o"))
	opts := DefaultOptions()
	opts.Root = "/sub"
	m := mountAt(t, s, opts)
	if out := bash(t, m.Dir(), "ls"); out != "a\n" {
		t.Errorf("ls: %q", out)
	}
	bash(t, m.Dir(), "echo b > b && mkdir d && mv b d/")
	if got, _ := storeBody(s, "/sub/d/b"); got != "b\n" {
		t.Errorf("/sub/d/b holds %q", got)
	}
	caughtUp(t, m)
	w := watch(t, m.Dir(), ".")
	s.Set("/other", []byte("outside"))
	s.Set("/sub/a", []byte("inside"))
	lines := w.waitFor("CLOSE_WRITE,CLOSE a")
	if len(lines) != 3 { // OPEN, MODIFY, CLOSE_WRITE of a only
		t.Errorf("events: %q", lines)
	}
}

func TestEphemeralXattrBindsTheFileToTheSessionLease(t *testing.T) {
	requireTool(t, "setfattr")
	requireTool(t, "getfattr")
	s, a, b := twoHosts(t)
	s.Set("/svc/web1", []byte("10.0.0.1:80\n"))
	bash(t, a.Dir(), "setfattr -n user.doozerfs.ephemeral -v 1 svc/web1")
	id, _ := s.SessionLease(context.Background())
	_, st, _ := s.Tree().View().Get("/svc/web1")
	if st.Lease != id {
		t.Fatalf("lease %d, want the session's %d", st.Lease, id)
	}
	out := bash(t, b.Dir(), "getfattr -d svc/web1")
	if !strings.Contains(out, fmt.Sprintf(`user.doozerfs.lease="%d"`, id)) || !strings.Contains(out, fmt.Sprintf(`user.doozerfs.rev="%d"`, st.Rev)) {
		t.Errorf("getfattr -d: %q", out)
	}
	caughtUp(t, b)
	w := watch(t, b.Dir(), "svc")
	if _, err := s.ExpireSession(); err != nil {
		t.Fatal(err)
	}
	w.waitFor("DELETE svc/web1")
	if out := bash(t, a.Dir(), "ls svc"); out != "" {
		t.Errorf("ls svc after the lease expired: %q", out)
	}

	s.Set("/svc/web2", []byte("x"))
	bash(t, a.Dir(), "setfattr -n user.doozerfs.ephemeral -v 1 svc/web2 && setfattr -n user.doozerfs.ephemeral -v 0 svc/web2")
	if out := bash(t, a.Dir(), "getfattr -d svc/web2"); strings.Contains(out, "lease") {
		t.Errorf("lease still shown after unbinding: %q", out)
	}
}
