package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// bin is the doozerfs binary that TestMain builds.
var bin string

// raceFlags is the build flag of the race detector when the tests are
// built with it (race_test.go).
var raceFlags []string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "doozerfs-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin = filepath.Join(dir, "doozerfs")
	args := append([]string{"build"}, raceFlags...)
	args = append(args, "-o", bin, "github.com/doozerfs/doozerfs/cmd/doozerfs")
	build := exec.Command("go", args...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "go %s: %v\n", strings.Join(args, " "), err)
		return 1
	}
	if raceFlags != nil {
		// A program built with the race detector waits a second at exit
		// for late reports: every CLI command would take a second.
		os.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	}
	return m.Run()
}

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

// requireTools skips (or, with CI=true, fails) when a tool is missing.
func requireTools(t testing.TB, names ...string) {
	t.Helper()
	for _, name := range names {
		if _, err := exec.LookPath(name); err == nil {
			continue
		}
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed", name)
		}
		t.Skipf("%s is not installed", name)
	}
}

// daemon is a doozerfs child process, serve or mount, whose output goes
// to a file.
type daemon struct {
	name string
	cmd  *exec.Cmd
	log  string        // the file with its stdout and stderr
	done chan struct{} // closed once it has exited
	err  error         // how it exited, once done is closed
}

func startDaemon(t testing.TB, name, logPath string, args ...string) *daemon {
	t.Helper()
	out, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	d := &daemon{name: name, cmd: exec.Command(bin, args...), log: logPath, done: make(chan struct{})}
	d.cmd.Stdout, d.cmd.Stderr = out, out
	// Should the test binary die without its cleanups (a panic, a
	// timeout), the daemons unmount and go with it.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		d.err = d.cmd.Wait()
		close(d.done)
	}()
	return d
}

func (d *daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// signal sends sig and waits up to 20 s for the daemon to exit.
func (d *daemon) signal(sig syscall.Signal) error {
	if d.exited() {
		return d.err
	}
	d.cmd.Process.Signal(sig)
	select {
	case <-d.done:
		return d.err
	case <-time.After(20 * time.Second):
		return fmt.Errorf("%s did not exit within 20 s of %v", d.name, sig)
	}
}

// stop ends the daemon however it takes: SIGTERM, then SIGKILL. It
// returns how it exited after the SIGTERM.
func (d *daemon) stop() error {
	err := d.signal(syscall.SIGTERM)
	if !d.exited() {
		d.signal(syscall.SIGKILL)
	}
	return err
}

func (d *daemon) output() string {
	b, _ := os.ReadFile(d.log)
	return string(b)
}

// cluster is one replica mounted at m1 by `doozerfs serve` and at m2 by
// `doozerfs mount`: two hosts.
type cluster struct {
	t       *testing.T
	addr    string
	data    string
	work    string
	m1, m2  string
	serve   *daemon   // the replica (and the mount m1)
	mount   *daemon   // the client mount m2
	daemons []*daemon // every daemon started, for the logs
}

// newCluster starts both daemons and waits until both mounts are live.
// Whatever happens, the daemons are stopped and both mountpoints
// unmounted when the test ends.
func newCluster(t *testing.T) *cluster {
	t.Helper()
	requireFuse(t)
	work := t.TempDir()
	c := &cluster{
		t:    t,
		addr: freeAddr(t),
		data: filepath.Join(work, "data"),
		work: work,
		m1:   filepath.Join(work, "m1"),
		m2:   filepath.Join(work, "m2"),
	}
	for _, d := range []string{c.data, c.m1, c.m2} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(c.cleanup)
	c.startServe()
	c.startMount()
	return c
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startServe starts the replica with its mount at m1 and waits until the
// mount is live.
func (c *cluster) startServe() {
	c.t.Helper()
	c.serve = startDaemon(c.t, "serve", filepath.Join(c.work, fmt.Sprintf("serve-%d.log", len(c.daemons))),
		"serve", "--addr", c.addr, "--data", c.data, "--name", "host1", "--mount", c.m1, "--log-level", "debug")
	c.daemons = append(c.daemons, c.serve)
	c.waitLive(c.serve, c.m1)
	c.waitLeader()
}

// waitLeader waits until the replica knows a leader (doozerfs status), so
// that a client mount started now can write at once.
func (c *cluster) waitLeader() {
	c.t.Helper()
	eventually(c.t, "the replica to know a leader", func() bool {
		out, err := c.cli("", "status")
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); err == nil && len(f) == 2 && f[0] == "leader" {
				return true
			}
		}
		return false
	})
}

