package chaos

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/doozerfs/doozerfs/wire"
)

// NodeState is what the harness did to a replica process last.
type NodeState int

const (
	StateDown    NodeState = iota // not running (never started, killed, or exited)
	StateUp                       // running
	StatePaused                   // SIGSTOPped
	StateRemoved                  // removed from the cluster for good; not running
)

func (s NodeState) String() string {
	return [...]string{"down", "up", "paused", "removed"}[s]
}

// Node is one replica: a `doozerfs serve` process with its own data
// directory, its proxy and, optionally, its mount.
type Node struct {
	Name  string
	Addr  string // the replica's own address (clients dial it)
	Adv   string // its proxy's address, which it advertises to its peers
	HTTP  string // its HTTP address (/debug/pprof for goroutine counts)
	Data  string
	Mnt   string // "" without a mount
	Log   string // path of its log (every start appends)
	Index int    // order of creation, from 0

	c *Cluster

	mu       sync.Mutex
	state    NodeState
	ready    bool // the current process served once
	cmd      *exec.Cmd
	done     chan struct{} // closed when the current process has exited
	exit     error         // how it exited
	expected bool          // the harness expects this process to exit
	env      []string      // extra environment of the next start
	starts   int
	unexpect []string // unexpected exits seen
	join     []string
	baseFDs  int // fds of the current process once it settled, -1 unknown
	baseGor  int // goroutines likewise
}

// State returns what the harness last did to the node.
func (n *Node) State() NodeState {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.state
}

// Running reports whether the node's process is up (not paused, not dead,
// not on its way out: killed, or started to fail on a full disk) and was
// ready (serving, and mounted) once since it started.
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.state == StateUp && n.ready && !n.expected
}

// Pid returns the pid of the current process, 0 if none.
func (n *Node) Pid() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil || n.cmd.Process == nil || n.state == StateDown || n.state == StateRemoved {
		return 0
	}
	return n.cmd.Process.Pid
}

// Cluster is the set of replica processes of one run.
type Cluster struct {
	bin       string
	dir       string
	net       *Net
	logf      func(string, ...any)
	mounts    bool
	extra     []string // more serve flags for every node
	env       []string // more environment for every node (a broken build)
	voters    int
	clear     func(dir string) (bool, error)
	readyWait time.Duration

	mu     sync.Mutex
	nodes  []*Node
	minors map[uint64]string // FUSE connections of the nodes' mounts → mountpoint
}

// ClusterConfig configures NewCluster.
type ClusterConfig struct {
	Binary string   // the doozerfs binary
	Dir    string   // where data dirs, mounts and logs go
	Mounts bool     // serve --mount on every node
	Voters int      // --voters
	Extra  []string // more serve flags
	Env    []string // more environment (DOOZERFS_TEST_FAULTS of a broken build)
	// ClearMount clears a dead daemon's stale mount (mount.ClearStale);
	// nil unmounts lazily with fusermount3.
	ClearMount func(dir string) (bool, error)
	Logf       func(string, ...any)
}

// NewCluster makes an empty cluster; AddNode starts replicas.
func NewCluster(cfg ClusterConfig) *Cluster {
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if cfg.ClearMount == nil {
		cfg.ClearMount = func(dir string) (bool, error) {
			return true, exec.Command("fusermount3", "-uz", dir).Run()
		}
	}
	return &Cluster{bin: cfg.Binary, dir: cfg.Dir, net: NewNet(cfg.Logf), logf: cfg.Logf, mounts: cfg.Mounts,
		extra: cfg.Extra, env: cfg.Env, voters: cfg.Voters, clear: cfg.ClearMount, readyWait: 30 * time.Second,
		minors: map[uint64]string{}}
}

// Net returns the cluster's network.
func (c *Cluster) Net() *Net { return c.net }

// Nodes returns every node ever added, removed ones too.
func (c *Cluster) Nodes() []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Node(nil), c.nodes...)
}

// Members returns the nodes not removed.
func (c *Cluster) Members() []*Node {
	var out []*Node
	for _, n := range c.Nodes() {
		if n.State() != StateRemoved {
			out = append(out, n)
		}
	}
	return out
}

// Node returns the node called name, or nil.
func (c *Cluster) Node(name string) *Node {
	for _, n := range c.Nodes() {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// Addrs returns the client addresses of the members.
func (c *Cluster) Addrs() []string {
	var out []string
	for _, n := range c.Members() {
		out = append(out, n.Addr)
	}
	return out
}

// freePort returns a port free for both TCP and UDP on 127.0.0.1.
func freePort() (int, error) {
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			u.Close()
			return port, nil
		}
	}
	return 0, errors.New("chaos: no port free for TCP and UDP")
}

