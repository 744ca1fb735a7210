package main

// The scale measurements of `doozerfs bench` (TARGETS.md: "Scale, on one
// replica"): scale-files, restart, catch-up and watches. Each runs on
// `doozerfs serve` child processes, so that the resident memory measured
// (/proc/PID/status) is a replica's alone, whatever the system under test
// of the other workloads.

import (
	"bufio"
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
	"time"

	"github.com/doozerfs/doozerfs/fs"
	"github.com/doozerfs/doozerfs/wire"
)

// serveChild is a `doozerfs serve` process this process started.
type serveChild struct {
	cmd  *exec.Cmd
	name string
	addr string
	dir  string // its data directory
	out  *tailWriter
	done chan struct{} // closed when it has exited
	err  error         // its exit status, once done is closed
}

// tailWriter keeps the last lines written to it (a child's output, for
// error messages), and notes whether a line contained mark.
type tailWriter struct {
	mu     sync.Mutex
	lines  []string
	part   string
	mark   string
	marked bool
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.part + string(p)
	parts := strings.Split(s, "\n")
	t.part = parts[len(parts)-1]
	for _, l := range parts[:len(parts)-1] {
		if t.mark != "" && strings.Contains(l, t.mark) {
			t.marked = true
		}
	}
	t.lines = append(t.lines, parts[:len(parts)-1]...)
	if len(t.lines) > 20 {
		t.lines = t.lines[len(t.lines)-20:]
	}
	return len(p), nil
}

func (t *tailWriter) sawMark() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.marked
}

func (t *tailWriter) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(append(t.lines[:len(t.lines):len(t.lines)], t.part), "\n")
}

// serveBinary returns the doozerfs binary to run serve with.
func (b *benchEnv) serveBinary() (string, error) {
	if b.p.serveBin != "" {
		return b.p.serveBin, nil
	}
	return os.Executable()
}

// freeAddr returns a loopback address whose port is free for TCP and UDP
// (the replica serves clients and peers over TCP, gossip over UDP, on one
// port), to give a child that must keep its address across a restart.
func freeAddr() (string, error) {
	var last error
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		addr := l.Addr().String()
		u, err := net.ListenPacket("udp", addr)
		l.Close()
		if err != nil {
			last = err
			continue
		}
		u.Close()
		return addr, nil
	}
	return "", fmt.Errorf("no loopback port free for TCP and UDP: %w", last)
}

// startServe starts `doozerfs serve` on dir at addr, joining join if set,
// logging at level; mark is a text to look for in its output.
func (b *benchEnv) startServe(name, dir, addr, join, level, mark string) (*serveChild, error) {
	bin, err := b.serveBinary()
	if err != nil {
		return nil, err
	}
	args := []string{"serve", "--addr", addr, "--data", dir, "--name", name, "--gossip-fast", "--log-level", level}
	if join != "" {
		args = append(args, "--join", join)
	}
	if b.p.snapshotEvery > 0 {
		args = append(args, "--snapshot-every", strconv.Itoa(b.p.snapshotEvery))
	}
	cmd := exec.Command(bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DOOZERFS_") && !strings.HasPrefix(kv, "GORACE=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	// A binary built with -race (the tests') sleeps 1 s at exit by default.
	cmd.Env = append(cmd.Env, "GORACE=atexit_sleep_ms=0")
	if b.p.secret != "" {
		cmd.Env = append(cmd.Env, "DOOZERFS_SECRET="+b.p.secret)
	}
	out := &tailWriter{mark: mark}
	cmd.Stdout, cmd.Stderr = out, out
	// If this process dies without stopping it, so does the child.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s serve: %w", bin, err)
	}
	c := &serveChild{cmd: cmd, name: name, addr: addr, dir: dir, out: out, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// exited returns an error saying the child has exited, or nil.
func (c *serveChild) exited() error {
	select {
	case <-c.done:
		return fmt.Errorf("replica %s exited (%v); its last output:\n%s", c.name, c.err, c.out)
	default:
		return nil
	}
}

// stop sends sig and waits for the child to exit, killing it after 20 s.
func (c *serveChild) stop(sig syscall.Signal) {
	if c == nil {
		return
	}
	c.cmd.Process.Signal(sig)
	select {
	case <-c.done:
	case <-time.After(20 * time.Second):
		c.cmd.Process.Kill()
		<-c.done
	}
}

// memory returns the child's VmRSS and VmHWM in bytes.
func (c *serveChild) memory() (rss, hwm uint64, err error) {
	return procMemory(c.cmd.Process.Pid)
}

// cpu returns the CPU time (user and system) the child has used so far.
func (c *serveChild) cpu() time.Duration {
	d, _ := procCPUTime(c.cmd.Process.Pid)
	return d
}

// procCPUTime returns the CPU time process pid has used, from
// /proc/PID/stat (utime and stime, in clock ticks of 1/100 s on Linux).
func procCPUTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, errors.New("/proc stat: no )")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, errors.New("/proc stat: too few fields")
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc stat: utime %q, stime %q", f[11], f[12])
	}
	return time.Duration(u+s) * 10 * time.Millisecond, nil
}