// startMount starts the client mount at m2 and waits until it is live.
func (c *cluster) startMount() {
	c.t.Helper()
	c.mount = startDaemon(c.t, "mount", filepath.Join(c.work, fmt.Sprintf("mount-%d.log", len(c.daemons))),
		"mount", c.m2, "--addr", c.addr, "--log-level", "debug")
	c.daemons = append(c.daemons, c.mount)
	c.waitLive(c.mount, c.m2)
}

// waitLive waits until dir is a doozerfs mount whose .doozerfs/rev can be
// read, failing at once if d exits.
func (c *cluster) waitLive(d *daemon, dir string) {
	c.t.Helper()
	eventually(c.t, dir+" to be mounted", func() bool {
		if d.exited() {
			c.t.Fatalf("%s exited before %s was mounted: %v\n%s", d.name, dir, d.err, d.output())
		}
		if !mounted(c.t, dir) {
			return false
		}
		_, err := os.ReadFile(filepath.Join(dir, ".doozerfs", "rev"))
		return err == nil
	})
}

func (c *cluster) cleanup() {
	for _, d := range []*daemon{c.mount, c.serve} {
		if d == nil || d.exited() {
			continue
		}
		if err := d.stop(); err != nil {
			c.t.Errorf("doozerfs %s did not stop cleanly on SIGTERM: %v", d.name, err)
		}
	}
	for _, m := range []string{c.m1, c.m2} {
		exec.Command("fusermount3", "-uz", m).Run()
	}
	for _, d := range c.daemons {
		out := d.output()
		if strings.Contains(out, "WARNING: DATA RACE") {
			c.t.Errorf("the race detector found a race in %s", d.name)
		}
		if c.t.Failed() || os.Getenv("INTEGRATION_LOGS") != "" {
			c.t.Logf("%s output:\n%s", d.name, out)
		}
	}
}

// mounted reports whether dir is a mount point of a doozerfs file system
// (/proc/self/mountinfo).
func mounted(t testing.TB, dir string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || unescapeMountinfo(f[4]) != dir {
			continue
		}
		for i, x := range f {
			if x == "-" && i+1 < len(f) && f[i+1] == "fuse.doozerfs" {
				return true
			}
		}
	}
	return false
}

// unescapeMountinfo undoes the octal escapes (\040 for a space) of
// /proc/self/mountinfo.
func unescapeMountinfo(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// eventually polls cond until it holds, failing the test after 20 s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// cli runs a doozerfs client command against the cluster, with stdin,
// and returns its standard output.
func (c *cluster) cli(stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(args, "--addr", c.addr)...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("doozerfs %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// mustCLI is cli that fails the test on error.
func (c *cluster) mustCLI(stdin string, args ...string) string {
	c.t.Helper()
	out, err := c.cli(stdin, args...)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

// rev returns the replica's revision (doozerfs rev).
func (c *cluster) rev() int64 {
	c.t.Helper()
	return parseRev(c.t, c.mustCLI("", "rev"))
}

func parseRev(t testing.TB, s string) int64 {
	t.Helper()
	rev, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		t.Fatalf("not a revision: %q", s)
	}
	return rev
}

// mountRev returns the revision applied at a mount (.doozerfs/rev).
func mountRev(t testing.TB, dir string) int64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, ".doozerfs", "rev"))
	if err != nil {
		t.Fatal(err)
	}
	return parseRev(t, string(b))
}

// waitRev waits until the mount at dir has applied rev.
func waitRev(t testing.TB, dir string, rev int64) {
	t.Helper()
	eventually(t, fmt.Sprintf("%s to apply revision %d", dir, rev), func() bool { return mountRev(t, dir) >= rev })
}

// sh runs a bash script in dir and returns its combined output.
func sh(dir, script string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{"-c", script, "bash"}, args...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// mustSh runs a bash script in dir and fails the test if it fails.
func mustSh(t testing.TB, dir, script string, args ...string) string {
	t.Helper()
	out, err := sh(dir, script, args...)
	if err != nil {
		t.Fatalf("in %s: bash -c %q: %v\n%s", dir, script, err, out)
	}
	return out
}

// read reads a file through a mount and fails the test on error.
func read(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// errnoOf returns the errno inside err, or 0.
func errnoOf(err error) unix.Errno {
	var e unix.Errno
	if errors.As(err, &e) {
		return e
	}
	return 0
}