// AddNode creates a node (its directories, ports and proxy) and starts it,
// joining the given members (none: it founds the cluster).
func (c *Cluster) AddNode(ctx context.Context, name string, join []*Node) (*Node, error) {
	var ports [3]int
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	c.mu.Lock()
	idx := len(c.nodes)
	c.mu.Unlock()
	dir := filepath.Join(c.dir, name)
	n := &Node{Name: name, Index: idx, c: c,
		Addr: fmt.Sprintf("127.0.0.1:%d", ports[0]), Adv: fmt.Sprintf("127.0.0.1:%d", ports[1]),
		HTTP: fmt.Sprintf("127.0.0.1:%d", ports[2]), Data: filepath.Join(dir, "data"),
		Log: filepath.Join(dir, "log"), baseFDs: -1, baseGor: -1}
	if c.mounts {
		n.Mnt = filepath.Join(dir, "mnt")
	}
	for _, j := range join {
		n.join = append(n.join, j.Adv)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if n.Mnt != "" {
		if err := os.MkdirAll(n.Mnt, 0o755); err != nil {
			return nil, err
		}
	}
	if _, err := c.net.AddNode(name, n.Adv, n.Addr); err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.nodes = append(c.nodes, n)
	c.mu.Unlock()
	return n, n.Start(ctx, nil, false)
}

// Start starts the node's process (with env added to its environment)
// and waits until it serves (and its mount answers). With expectExit the
// process is expected to exit on its own (an injected disk-full failure):
// that is not reported.
func (n *Node) Start(ctx context.Context, env []string, expectExit bool) error {
	n.mu.Lock()
	if n.state == StateUp || n.state == StatePaused || n.state == StateRemoved {
		n.mu.Unlock()
		return fmt.Errorf("chaos: start %s: it is %s", n.Name, n.state)
	}
	c := n.c
	args := []string{"serve", "--addr", n.Addr, "--advertise", n.Adv, "--data", n.Data, "--name", n.Name,
		"--gossip-fast", "--dead-timeout", "3s", "--write-timeout", "3s",
		"--voters", strconv.Itoa(c.voters), "--history", "1000000",
		"--http", n.HTTP, "--pprof", "--log-level", "info"}
	if len(n.join) > 0 {
		args = append(args, "--join", strings.Join(n.join, ","))
	}
	if n.Mnt != "" {
		args = append(args, "--mount", n.Mnt)
	}
	args = append(args, c.extra...)
	cmd := exec.Command(c.bin, args...)
	cmd.Env = append(append(append(os.Environ(), c.env...), env...), "GOTRACEBACK=all")
	lf, err := os.OpenFile(n.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		n.mu.Unlock()
		return err
	}
	fmt.Fprintf(lf, "==== chaos: start %d of %s at %s: %s %s (env %v)\n", n.starts+1, n.Name,
		time.Now().Format(time.RFC3339Nano), c.bin, strings.Join(args, " "), append(append([]string(nil), c.env...), env...))
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		n.mu.Unlock()
		return fmt.Errorf("chaos: start %s: %w", n.Name, err)
	}
	n.starts++
	n.cmd, n.state, n.expected, n.exit, n.env, n.ready = cmd, StateUp, expectExit, nil, env, false
	n.baseFDs, n.baseGor = -1, -1
	done := make(chan struct{})
	n.done = done
	n.mu.Unlock()
	go func() {
		err := cmd.Wait()
		lf.Close()
		n.mu.Lock()
		n.exit = err
		if n.cmd == cmd && n.state != StateRemoved {
			if !n.expected {
				msg := fmt.Sprintf("%s exited on its own (%v) at %s", n.Name, err, time.Now().Format("15:04:05.000"))
				n.unexpect = append(n.unexpect, msg)
				c.logf("chaos: %s", msg)
			}
			n.state = StateDown
		}
		n.mu.Unlock()
		close(done)
	}()
	if err := n.waitReady(ctx, done); err != nil {
		return err
	}
	n.mu.Lock()
	n.ready = true
	n.mu.Unlock()
	return nil
}

