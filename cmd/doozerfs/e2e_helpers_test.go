package main

// Helpers of the end-to-end tests (e2e_test.go): they build the real
// binary once, run real `doozerfs serve` processes and run the client
// commands as child processes, the way a user's shell would.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/doozerfs/doozerfs/fs"
	"github.com/doozerfs/doozerfs/wire"
)

var (
	e2eOnce   sync.Once
	e2eDir    string // temporary directory holding the binary
	e2eBin    string // the binary built by buildBinary
	e2eBldErr error
)

// TestMain removes the binary the end-to-end tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	if e2eDir != "" {
		os.RemoveAll(e2eDir)
	}
	os.Exit(code)
}

// binary returns the path of the doozerfs binary, building it on first
// use with `go build` (with -race when the tests run with -race, so that
// a data race in the server fails the test that provoked it).
func binary(t *testing.T) string {
	t.Helper()
	e2eOnce.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			e2eBldErr = fmt.Errorf("no go tool in PATH: %w", err)
			return
		}
		e2eDir, err = os.MkdirTemp("", "doozerfs-e2e-")
		if err != nil {
			e2eBldErr = err
			return
		}
		e2eBin = filepath.Join(e2eDir, "doozerfs")
		args := []string{"build", "-o", e2eBin}
		if raceEnabled {
			args = append(args, "-race")
		}
		args = append(args, ".")
		out, err := exec.Command(goTool, args...).CombinedOutput()
		if err != nil {
			e2eBldErr = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	})
	if e2eBldErr != nil {
		t.Fatalf("building doozerfs: %v", e2eBldErr)
	}
	return e2eBin
}

// childEnv is the environment of every child process: this one's without
// any DOOZERFS_ variable (a secret or address set in the developer's shell
// must not leak into the tests), plus extra.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DOOZERFS_") && !strings.HasPrefix(kv, "GORACE=") {
			env = append(env, kv)
		}
	}
	// A binary built with -race sleeps 1 s at exit by default.
	env = append(env, "GORACE=atexit_sleep_ms=0")
	return append(env, extra...)
}

// syncBuffer is a bytes.Buffer that a child process writes while the test
// reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// freePort returns a TCP port on 127.0.0.1 that nobody listened on a
// moment ago. Another process may take it before the caller does; callers
// retry on "address already in use".
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

// dzServer is one `doozerfs serve` child process.
type dzServer struct {
	t      *testing.T
	addr   string
	data   string
	args   []string // extra serve flags
	cmd    *exec.Cmd
	stderr *syncBuffer
	exited chan struct{} // closed when the process has been waited for
	state  *os.ProcessState
}

const (
	startBound = 20 * time.Second // a server answers within this
	stopBound  = 10 * time.Second // SIGTERM ends a server within this, else SIGKILL
	runBound   = 60 * time.Second // a client command ends within this
)

// startServer runs `doozerfs serve --addr 127.0.0.1:PORT --data dataDir
// --name t1 extra…` (dataDir "" means a new t.TempDir()), waits until it
// answers HELLO and stops it at the end of the test.
func startServer(t *testing.T, dataDir string, extra ...string) *dzServer {
	t.Helper()
	s, err := tryStartServer(t, dataDir, extra...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tryStartServer is startServer returning the failure to start, with the
// server's output, as an error.
func tryStartServer(t *testing.T, dataDir string, extra ...string) (*dzServer, error) {
	t.Helper()
	bin := binary(t)
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	for attempt := 1; ; attempt++ {
		s := &dzServer{t: t, data: dataDir, args: extra, stderr: new(syncBuffer), exited: make(chan struct{})}
		s.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
		args := append([]string{"serve", "--addr", s.addr, "--data", dataDir, "--name", "t1"}, extra...)
		s.cmd = exec.Command(bin, args...)
		s.cmd.Env = childEnv()
		s.cmd.Stdout = s.stderr
		s.cmd.Stderr = s.stderr
		if err := s.cmd.Start(); err != nil {
			t.Fatalf("starting %v: %v", args, err)
		}
		go func() {
			s.cmd.Wait()
			s.state = s.cmd.ProcessState
			close(s.exited)
		}()
		t0 := time.Now()
		err := s.awaitReady()
		t.Logf("server %s ready after %v", s.addr, time.Since(t0))
		if err == nil {
			t.Cleanup(s.cleanup)
			t1 := time.Now()
			err := s.settle()
			t.Logf("server %s settled after %v", s.addr, time.Since(t1))
			if err != nil {
				return nil, fmt.Errorf("server %v: %v\nits output:\n%s", args, err, s.stderr.String())
			}
			return s, nil
		}
		s.kill()
		if strings.Contains(s.stderr.String(), "address already in use") && attempt < 5 {
			t.Logf("port of %s taken, retrying: %v", s.addr, err)
			continue
		}
		return nil, fmt.Errorf("server %v did not start: %v\nits output:\n%s", args, err, s.stderr.String())
	}
}

// awaitReady polls, for a bounded time, until the process has said it
// serves on its address and a client's HELLO there is answered (accepted,
// or refused for want of a secret: either way it is this server talking).
func (s *dzServer) awaitReady() error {
	deadline := time.Now().Add(startBound)
	banner := "serving on " + s.addr
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return fmt.Errorf("it exited: %v", s.state)
		default:
		}
		if strings.Contains(s.stderr.String(), banner) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			c, err := wire.Dial(ctx, []string{s.addr}, wire.Options{})
			cancel()
			if err == nil {
				c.Close()
				return nil
			}
			if k := fs.KindOf(err); k != fs.KindOther && k != fs.KindUnavailable {
				return nil
			}
		}
		time.Sleep(10 * time.Millisecond) // readiness polling, bounded by deadline
	}
	return errors.New("no answer within " + startBound.String())
}