// procMemory returns VmRSS and VmHWM of process pid, in bytes, from
// /proc/PID/status.
func procMemory(pid int) (rss, hwm uint64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	return parseProcMemory(f)
}

func parseProcMemory(r io.Reader) (rss, hwm uint64, err error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return 0, 0, fmt.Errorf("/proc status: %s:%s", k, v)
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, 0, err
		}
		if k == "VmRSS" {
			rss = n << 10
		} else {
			hwm = n << 10
		}
	}
	if err := sc.Err(); err != nil {
		return 0, 0, err
	}
	if rss == 0 || hwm == 0 {
		return 0, 0, errors.New("/proc status: no VmRSS or VmHWM")
	}
	return rss, hwm, nil
}

// childPatience bounds how long the scale workloads wait for a child to
// listen, answer or catch up, unless --timeout (ctx) ends sooner: far
// past TARGETS.md's 10 s, so that a miss is measured, not cut off.
const childPatience = 10 * time.Minute

// dialChild connects to the child, retrying until it listens (or exits,
// or ctx ends). Waiting for a process to start listening has nothing to
// wait on but the connection itself.
func (b *benchEnv) dialChild(ctx context.Context, c *serveChild) (*wire.Client, error) {
	deadline := time.Now().Add(childPatience)
	for {
		dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		cl, err := wire.Dial(dctx, []string{c.addr}, b.opts)
		cancel()
		if err == nil {
			return cl, nil
		}
		if xerr := c.exited(); xerr != nil {
			return nil, xerr
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("replica %s at %s does not answer after %v: %w\n%s", c.name, c.addr, childPatience, err, c.out)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// retryUntil calls f until it returns true without an error, the child
// exits, or ctx ends.
func retryUntil(ctx context.Context, c *serveChild, what string, f func(ctx context.Context) (bool, error)) error {
	deadline := time.Now().Add(childPatience)
	var last error
	for {
		fctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		ok, err := f(fctx)
		cancel()
		if ok && err == nil {
			return nil
		}
		if err != nil {
			last = err
		}
		if xerr := c.exited(); xerr != nil {
			return xerr
		}
		if ctx.Err() != nil {
			return fmt.Errorf("replica %s: not %s when the run ended (%w; last error: %v)", c.name, what, ctx.Err(), last)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("replica %s: not %s after %v (last error: %v)", c.name, what, childPatience, last)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// snapshotInstalled is what a replica logs (at info) when it installed a
// snapshot a peer sent (replica/install.go).
const snapshotInstalled = "installed a snapshot from a peer"

// scaleFixture is the replica scale-files filled, which restart and
// catch-up use.
type scaleFixture struct {
	dir      string // parent of the replicas' data directories
	child    *serveChild
	files    int
	lastPath string
	body     []byte
	joins    int // members catch-up has added
}

// closeScale stops the scale-files replica and removes its data.
func (b *benchEnv) closeScale() {
	if b.scale == nil {
		return
	}
	b.scale.child.stop(syscall.SIGKILL)
	os.RemoveAll(b.scale.dir)
	b.scale = nil
}

// scalePath is the path of file i of scale-files: a thousand directories
// of up to a thousand files (fs's own million-file benchmarks use the
// same shape).
func (b *benchEnv) scalePath(i int) string {
	return fmt.Sprintf("%s/files/d%03d/f%07d", b.p.prefix, i%1000, i)
}

// startScale starts a fresh replica for scale-files and waits until it
// accepts writes.
func (b *benchEnv) startScale(ctx context.Context) (*scaleFixture, *wire.Client, error) {
	b.closeScale()
	dir, err := os.MkdirTemp(b.dataParent, "doozerfs-bench-scale-")
	if err != nil {
		return nil, nil, err
	}
	fx := &scaleFixture{dir: dir, body: b.body()}
	b.scale = fx
	addr, err := freeAddr()
	if err != nil {
		return nil, nil, err
	}
	if fx.child, err = b.startServe("s1", filepath.Join(dir, "s1"), addr, "", "warn", ""); err != nil {
		return nil, nil, err
	}
	cl, err := b.dialChild(ctx, fx.child)
	if err != nil {
		return nil, nil, err
	}
	if err := retryUntil(ctx, fx.child, "writable", func(ctx context.Context) (bool, error) {
		return true, cl.Nop(ctx)
	}); err != nil {
		cl.Close()
		return nil, nil, err
	}
	return fx, cl, nil
}

// loadFiles writes FILES files to the scale replica, FILES-BATCH to a
// transaction, from CLIENTS clients.
func (b *benchEnv) loadFiles(ctx context.Context, fx *scaleFixture) (*benchResult, error) {
	clients := b.p.clients
	cs := make([]*wire.Client, 0, clients)
	defer func() {
		for _, c := range cs {
			c.Close()
		}
	}()
	for range clients {
		c, err := wire.Dial(ctx, []string{fx.child.addr}, b.opts)
		if err != nil {
			return nil, err
		}
		cs = append(cs, c)
	}
	n, batch := b.p.files, b.p.filesBatch
	txns := (n + batch - 1) / batch
	r := closedLoop(ctx, clients, txns, func(ctx context.Context, w, t int) error {
		ops := make([]fs.Op, 0, batch)
		for i := t * batch; i < min(n, (t+1)*batch); i++ {
			ops = append(ops, fs.Op{Kind: fs.OpSet, Path: b.scalePath(i), Rev: fs.Clobber, Body: fx.body})
		}
		_, err := cs[w].Txn(ctx, ops)
		return err
	})
	if r.Errors > 0 {
		return nil, fmt.Errorf("writing %d files: %d of %d transactions failed, the first: %s", n, r.Errors, txns, r.FirstErr)
	}
	if xerr := fx.child.exited(); xerr != nil {
		return nil, xerr
	}
	fx.files, fx.lastPath = n, b.scalePath(n-1)
	return r, nil
}

// ensureScale returns the scale-files replica, starting and filling one
// (not measured) if scale-files has not run.
func (b *benchEnv) ensureScale(ctx context.Context) (*scaleFixture, error) {
	if fx := b.scale; fx != nil && fx.files == b.p.files && fx.child.exited() == nil {
		return fx, nil
	}
	fx, cl, err := b.startScale(ctx)
	if err != nil {
		return nil, err
	}
	cl.Close()
	if _, err := b.loadFiles(ctx, fx); err != nil {
		return nil, err
	}
	return fx, nil
}

func runScaleFiles(ctx context.Context, b *benchEnv) (*benchResult, error) {
	fx, cl, err := b.startScale(ctx)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	before, _, err := fx.child.memory()
	if err != nil {
		return nil, err
	}
	cpu0 := fx.child.cpu()
	load, err := b.loadFiles(ctx, fx)
	if err != nil {
		return nil, err
	}
	cpu := fx.child.cpu() - cpu0
	// Check the last file reads back, and that the replica is still there.
	got, _, err := cl.Get(ctx, fx.lastPath, 0)
	if err != nil || string(got) != string(fx.body) {
		return nil, fmt.Errorf("reading back %s: %d bytes, %v", fx.lastPath, len(got), err)
	}
	rss, hwm, err := fx.child.memory()
	if err != nil {
		return nil, err
	}
	r := &benchResult{Clients: load.Clients, Ops: fx.files, Elapsed: load.Elapsed, CPU: load.CPU,
		Allocs: load.Allocs, AllocBytes: load.AllocBytes,
		P50: load.P50, P90: load.P90, P99: load.P99, Max: load.Max, Mean: load.Mean,
		RSS: rss, HWM: hwm, RSSBefore: before}
	r.Rate = float64(fx.files) / load.Elapsed.Seconds()
	r.Detail = fmt.Sprintf("%d files of %d B in %.1fs (%.0f files/s; %d per transaction, p50 %s a transaction): replica CPU %s; replica RSS %s (%.0f B a file), peak %s, %s before",
		fx.files, len(fx.body), load.Elapsed.Seconds(), r.Rate, b.p.filesBatch, fmtLatency(load.P50), fmtSeconds(cpu),
		fmtBytes(rss), float64(rss-min(rss, before))/float64(fx.files), fmtBytes(hwm), fmtBytes(before))
	return r, nil
}

func runRestart(ctx context.Context, b *benchEnv) (*benchResult, error) {
	fx, err := b.ensureScale(ctx)
	if err != nil {
		return nil, err
	}
	old := fx.child
	old.stop(syscall.SIGKILL)
	u0 := usageNow()
	t0 := time.Now()
	fx.child, err = b.startServe(old.name, old.dir, old.addr, "", "warn", "")
	if err != nil {
		return nil, err
	}
	cl, err := b.dialChild(ctx, fx.child)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	listening := time.Since(t0)
	if err := retryUntil(ctx, fx.child, "answering a GET of "+fx.lastPath, func(ctx context.Context) (bool, error) {
		got, _, err := cl.Get(ctx, fx.lastPath, 0)
		return err == nil && string(got) == string(fx.body), err
	}); err != nil {
		return nil, err
	}
	answered := time.Since(t0)
	if err := retryUntil(ctx, fx.child, "writable", func(ctx context.Context) (bool, error) {
		return true, cl.Nop(ctx)
	}); err != nil {
		return nil, err
	}
	writable := time.Since(t0)
	cpu := fx.child.cpu()
	rss, hwm, err := fx.child.memory()
	if err != nil {
		return nil, err
	}
	r := &benchResult{Clients: 1} // judged by its time; its memory is in Detail
	r.summarize([]time.Duration{answered}, answered)
	u0.since(r)
	r.Detail = fmt.Sprintf("replica with %d files, killed (SIGKILL) and started again: listening after %s, answered a GET of the last file after %s, accepted a write after %s, having used %s of CPU; RSS then %s (peak %s)",
		fx.files, fmtSeconds(listening), fmtSeconds(answered), fmtSeconds(writable), fmtSeconds(cpu), fmtBytes(rss), fmtBytes(hwm))
	return r, nil
}

func runCatchUp(ctx context.Context, b *benchEnv) (*benchResult, error) {
	fx, err := b.ensureScale(ctx)
	if err != nil {
		return nil, err
	}
	lc, err := b.dialChild(ctx, fx.child)
	if err != nil {
		return nil, err
	}
	defer lc.Close()
	if err := lc.Nop(ctx); err != nil {
		return nil, err
	}
	rev, err := lc.Rev(ctx)
	if err != nil {
		return nil, err
	}
	fx.joins++
	name := fmt.Sprintf("j%d", fx.joins)
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	u0 := usageNow()
	t0 := time.Now()
	j, err := b.startServe(name, filepath.Join(fx.dir, name), addr, fx.child.addr, "info", snapshotInstalled)
	if err != nil {
		return nil, err
	}
	defer func() {
		j.stop(syscall.SIGKILL)
		os.RemoveAll(j.dir)
	}()
	jc, err := b.dialChild(ctx, j)
	if err != nil {
		return nil, err
	}
	defer jc.Close()
	var self wire.Self
	if err := retryUntil(ctx, j, fmt.Sprintf("caught up to revision %d", rev), func(ctx context.Context) (bool, error) {
		self, err = jc.Self(ctx)
		return err == nil && self.Applied >= rev, err
	}); err != nil {
		return nil, err
	}
	caughtUp := time.Since(t0)
	cpu := j.cpu()
	rss, hwm, _ := j.memory()
	got, _, err := jc.Get(ctx, fx.lastPath, 0)
	if err != nil || string(got) != string(fx.body) {
		return nil, fmt.Errorf("the new member caught up to revision %d but reads %s as %d bytes (%v)", rev, fx.lastPath, len(got), err)
	}
	snap := "by snapshot"
	if !j.out.sawMark() {
		snap = "from the log (no snapshot installed)"
	}
	r := &benchResult{Clients: 1}
	r.summarize([]time.Duration{caughtUp}, caughtUp)
	u0.since(r)
	r.Detail = fmt.Sprintf("new member %s joined a replica of %d files and applied revision %d %s %s after it started (role %s), having used %s of CPU; its RSS then %s (peak %s)",
		name, fx.files, rev, snap, fmtSeconds(caughtUp), self.Role, fmtSeconds(cpu), fmtBytes(rss), fmtBytes(hwm))
	// Take it out of the cluster again, so that the scale replica keeps
	// its quorum alone for the next workload.
	if err := lc.RemoveMember(ctx, name); err != nil {
		return nil, fmt.Errorf("removing the new member %s: %w", name, err)
	}
	if err := retryUntil(ctx, fx.child, "writable after the new member's removal", func(ctx context.Context) (bool, error) {
		return true, lc.Nop(ctx)
	}); err != nil {
		return nil, err
	}
	return r, nil
}

func runWatches(ctx context.Context, b *benchEnv) (*benchResult, error) {
	dir, err := os.MkdirTemp(b.dataParent, "doozerfs-bench-watches-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	child, err := b.startServe("w1", filepath.Join(dir, "w1"), addr, "", "warn", "")
	if err != nil {
		return nil, err
	}
	defer child.stop(syscall.SIGKILL)
	cl, err := b.dialChild(ctx, child)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	if err := retryUntil(ctx, child, "writable", func(ctx context.Context) (bool, error) {
		return true, cl.Nop(ctx)
	}); err != nil {
		return nil, err
	}
	before, _, err := child.memory()
	if err != nil {
		return nil, err
	}

	// replica.Config.MaxWatches (1024) bounds the watches of one
	// connection: a thousand to a connection.
	const perConn = 1000
	n := b.p.watches
	conns := (n + perConn - 1) / perConn
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cs := make([]*wire.Client, conns)
	defer func() {
		for _, c := range cs {
			if c != nil {
				c.Close()
			}
		}
	}()
	for i := range cs {
		if cs[i], err = wire.Dial(ctx, []string{addr}, b.opts); err != nil {
			return nil, err
		}
	}
	path := func(i int) string { return fmt.Sprintf("%s/watches/w%05d", b.p.prefix, i) }
	ws := make([]*wire.Watch, n)
	u0 := usageNow()
	r := closedLoop(wctx, conns, n, func(_ context.Context, c, i int) error {
		w, err := cs[i/perConn].Watch(wctx, path(i), 0)
		ws[i] = w
		return err
	})
	u0.since(r)
	if r.Errors > 0 {
		return nil, fmt.Errorf("opening %d watches: %d failed, the first: %s", n, r.Errors, r.FirstErr)
	}
	rss, hwm, err := child.memory()
	if err != nil {
		return nil, err
	}
	// The watches work: a write to the first, a middle and the last file
	// reaches its watch.
	for _, i := range []int{0, n / 2, n - 1} {
		if _, err := cl.Set(ctx, path(i), fs.Clobber, []byte("x")); err != nil {
			return nil, err
		}
		ectx, ecancel := context.WithTimeout(ctx, 10*time.Second)
		ev, err := ws[i].Next(ectx)
		ecancel()
		if err != nil || ev.Path != path(i) {
			return nil, fmt.Errorf("watch %d of %d: event %+v, %v", i, n, ev, err)
		}
	}
	r.RSS, r.HWM, r.RSSBefore = rss, hwm, before
	r.Detail = fmt.Sprintf("%d WATCHes open (one file each, on %d connections, opened in %.2fs): replica RSS %s (%s before: %.1f KiB a watch), peak %s",
		n, conns, r.Elapsed.Seconds(), fmtBytes(rss), fmtBytes(before), float64(rss-min(rss, before))/1024/float64(n), fmtBytes(hwm))
	return r, nil
}

func fmtBytes(n uint64) string {
	switch {
	case n >= GiB:
		return fmt.Sprintf("%.2f GiB", float64(n)/GiB)
	case n >= MiB:
		return fmt.Sprintf("%.0f MiB", float64(n)/MiB)
	default:
		return fmt.Sprintf("%.0f KiB", float64(n)/1024)
	}
}

func fmtSeconds(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%.0f ms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}