// waitReady waits until the process answers a client (and its mount is
// there), or it exits, or readyWait passes.
func (n *Node) waitReady(ctx context.Context, done <-chan struct{}) error {
	deadline := time.Now().Add(n.c.readyWait)
	for {
		select {
		case <-done:
			return fmt.Errorf("chaos: %s exited while starting (see %s)", n.Name, n.Log)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if n.serving() {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("chaos: %s did not become ready within %v (see %s)", n.Name, n.c.readyWait, n.Log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (n *Node) serving() bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	cl, err := wire.Dial(ctx, []string{n.Addr}, wire.Options{DialTimeout: time.Second})
	if err != nil {
		return false
	}
	defer cl.Close()
	if _, err := cl.Self(ctx); err != nil {
		return false
	}
	if n.Mnt != "" {
		// Bounded: a mount left by a daemon that died may not answer.
		res := make(chan error, 1)
		go func() {
			_, err := os.Stat(filepath.Join(n.Mnt, ".doozerfs", "rev"))
			res <- err
		}()
		select {
		case err := <-res:
			if err != nil {
				return false
			}
		case <-time.After(2 * time.Second):
			return false
		}
		n.recordMinor()
	}
	return true
}

// recordMinor notes the FUSE connection of the node's mount, so that
// Shutdown can abort it if a daemon died and left it hanging.
func (n *Node) recordMinor() {
	if m, ok := fuseMinor(n.Mnt); ok {
		n.c.mu.Lock()
		n.c.minors[m] = n.Mnt
		n.c.mu.Unlock()
	}
}

// signal sends sig to the current process.
func (n *Node) signal(sig syscall.Signal) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil || n.cmd.Process == nil || n.state == StateDown || n.state == StateRemoved {
		return fmt.Errorf("chaos: %s is not running", n.Name)
	}
	return n.cmd.Process.Signal(sig)
}

// Kill kill -9s the process (resuming it first if it was paused, so that
// it dies at once), waits for it and clears its mount.
func (n *Node) Kill() {
	n.mu.Lock()
	cmd, done, st := n.cmd, n.done, n.state
	if cmd == nil || cmd.Process == nil || st == StateDown || st == StateRemoved {
		n.mu.Unlock()
		return
	}
	n.expected = true
	n.state = StateDown // for clients, from now on
	n.mu.Unlock()
	cmd.Process.Kill()
	if st == StatePaused {
		cmd.Process.Signal(syscall.SIGCONT)
	}
	n.waitExit(done, 20*time.Second)
	n.clearMount()
}

func (n *Node) waitExit(done <-chan struct{}, d time.Duration) bool {
	select {
	case <-done:
		return true
	case <-time.After(d):
		n.c.logf("chaos: %s has not exited %v after SIGKILL", n.Name, d)
		return false
	}
}

// clearMount removes a dead daemon's mount: a daemon killed while one of
// its threads used its own mount lingers until its FUSE connection is
// aborted.
func (n *Node) clearMount() {
	if n.Mnt == "" {
		return
	}
	if _, err := n.c.clear(n.Mnt); err != nil {
		n.c.logf("chaos: clearing the mount of %s: %v", n.Name, err)
	}
}

// Pause SIGSTOPs the process.
func (n *Node) Pause() error {
	if err := n.signal(syscall.SIGSTOP); err != nil {
		return err
	}
	n.mu.Lock()
	n.state = StatePaused
	n.mu.Unlock()
	return nil
}

// Resume SIGCONTs a paused process.
func (n *Node) Resume() error {
	n.mu.Lock()
	if n.state != StatePaused {
		n.mu.Unlock()
		return nil
	}
	n.state = StateUp
	n.mu.Unlock()
	return n.signal(syscall.SIGCONT)
}

// PowerLoss simulates a power loss of the node: its WAL forgets what was
// not fdatasynced and the process dies (the replica must run with
// DOOZERFS_TEST_FAULTS=power-loss-signal). Falls back to kill -9 if the
// process does not die in time.
func (n *Node) PowerLoss() {
	n.mu.Lock()
	cmd, done, st := n.cmd, n.done, n.state
	if cmd == nil || cmd.Process == nil || st == StateDown || st == StateRemoved {
		n.mu.Unlock()
		return
	}
	n.expected = true
	n.state = StateDown
	n.mu.Unlock()
	if st == StatePaused {
		cmd.Process.Signal(syscall.SIGCONT)
	}
	cmd.Process.Signal(syscall.SIGUSR1)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		n.c.logf("chaos: %s did not die of its simulated power loss; kill -9", n.Name)
		cmd.Process.Kill()
		n.waitExit(done, 20*time.Second)
	}
	n.clearMount()
}

// ExpectExit tells the harness that the current process will exit on its
// own (an injected disk-full failure), so it is not reported.
func (n *Node) ExpectExit() {
	n.mu.Lock()
	n.expected = true
	n.mu.Unlock()
}

// Exited returns a channel closed when the current process has exited.
func (n *Node) Exited() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.done == nil {
		c := make(chan struct{})
		close(c)
		return c
	}
	return n.done
}

// Stop ends the process with SIGTERM, as an operator would, and reports
// how it went: a replica must shut down cleanly after any chaos.
func (n *Node) Stop(d time.Duration) error {
	n.mu.Lock()
	cmd, done, st := n.cmd, n.done, n.state
	if cmd == nil || cmd.Process == nil || st == StateDown || st == StateRemoved {
		n.mu.Unlock()
		return nil
	}
	n.expected = true
	n.mu.Unlock()
	if st == StatePaused {
		cmd.Process.Signal(syscall.SIGCONT)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(d):
		cmd.Process.Kill()
		n.waitExit(done, 20*time.Second)
		n.clearMount()
		return fmt.Errorf("%s did not exit within %v of SIGTERM", n.Name, d)
	}
	n.mu.Lock()
	err := n.exit
	n.mu.Unlock()
	if err != nil {
		n.clearMount()
		return fmt.Errorf("%s exited with %v after SIGTERM", n.Name, err)
	}
	return nil
}

// MarkRemoved records that the node left the cluster for good and kills
// its process.
func (n *Node) MarkRemoved() {
	n.Kill()
	n.mu.Lock()
	n.state = StateRemoved
	n.mu.Unlock()
	n.c.net.RemoveNode(n.Name)
}

// Unexpected returns the unexpected exits seen.
func (n *Node) Unexpected() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.unexpect...)
}