// settle waits, for a bounded time, until the replica has recorded
// itself in /ctl/node/t1 (the leader's own system write, made soon after
// it starts or after its address changed), so that the test's own writes
// take every later revision.
func (s *dzServer) settle() error {
	var secret string
	for i, a := range s.args {
		if a == "--secret" && i+1 < len(s.args) {
			secret = s.args[i+1]
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), startBound)
	defer cancel()
	c, err := wire.Dial(ctx, []string{s.addr}, wire.Options{Secret: secret})
	if err != nil {
		return err
	}
	defer c.Close()
	for {
		body, _, err := c.Get(ctx, "/ctl/node/t1/addr", 0)
		if err == nil && string(body) == s.addr {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("/ctl/node/t1/addr is not %s after %v: %q, %v", s.addr, startBound, body, err)
		}
		time.Sleep(10 * time.Millisecond) // polling a start-up write, bounded by ctx
	}
}

// noCtl drops the lines of out that are about /ctl (the replicas' own
// records) from the output of ls / or find.
func noCtl(out string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(out, "\n") {
		if l != "ctl/\n" && !strings.HasPrefix(l, "/ctl/") {
			b.WriteString(l)
		}
	}
	return b.String()
}

// stop sends SIGTERM and waits for the exit (SIGKILL after stopBound). It
// returns the exit status (-1 if killed) and how long the exit took.
func (s *dzServer) stop() (int, time.Duration) {
	start := time.Now()
	select {
	case <-s.exited:
		return s.state.ExitCode(), 0
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(stopBound):
		s.t.Errorf("server %s did not exit within %v of SIGTERM; killing it", s.addr, stopBound)
		s.kill()
	}
	return s.state.ExitCode(), time.Since(start)
}

// kill ends the process with SIGKILL, as a power loss would.
func (s *dzServer) kill() {
	s.cmd.Process.Kill()
	<-s.exited
}

func (s *dzServer) cleanup() {
	code, took := s.stop()
	s.t.Logf("server %s stopped in %v", s.addr, took)
	out := s.stderr.String()
	if strings.Contains(out, "WARNING: DATA RACE") {
		s.t.Errorf("the server %s had a data race:\n%s", s.addr, out)
		return
	}
	if code != 0 && code != -1 {
		s.t.Errorf("the server %s exited %d:\n%s", s.addr, code, out)
		return
	}
	if s.t.Failed() {
		s.t.Logf("output of the server %s (data %s):\n%s", s.addr, s.data, out)
	}
}

// result is how a client command ended.
type result struct {
	args   []string
	stdout string
	stderr string
	code   int
}

