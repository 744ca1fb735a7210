package integration

import (
	"bufio"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// event is one change as `doozerfs watch` prints it.
type event struct {
	rev  int64
	kind string // set, del, mkdir
	path string
	body string
}

func (e event) String() string {
	b := e.body
	if len(b) > 40 {
		b = b[:40] + "…"
	}
	return fmt.Sprintf("%d %s %s %d %q", e.rev, e.kind, e.path, len(e.body), b)
}

// storeWatch is a running `doozerfs watch GLOB --rev R`: every change
// the cluster applies from R on, as any client of the cluster sees it.
type storeWatch struct {
	t   testing.TB
	mu  sync.Mutex
	ev  []event
	c   chan struct{} // closed and replaced at each event and at the end
	err error         // why the stream ended
}

// watchStore starts `doozerfs watch glob --rev from`. Starting from an
// explicit revision, it misses nothing made after from-1, however long it
// takes to connect.
func (c *cluster) watchStore(glob string, from int64) *storeWatch {
	c.t.Helper()
	cmd := exec.Command(bin, "watch", glob, "--rev", strconv.FormatInt(from, 10), "--addr", c.addr)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	w := &storeWatch{t: c.t, c: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := w.parse(bufio.NewReader(stdout))
		w.mu.Lock()
		w.err = err
		close(w.c)
		w.c = make(chan struct{})
		w.mu.Unlock()
	}()
	c.t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		cmd.Wait()
	})
	return w
}

// parse reads "REV KIND PATH LEN\nBODY\n" records until the stream ends.
func (w *storeWatch) parse(r *bufio.Reader) error {
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		f := strings.Fields(line)
		if len(f) < 4 {
			return fmt.Errorf("watch: bad line %q", line)
		}
		rev, err1 := strconv.ParseInt(f[0], 10, 64)
		n, err2 := strconv.Atoi(f[len(f)-1])
		if err1 != nil || err2 != nil || n < 0 {
			return fmt.Errorf("watch: bad line %q", line)
		}
		body := make([]byte, n+1)
		if _, err := io.ReadFull(r, body); err != nil {
			return fmt.Errorf("watch: body of %q: %w", line, err)
		}
		ev := event{rev: rev, kind: f[1], path: strings.Join(f[2:len(f)-1], " "), body: string(body[:n])}
		w.mu.Lock()
		w.ev = append(w.ev, ev)
		close(w.c)
		w.c = make(chan struct{})
		w.mu.Unlock()
	}
}

// upTo waits until the stream has shown revision rev, and returns the
// events seen by then.
func (w *storeWatch) upTo(rev int64) []event {
	w.t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		evs, c, err := append([]event(nil), w.ev...), w.c, w.err
		w.mu.Unlock()
		if len(evs) > 0 && evs[len(evs)-1].rev >= rev {
			return evs
		}
		if err != nil {
			w.t.Fatalf("doozerfs watch ended before revision %d: %v", rev, err)
		}
		select {
		case <-c:
		case <-deadline.C:
			w.t.Fatalf("doozerfs watch: no revision %d within 20 s; saw %v", rev, evs)
		}
	}
}

// inotify is a running `inotifywait -m`, its events collected as lines
// "EVENTS PATH", PATH relative to the mountpoint.
type inotify struct {
	t     testing.TB
	mu    sync.Mutex
	lines []string
	c     chan struct{} // closed and replaced at each line
}

// watchInotify starts inotifywait -m on paths (relative to root) and
// waits until its watches are established.
func watchInotify(t testing.TB, root string, paths ...string) *inotify {
	t.Helper()
	requireTools(t, "inotifywait")
	args := []string{"-m", "--format", "%e %w%f"}
	for _, p := range paths {
		args = append(args, filepath.Join(root, p))
	}
	cmd := exec.Command("inotifywait", args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w := &inotify{t: t, c: make(chan struct{})}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "Watches established") {
				ready <- nil
				io.Copy(io.Discard, stderr)
				return
			}
		}
		ready <- fmt.Errorf("inotifywait ended before establishing its watches")
	}()
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if i := strings.IndexByte(line, ' '); i >= 0 {
				line = line[:i+1] + strings.TrimPrefix(strings.TrimPrefix(line[i+1:], root), "/")
			}
			w.mu.Lock()
			w.lines = append(w.lines, line)
			close(w.c)
			w.c = make(chan struct{})
			w.mu.Unlock()
		}
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("inotifywait did not establish its watches")
	}
	return w
}

func (w *inotify) all() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.lines...)
}

// waitCount waits until the line want has been seen at least n times,
// and returns all lines seen by then.
func (w *inotify) waitCount(want string, n int) []string {
	w.t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		lines, c := append([]string(nil), w.lines...), w.c
		w.mu.Unlock()
		if count(lines, want) >= n {
			return lines
		}
		select {
		case <-c:
		case <-deadline.C:
			w.t.Fatalf("inotify: %q not seen %d times within 20 s; saw %q", want, n, lines)
		}
	}
}

// waitFor waits until the line want has been seen.
func (w *inotify) waitFor(want string) []string {
	w.t.Helper()
	return w.waitCount(want, 1)
}

// count returns how many lines equal want.
func count(lines []string, want string) int {
	n := 0
	for _, l := range lines {
		if l == want {
			n++
		}
	}
	return n
}