// Env returns the extra environment of the current process.
func (n *Node) Env() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.env
}

// CountFDs returns the number of open fds of the process, -1 if unknown.
func (n *Node) CountFDs() int {
	pid := n.Pid()
	if pid == 0 {
		return -1
	}
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return -1
	}
	return len(ents)
}

// CountGoroutines returns the goroutines of the process from its pprof
// endpoint, -1 if unknown.
func (n *Node) CountGoroutines() int {
	cl := http.Client{Timeout: 3 * time.Second}
	resp, err := cl.Get("http://" + n.HTTP + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 1<<20))
	if sc.Scan() {
		// "goroutine profile: total N"
		if f := strings.Fields(sc.Text()); len(f) == 4 {
			if v, err := strconv.Atoi(f[3]); err == nil {
				return v
			}
		}
	}
	return -1
}

// Baseline records the fd and goroutine counts of the current process.
func (n *Node) Baseline() {
	fds, gor := n.CountFDs(), n.CountGoroutines()
	for i := 0; gor < 0 && i < 20; i++ { // the HTTP server starts after the replica
		time.Sleep(100 * time.Millisecond)
		gor = n.CountGoroutines()
	}
	n.mu.Lock()
	n.baseFDs, n.baseGor = fds, gor
	n.mu.Unlock()
}

// Base returns the counts Baseline recorded for the current process.
func (n *Node) Base() (fds, goroutines int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.baseFDs, n.baseGor
}

// Starts returns how many times the node was started.
func (n *Node) Starts() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.starts
}

// Shutdown ends everything of the cluster: processes (kill -9), mounts,
// proxies. It is safe to call more than once.
func (c *Cluster) Shutdown() {
	for _, n := range c.Nodes() {
		n.Kill()
		n.clearMount()
	}
	c.net.Close()
	c.abortStale()
}

// abortStale aborts the FUSE connections of the run's mounts that are no
// longer mounted (lazily unmounted, with a request still waiting on a dead
// daemon): otherwise a harness goroutine stuck on one keeps this process
// from ever exiting. A connection number now mounted elsewhere belongs to
// someone else and is left alone.
func (c *Cluster) abortStale() {
	c.mu.Lock()
	minors := maps.Clone(c.minors)
	c.mu.Unlock()
	mounted := mountedMinors()
	for m := range minors {
		if _, busy := mounted[m]; busy {
			continue
		}
		p := fmt.Sprintf("/sys/fs/fuse/connections/%d/abort", m)
		if _, err := os.Stat(p); err == nil {
			os.WriteFile(p, []byte("1"), 0)
		}
	}
}

// fuseMinor returns the device minor (the fusectl connection number) of
// the FUSE mount at dir.
func fuseMinor(dir string) (uint64, bool) {
	for m, d := range mountedMinors() {
		if d == dir {
			return m, true
		}
	}
	return 0, false
}

// mountedMinors maps the device minor of every FUSE mount of this mount
// namespace to its mountpoint (from /proc/self/mountinfo).
func mountedMinors() map[uint64]string {
	out := map[uint64]string{}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 10 {
			continue
		}
		i := slices.Index(f, "-")
		if i < 0 || i+1 >= len(f) || !strings.HasPrefix(f[i+1], "fuse") || strings.HasPrefix(f[i+1], "fusectl") {
			continue
		}
		_, mi, ok := strings.Cut(f[2], ":")
		m, err := strconv.ParseUint(mi, 10, 32)
		if ok && err == nil && f[0] != "" {
			out[m] = f[4]
		}
	}
	return out
}

// Client dials the given nodes' addresses.
func (c *Cluster) Client(ctx context.Context, nodes []*Node, name string) (*wire.Client, error) {
	var addrs []string
	for _, n := range nodes {
		addrs = append(addrs, n.Addr)
	}
	if len(addrs) == 0 {
		return nil, errors.New("chaos: no nodes to dial")
	}
	return wire.Dial(ctx, addrs, wire.Options{Name: name, DialTimeout: time.Second})
}