func (r result) String() string {
	return fmt.Sprintf("doozerfs %s: exit %d\nstdout: %q\nstderr: %q", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// dz runs the binary with args and stdin, with env added to the
// environment, and returns how it ended.
func dz(t *testing.T, env []string, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runBound)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), args...)
	cmd.Env = childEnv(env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{args: args, stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("running doozerfs %v: %v", args, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("doozerfs %v did not end within %v", args, runBound)
	}
	if strings.Contains(r.stderr, "WARNING: DATA RACE") {
		t.Errorf("data race in the client:\n%s", r.stderr)
	}
	return r
}

// run runs a client command against s (through DOOZERFS_ADDR, so args
// stay exactly as given, `--` included).
func (s *dzServer) run(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	return dz(t, []string{"DOOZERFS_ADDR=" + s.addr}, stdin, args...)
}

// ok runs a client command that must succeed and returns its stdout.
func (s *dzServer) ok(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	r := s.run(t, stdin, args...)
	if r.code != 0 {
		t.Fatalf("want exit 0, got %v", r)
	}
	return r.stdout
}

// okRev runs a client command that must succeed and print a revision.
func (s *dzServer) okRev(t *testing.T, stdin string, args ...string) int64 {
	t.Helper()
	return parseRevOut(t, s.ok(t, stdin, args...))
}

// refused checks that r ended with exit status 1 and kind on stderr.
func refused(t *testing.T, r result, kind fs.Kind) {
	t.Helper()
	if r.code != exitRefused || !strings.Contains(r.stderr, kind.String()) {
		t.Errorf("want exit 1 with %s on stderr, got %v", kind, r)
	}
	if r.stdout != "" {
		t.Errorf("a refused command printed on stdout: %v", r)
	}
}

// usage checks that r ended with exit status 2 and a message.
func usage(t *testing.T, r result) {
	t.Helper()
	if r.code != exitUsage || strings.TrimSpace(r.stderr) == "" {
		t.Errorf("want exit 2 with a message on stderr, got %v", r)
	}
}

func parseRevOut(t *testing.T, out string) int64 {
	t.Helper()
	rev, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
	if err != nil || !strings.HasSuffix(out, "\n") || strings.Count(out, "\n") != 1 {
		t.Fatalf("want one revision on a line, got %q", out)
	}
	return rev
}

// cliEvent is one event as wait and watch print it.
type cliEvent struct {
	rev  int64
	kind string
	path string
	body string
}

func (e cliEvent) String() string { return fmt.Sprintf("%d %s %s %q", e.rev, e.kind, e.path, e.body) }

// readEvent reads "REV KIND PATH LEN\nBODY\n" from r.
func readEvent(r *bufio.Reader) (cliEvent, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return cliEvent{}, fmt.Errorf("reading an event line (got %q): %w", line, err)
	}
	f := strings.Fields(line)
	if len(f) != 4 {
		return cliEvent{}, fmt.Errorf("event line %q is not REV KIND PATH LEN", line)
	}
	rev, err1 := strconv.ParseInt(f[0], 10, 64)
	n, err2 := strconv.Atoi(f[3])
	if err1 != nil || err2 != nil || n < 0 {
		return cliEvent{}, fmt.Errorf("event line %q is not REV KIND PATH LEN", line)
	}
	body := make([]byte, n+1)
	if _, err := io.ReadFull(r, body); err != nil {
		return cliEvent{}, fmt.Errorf("reading the %d-byte body after %q: %w", n, line, err)
	}
	if body[n] != '\n' {
		return cliEvent{}, fmt.Errorf("the %d-byte body after %q does not end in a newline: %q", n, line, body)
	}
	return cliEvent{rev: rev, kind: f[1], path: f[2], body: string(body[:n])}, nil
}

func parseEvent(t *testing.T, out string) cliEvent {
	t.Helper()
	r := bufio.NewReader(strings.NewReader(out))
	ev, err := readEvent(r)
	if err != nil {
		t.Fatalf("%v", err)
	}
	if rest, _ := io.ReadAll(r); len(rest) > 0 {
		t.Fatalf("more after the event: %q", rest)
	}
	return ev
}

// bgCmd is a client command running in the background (wait, watch).
type bgCmd struct {
	args   []string
	cmd    *exec.Cmd
	stdout *os.File // the read end of the child's stdout
	stderr *syncBuffer
	exited chan struct{} // closed once the process has been waited for
}

