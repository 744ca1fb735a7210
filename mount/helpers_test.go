package mount

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/doozerfs/doozerfs/mount/internal/teststore"
)

// requireFuse skips the test when this machine cannot mount FUSE file
// systems, and fails it instead when CI=true.
func requireFuse(t testing.TB) {
	t.Helper()
	var missing []string
	if _, err := os.Stat("/dev/fuse"); err != nil {
		missing = append(missing, "/dev/fuse")
	}
	if _, err := exec.LookPath("fusermount3"); err != nil {
		missing = append(missing, "fusermount3")
	}
	if len(missing) == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("FUSE unavailable: missing %v", missing)
	}
	t.Skipf("FUSE unavailable: missing %v", missing)
}

// requireTool skips (or, with CI=true, fails) when a tool is missing.
func requireTool(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not installed", name)
	}
	t.Skipf("%s is not installed", name)
}

// mountAt mounts s at a new temporary directory and unmounts it when the
// test ends, whatever happens.
func mountAt(t testing.TB, s Store, opts Options) *Mounted {
	t.Helper()
	requireFuse(t)
	dir := t.TempDir()
	if opts.Logger == nil && testing.Verbose() && os.Getenv("MOUNT_DEBUG") != "" {
		opts.Logger = testLogger(t)
	}
	m, err := Mount(dir, s, opts)
	if err != nil {
		t.Fatalf("Mount: %v", err)
	}
	t.Cleanup(func() {
		m.Close()
		exec.Command("fusermount3", "-uz", dir).Run()
	})
	return m
}

// twoHosts returns one store mounted twice: a and b stand for two hosts.
func twoHosts(t testing.TB) (*teststore.Store, *Mounted, *Mounted) {
	t.Helper()
	s := teststore.New()
	a := mountAt(t, s, DefaultOptions())
	b := mountAt(t, s, DefaultOptions())
	return s, a, b
}

// run runs a command in dir with a deadline and returns its combined
// output. The command changes into dir itself: this process serves the
// mount, and a chdir into it between fork and exec (exec.Cmd.Dir) can
// deadlock, the forking threads holding the runtime's Ps while the child
// waits for the server.
func run(t testing.TB, dir string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{"-c", `cd "$0" && exec "$@"`, dir, name}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// startBash starts a bash script in dir with its stdin and its output
// (stdout and stderr) as pipes. It is killed when the test ends.
func startBash(t testing.TB, dir, script string) (*exec.Cmd, io.WriteCloser, *bufio.Reader) {
	t.Helper()
	cmd := exec.Command("bash", "-c", `cd "$0" && eval "$1"`, dir, script)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		pr.Close()
	})
	return cmd, stdin, bufio.NewReader(pr)
}

// readLine reads one line (without its newline).
func readLine(t testing.TB, r *bufio.Reader) string {
	t.Helper()
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("reading a line: %v (got %q)", err, line)
	}
	return strings.TrimSuffix(line, "\n")
}

// readAll reads until end of file.
func readAll(t testing.TB, r *bufio.Reader) string {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// bash runs a bash script in dir and fails the test if it fails.
func bash(t testing.TB, dir, script string) string {
	t.Helper()
	out, err := run(t, dir, "bash", "-c", script)
	if err != nil {
		t.Fatalf("bash -c %q: %v\n%s", script, err, out)
	}
	return out
}

// readFile reads a file with raw syscalls: the test process serves the
// mount, so it must not let the Go runtime's poller near its files.
func readFile(path string) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	var out []byte
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Read(fd, buf)
		if err != nil {
			return out, err
		}
		if n == 0 {
			return out, nil
		}
		out = append(out, buf[:n]...)
	}
}

// mustRead reads path or fails the test.
func mustRead(t testing.TB, path string) string {
	t.Helper()
	b, err := readFile(path)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	return string(b)
}

// storeBody returns the store's body at path ("" and false if missing).
func storeBody(s *teststore.Store, path string) (string, bool) {
	b, ok := s.Get(path)
	return string(b), ok
}

// eventually polls cond until it holds or 10 s pass.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// caughtUp waits until m's follower has handled every revision of its
// store up to now (replays and invalidations done).
func caughtUp(t testing.TB, m *Mounted) {
	t.Helper()
	rev := m.f.store.Tree().Rev()
	eventually(t, "the follower to catch up", func() bool { return m.f.inv.Load() >= rev })
}

// watcher is a running inotifywait -m, its events collected as lines
// "EVENTS PATH" (PATH relative to the mountpoint given at start).
type watcher struct {
	t     testing.TB
	cmd   *exec.Cmd
	root  string
	mu    sync.Mutex
	lines []string
	c     chan struct{} // closed and replaced at each line
}

// watch starts inotifywait -m on paths and waits until its watches are
// established.
func watch(t testing.TB, root string, paths ...string) *watcher {
	t.Helper()
	requireTool(t, "inotifywait")
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
	w := &watcher{t: t, cmd: cmd, root: root, c: make(chan struct{})}
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
	case <-time.After(10 * time.Second):
		t.Fatal("inotifywait did not establish its watches")
	}
	return w
}

// all returns the lines seen so far.
func (w *watcher) all() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.lines...)
}

// waitFor waits until a line equal to want has been seen, and returns all
// lines seen by then.
func (w *watcher) waitFor(want string) []string {
	w.t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		for _, l := range w.lines {
			if l == want {
				lines := append([]string(nil), w.lines...)
				w.mu.Unlock()
				return lines
			}
		}
		c := w.c
		w.mu.Unlock()
		select {
		case <-c:
		case <-deadline.C:
			w.t.Fatalf("inotify: no %q; saw %q", want, w.all())
		}
	}
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

// testLogger logs through t (set MOUNT_DEBUG=1 with -v).
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