// start runs a client command against s in the background, with env added
// to its environment; it is killed at the end of the test if still running.
func (s *dzServer) start(t *testing.T, env []string, args ...string) *bgCmd {
	t.Helper()
	b := &bgCmd{args: args, stderr: new(syncBuffer), exited: make(chan struct{})}
	b.cmd = exec.Command(binary(t), args...)
	b.cmd.Env = childEnv(append([]string{"DOOZERFS_ADDR=" + s.addr}, env...)...)
	b.cmd.Stderr = b.stderr
	// A pipe of our own rather than StdoutPipe, so that Wait may run while
	// the test still reads.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	b.stdout = r
	b.cmd.Stdout = w
	err = b.cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		t.Fatalf("starting doozerfs %v: %v", args, err)
	}
	go func() {
		b.cmd.Wait()
		close(b.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-b.exited:
		default:
			b.cmd.Process.Kill()
			<-b.exited
		}
		r.Close()
		if strings.Contains(b.stderr.String(), "WARNING: DATA RACE") {
			t.Errorf("data race in doozerfs %v:\n%s", args, b.stderr.String())
		}
	})
	return b
}

// running reports whether the command has not exited yet.
func (b *bgCmd) running() bool {
	select {
	case <-b.exited:
		return false
	default:
		return true
	}
}

// finish waits (up to runBound) for the command to end and returns its
// stdout and exit status.
func (b *bgCmd) finish(t *testing.T) result {
	t.Helper()
	select {
	case <-b.exited:
	case <-time.After(runBound):
		b.cmd.Process.Kill()
		<-b.exited
		t.Fatalf("doozerfs %v did not end within %v; stderr: %s", b.args, runBound, b.stderr.String())
	}
	out, err := io.ReadAll(b.stdout)
	if err != nil {
		t.Fatalf("reading the output of doozerfs %v: %v", b.args, err)
	}
	return result{args: b.args, stdout: string(out), stderr: b.stderr.String(), code: b.cmd.ProcessState.ExitCode()}
}

// events parses the command's stdout as a stream of events, delivered on
// the channel; a parse error or the end of the output is delivered as an
// event-less item and ends the stream.
func (b *bgCmd) events() <-chan eventOrErr {
	ch := make(chan eventOrErr, 1024)
	go func() {
		defer close(ch)
		r := bufio.NewReader(b.stdout)
		for {
			ev, err := readEvent(r)
			if err != nil {
				ch <- eventOrErr{err: err}
				return
			}
			ch <- eventOrErr{ev: ev}
		}
	}()
	return ch
}

type eventOrErr struct {
	ev  cliEvent
	err error
}

// nextEvent takes the next event from ch, failing the test if the stream
// ended or none came within runBound.
func nextEvent(t *testing.T, b *bgCmd, ch <-chan eventOrErr) cliEvent {
	t.Helper()
	select {
	case e, ok := <-ch:
		if !ok || e.err != nil {
			t.Fatalf("doozerfs %v: no next event: %v; stderr: %s", b.args, e.err, b.stderr.String())
		}
		return e.ev
	case <-time.After(runBound):
		t.Fatalf("doozerfs %v: no event within %v; stderr: %s", b.args, runBound, b.stderr.String())
	}
	panic("unreachable")
}

// lines delivers the command's stdout line by line (without the newline);
// the channel is closed at the end of the output.
func (b *bgCmd) lines() <-chan string {
	ch := make(chan string, 1024)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(b.stdout)
		for sc.Scan() {
			ch <- sc.Text()
		}
	}()
	return ch
}

// nextLine takes the next line from ch, failing the test if the output
// ended or nothing came within runBound.
func nextLine(t *testing.T, b *bgCmd, ch <-chan string) string {
	t.Helper()
	select {
	case l, ok := <-ch:
		if !ok {
			t.Fatalf("doozerfs %v: output ended; stderr: %s", b.args, b.stderr.String())
		}
		return l
	case <-time.After(runBound):
		t.Fatalf("doozerfs %v: no line within %v; stderr: %s", b.args, runBound, b.stderr.String())
	}
	panic("unreachable")
}

// stop sends SIGTERM to the command and returns its exit status.
func (b *bgCmd) stop(t *testing.T) int {
	t.Helper()
	b.cmd.Process.Signal(syscall.SIGTERM)
	return b.exit(t)
}

// exit waits (up to runBound) for the command to end and returns its exit
// status, leaving its stdout to whoever reads it.
func (b *bgCmd) exit(t *testing.T) int {
	t.Helper()
	select {
	case <-b.exited:
	case <-time.After(runBound):
		b.cmd.Process.Kill()
		<-b.exited
		t.Fatalf("doozerfs %v did not end within %v; stderr: %s", b.args, runBound, b.stderr.String())
	}
	return b.cmd.ProcessState.ExitCode()
}
