package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/doozerfs/doozerfs/fs"
	"github.com/doozerfs/doozerfs/wire"
)

// Config configures one run.
type Config struct {
	// Binary is the doozerfs binary the replicas run.
	Binary string
	// Seed decides the schedule (and the clients' random choices).
	Seed uint64
	// Schedule, if set, is run instead of NewSchedule(Seed, Options).
	Schedule *Schedule
	// Options bound the schedule NewSchedule draws.
	Options ScheduleOptions
	// Dir is where the run keeps data dirs, mounts, logs and its report;
	// it must not exist or be empty. It is removed after a run that
	// passed unless KeepDir.
	Dir     string
	KeepDir bool
	// KVClients is the number of KV clients (0: two per replica).
	KVClients int
	// TestFaults are items of DOOZERFS_TEST_FAULTS for every replica, on
	// top of power-loss-signal (which power-loss faults need). A broken
	// build for TestChaosCatchesBrokenBuild: "ack-before-fsync".
	TestFaults []string
	// ClearMount clears a dead daemon's stale mount (mount.ClearStale).
	ClearMount func(dir string) (bool, error)
	// Logf receives progress lines; nil discards them.
	Logf func(string, ...any)
	// Settle is how long the workload goes on once every fault is healed
	// (default 3 s).
	Settle time.Duration
	// PorcupineTimeout bounds the linearizability check (default 60 s).
	PorcupineTimeout time.Duration
}

// Report is the outcome of a run.
type Report struct {
	Seed       uint64
	Options    ScheduleOptions
	Schedule   Schedule
	Violations []Violation
	Notes      []string
	Timeline   []string
	Stats      string
	Dir        string
	Took       time.Duration
}

// Failed reports whether any check failed.
func (r *Report) Failed() bool { return len(r.Violations) > 0 }

func (r *Report) String() string {
	var b strings.Builder
	verdict := "PASS"
	if r.Failed() {
		verdict = fmt.Sprintf("FAIL (%d violations)", len(r.Violations))
	}
	fmt.Fprintf(&b, "chaos seed %d: %s in %v; %s\n", r.Seed, verdict, r.Took.Round(time.Second), r.Stats)
	b.WriteString(r.Schedule.String())
	for _, v := range r.Violations {
		fmt.Fprintf(&b, "VIOLATION %s\n", v)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	if r.Failed() {
		b.WriteString("timeline:\n")
		for _, t := range r.Timeline {
			fmt.Fprintf(&b, "  %s\n", t)
		}
		fmt.Fprintf(&b, "replica logs, data and the report are in %s\n", r.Dir)
		fmt.Fprintf(&b, "reproduce: %s\n", r.Repro())
	}
	return b.String()
}

// Repro is the command line that runs the same schedule again.
func (r *Report) Repro() string {
	mounts := map[int]string{0: "", 1: " CHAOS_MOUNTS=1", -1: " CHAOS_MOUNTS=0"}[r.Options.Mounts]
	nodes := ""
	if r.Options.Nodes != 0 {
		nodes = fmt.Sprintf(" CHAOS_NODES=%d", r.Options.Nodes)
	}
	return fmt.Sprintf("CHAOS_SEED=%d CHAOS_FAULT_TIME=%v%s%s go test -count=1 -timeout 0 -run TestChaosSeed -v ./replica/chaos/",
		r.Seed, r.Options.FaultTime, nodes, mounts)
}

// runner carries out one run.
type runner struct {
	cfg   Config
	sched Schedule
	c     *Cluster
	w     *workload
	chk   *checker
	rng   *rand.Rand // runtime choices (which half of a split, …)
	start time.Time
	logf  func(string, ...any)

	mu       sync.Mutex
	timeline []string
	progress time.Time
	newNodes int
	extra    map[string]bool // bodies written by the harness itself
}

func (r *runner) event(format string, args ...any) {
	line := fmt.Sprintf("%7.2fs ", time.Since(r.start).Seconds()) + fmt.Sprintf(format, args...)
	r.mu.Lock()
	r.timeline = append(r.timeline, line)
	r.progress = time.Now()
	r.mu.Unlock()
	r.logf("chaos: %s", line)
	if f, err := os.OpenFile(filepath.Join(r.cfg.Dir, "timeline.txt"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
		f.WriteString(line + "\n")
		f.Close()
	}
}

// watchdog writes a dump of the harness's goroutines to the run's
// directory when the run makes no progress for stallAfter: a hang of the
// harness (or of a mount it uses) is then diagnosable.
func (r *runner) watchdog(stop <-chan struct{}) {
	const stallAfter = 2 * time.Minute
	dumps := 0
	for {
		select {
		case <-stop:
			return
		case <-time.After(10 * time.Second):
		}
		r.mu.Lock()
		stalled := time.Since(r.progress) > stallAfter
		if stalled {
			r.progress = time.Now()
		}
		r.mu.Unlock()
		if !stalled {
			continue
		}
		dumps++
		buf := make([]byte, 8<<20)
		buf = buf[:runtime.Stack(buf, true)]
		p := filepath.Join(r.cfg.Dir, fmt.Sprintf("stall-%d.txt", dumps))
		os.WriteFile(p, buf, 0o644)
		r.event("no progress for %v: the harness's goroutines are in %s", stallAfter, p)
	}
}

// Run carries out one seeded run: it starts a cluster, runs the workload
// through the schedule's faults, heals everything and checks the history
// and the replicas. An error means the harness could not run (the cluster
// did not start); what goes wrong after that is a violation in the report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if cfg.Settle <= 0 {
		cfg.Settle = 3 * time.Second
	}
	if cfg.PorcupineTimeout <= 0 {
		cfg.PorcupineTimeout = 60 * time.Second
	}
	sched := NewSchedule(cfg.Seed, cfg.Options)
	if cfg.Schedule != nil {
		sched = *cfg.Schedule
		sched.Seed = cfg.Seed
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	r := &runner{cfg: cfg, sched: sched, chk: newChecker(cfg.Dir), start: time.Now(), logf: cfg.Logf,
		rng: rand.New(rand.NewPCG(cfg.Seed, 0x72756e)), extra: map[string]bool{}}
	r.progress = time.Now()
	stopDog := make(chan struct{})
	defer close(stopDog)
	go r.watchdog(stopDog)
	cfg.Logf("chaos: %s", sched)
	voters := sched.Nodes
	r.c = NewCluster(ClusterConfig{Binary: cfg.Binary, Dir: cfg.Dir, Mounts: sched.Mounts, Voters: voters,
		Extra: []string{"--snapshot-every", fmt.Sprint(sched.SnapshotEvery)},
		Env:   []string{"DOOZERFS_TEST_FAULTS=" + r.faultsEnv()}, ClearMount: cfg.ClearMount, Logf: cfg.Logf})
	defer r.c.Shutdown()
	rep := &Report{Seed: cfg.Seed, Options: cfg.Options, Schedule: sched, Dir: cfg.Dir}
	if err := r.startCluster(ctx); err != nil {
		return nil, err
	}
	for _, n := range r.c.Members() {
		n.Baseline()
	}
	kv := cfg.KVClients
	if kv <= 0 {
		kv = 2 * sched.Nodes
	}
	w, err := startWorkload(r.c, cfg.Seed, kv, cfg.Logf)
	if err != nil {
		return nil, fmt.Errorf("chaos: starting the workload: %w", err)
	}
	r.w = w
	defer w.closeClients()
	defer w.halt()
	r.event("workload started: %d kv clients, 2 waiters, %d watchers, mounts %v", kv, len(w.watches), sched.Mounts)
	sleepCtx(ctx, 2*time.Second)
	for i, e := range sched.Episodes {
		if ctx.Err() != nil {
			break
		}
		r.event("episode %d: %s", i+1, e)
		r.episode(ctx, e)
		r.c.Net().Heal()
		sleepCtx(ctx, e.Gap)
	}
	r.finish(ctx)
	h := w.history()
	rep.Violations = r.chk.violations()
	rep.Notes = r.chk.notes
	r.mu.Lock()
	rep.Timeline = slices.Clone(r.timeline)
	r.mu.Unlock()
	rep.Stats = summary(h)
	rep.Took = time.Since(r.start)
	os.WriteFile(filepath.Join(cfg.Dir, "report.txt"), []byte(rep.String()), 0o644)
	return rep, nil
}

// faultsEnv is DOOZERFS_TEST_FAULTS for the replicas, plus more items.
func (r *runner) faultsEnv(more ...string) string {
	return strings.Join(append(append([]string{"power-loss-signal"}, r.cfg.TestFaults...), more...), ",")
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// startCluster starts the schedule's replicas, the first founding the
// cluster, and waits until they are all voters.
func (r *runner) startCluster(ctx context.Context) error {
	var first *Node
	for i := range r.sched.Nodes {
		var join []*Node
		if first != nil {
			join = []*Node{first}
		}
		n, err := r.c.AddNode(ctx, fmt.Sprintf("n%d", i+1), join)
		if err != nil {
			return err
		}
		if first == nil {
			first = n
		}
	}
	r.newNodes = r.sched.Nodes
	if err := r.waitMembership(ctx, 60*time.Second); err != nil {
		return err
	}
	cl, err := r.c.Client(ctx, r.c.Members(), "chaos-setup")
	if err != nil {
		return err
	}
	defer cl.Close()
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for _, n := range r.c.Members() {
		if _, err := cl.Mkdir(sctx, mountDir(n)); err != nil {
			return fmt.Errorf("chaos: mkdir %s: %w", mountDir(n), err)
		}
	}
	r.event("cluster of %d started (%s)", r.sched.Nodes, strings.Join(r.names(r.c.Members()), " "))
	return nil
}

func (r *runner) names(ns []*Node) []string {
	var out []string
	for _, n := range ns {
		out = append(out, n.Name)
	}
	return out
}

// waitMembership waits until a running member lists exactly the members
// of the cluster, with as many voters as --voters allows, and a leader.
func (r *runner) waitMembership(ctx context.Context, d time.Duration) error {
	deadline := time.Now().Add(d)
	var last string
	for time.Now().Before(deadline) && ctx.Err() == nil {
		want := r.names(r.c.Members())
		sort.Strings(want)
		for _, n := range r.c.Members() {
			if !n.Running() {
				continue
			}
			ms, err := memberList(ctx, n)
			if err != nil {
				last = err.Error()
				continue
			}
			var got []string
			voters, leader := 0, false
			for _, m := range ms {
				got = append(got, m.Name)
				if m.Role == wire.RoleVoter {
					voters++
				}
				leader = leader || m.Leader
			}
			sort.Strings(got)
			last = fmt.Sprintf("%s lists %v (%d voters, leader %v); want %v", n.Name, got, voters, leader, want)
			if slices.Equal(got, want) && voters == min(len(want), r.sched.Nodes) && leader {
				return nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("membership did not settle within %v: %s", d, last)
}

func memberList(ctx context.Context, n *Node) ([]wire.Member, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	cl, err := wire.Dial(ctx, []string{n.Addr}, wire.Options{DialTimeout: time.Second})
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	return cl.Members(ctx)
}

// leader returns the member that running members say leads, or nil.
func (r *runner) leader(ctx context.Context) *Node {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, n := range r.c.Members() {
			if !n.Running() {
				continue
			}
			sctx, cancel := context.WithTimeout(ctx, time.Second)
			cl, err := wire.Dial(sctx, []string{n.Addr}, wire.Options{DialTimeout: time.Second})
			if err == nil {
				self, err := cl.Self(sctx)
				cl.Close()
				if err == nil && self.Leader != "" {
					if l := r.c.Node(self.Leader); l != nil && l.State() != StateRemoved {
						cancel()
						return l
					}
				}
			}
			cancel()
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}

// resolve turns a schedule's target into a member.
func (r *runner) resolve(ctx context.Context, i int) *Node {
	ms := r.c.Members()
	if i == Leader {
		if l := r.leader(ctx); l != nil {
			return l
		}
		r.event("no leader known; taking a member at random")
		i = r.rng.IntN(len(ms))
	}
	return ms[i%len(ms)]
}

// others returns the members other than n.
func (r *runner) others(n *Node) []*Node {
	var out []*Node
	for _, m := range r.c.Members() {
		if m != n {
			out = append(out, m)
		}
	}
	return out
}

// restart starts n again (after a kill or a power loss); a replica that
// cannot restart is a violation.
func (r *runner) restart(ctx context.Context, n *Node, env ...string) {
	if n.State() != StateDown {
		return
	}
	var e []string
	if len(env) > 0 {
		e = []string{"DOOZERFS_TEST_FAULTS=" + r.faultsEnv(env...)}
	}
	if err := n.Start(ctx, e, len(env) > 0); err != nil {
		if ctx.Err() != nil {
			return
		}
		if len(env) > 0 {
			// A fault environment (a nearly full disk) may stop it at once.
			r.event("%s with %v stopped while starting: %v", n.Name, env, err)
			n.Kill()
			return
		}
		r.chk.fail("restart", "%s did not restart: %v", n.Name, err)
		r.event("restart of %s failed: %v", n.Name, err)
		n.Kill()
		return
	}
	n.Baseline()
	r.event("%s restarted (start %d)", n.Name, n.Starts())
}

// restartAll restarts the given nodes at once.
func (r *runner) restartAll(ctx context.Context, ns []*Node) {
	var wg sync.WaitGroup
	for _, n := range ns {
		wg.Add(1)
		go func() { defer wg.Done(); r.restart(ctx, n) }()
	}
	wg.Wait()
}

// episode carries out one episode up to its heal (not its gap).
func (r *runner) episode(ctx context.Context, e Episode) {
	net := r.c.Net()
	switch e.Fault {
	case FaultNone:
		sleepCtx(ctx, e.Hold)
	case FaultKill:
		n := r.resolve(ctx, e.Target)
		r.event("kill -9 %s", n.Name)
		n.Kill()
		sleepCtx(ctx, e.Hold)
		r.restart(ctx, n)
	case FaultPowerLoss:
		n := r.resolve(ctx, e.Target)
		r.event("power loss of %s", n.Name)
		n.PowerLoss()
		sleepCtx(ctx, e.Hold)
		r.restart(ctx, n)
	case FaultKillAll, FaultPowerLossAll:
		ms := r.c.Members()
		var wg sync.WaitGroup
		for _, n := range ms {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if e.Fault == FaultKillAll {
					n.Kill()
				} else {
					n.PowerLoss()
				}
			}()
		}
		wg.Wait()
		r.event("%s: every replica is down (%s)", e.Fault, strings.Join(r.names(ms), " "))
		sleepCtx(ctx, e.Hold)
		r.restartAll(ctx, ms)
	case FaultPause:
		n := r.resolve(ctx, e.Target)
		if err := n.Pause(); err != nil {
			r.event("cannot pause %s: %v", n.Name, err)
			return
		}
		r.event("SIGSTOP %s", n.Name)
		sleepCtx(ctx, e.Hold)
		n.Resume()
		r.event("SIGCONT %s", n.Name)
	case FaultIsolate:
		n := r.resolve(ctx, e.Target)
		net.Partition([]string{n.Name}, r.names(r.others(n)))
		r.event("isolated %s: %s", n.Name, net.Cuts())
		sleepCtx(ctx, e.Hold)
	case FaultMinority:
		ms := r.c.Members()
		var minority, rest []string
		for i, n := range ms {
			if slices.ContainsFunc(e.Targets, func(t int) bool { return t%len(ms) == i }) {
				minority = append(minority, n.Name)
			} else {
				rest = append(rest, n.Name)
			}
		}
		net.Partition(minority, rest)
		r.event("partitioned %v | %v", minority, rest)
		sleepCtx(ctx, e.Hold)
	case FaultSplit:
		ms := r.names(r.c.Members())
		r.rng.Shuffle(len(ms), func(i, j int) { ms[i], ms[j] = ms[j], ms[i] })
		size := max(1, (len(ms)/2+1)-1) // each group below a quorum
		var groups [][]string
		for i := 0; i < len(ms); i += size {
			groups = append(groups, ms[i:min(len(ms), i+size)])
		}
		net.Partition(groups...)
		r.event("split with no quorum anywhere: %v", groups)
		sleepCtx(ctx, e.Hold)
	case FaultBridge:
		n := r.resolve(ctx, e.Target)
		o := r.names(r.others(n))
		r.rng.Shuffle(len(o), func(i, j int) { o[i], o[j] = o[j], o[i] })
		half := len(o) / 2
		net.Partition(o[:half], o[half:])
		r.event("bridge: %v | %s | %v (only %s sees both sides)", o[:half], n.Name, o[half:], n.Name)
		sleepCtx(ctx, e.Hold)
	case FaultOneWay:
		a := r.resolve(ctx, e.Target)
		b := r.resolve(ctx, e.Other)
		if a == b {
			b = r.others(a)[r.rng.IntN(len(r.others(a)))]
		}
		net.Cut(a.Name, b.Name)
		r.event("one-way cut %s → %s", a.Name, b.Name)
		sleepCtx(ctx, e.Hold)
	case FaultFlap:
		n := r.resolve(ctx, e.Target)
		period := time.Duration(e.Param) * time.Millisecond
		r.event("flapping the links of %s every %v", n.Name, period)
		end := time.Now().Add(e.Hold)
		for time.Now().Before(end) && ctx.Err() == nil {
			net.Partition([]string{n.Name}, r.names(r.others(n)))
			sleepCtx(ctx, period)
			net.Heal()
			sleepCtx(ctx, period)
		}
	case FaultDiskFull:
		n := r.resolve(ctx, e.Target)
		r.event("disk full: %s restarts with a WAL that fails after %d more bytes", n.Name, e.Param)
		n.Kill()
		r.restart(ctx, n, fmt.Sprintf("wal-fail-after=%d", e.Param))
		select {
		case <-n.Exited():
			r.event("%s stopped on its full disk", n.Name)
		case <-time.After(e.Hold):
			r.event("%s still runs on its nearly full disk; kill -9", n.Name)
		case <-ctx.Done():
		}
		n.Kill()
		if n.State() == StateDown {
			r.restart(ctx, n)
		}
	case FaultReplace:
		n := r.resolve(ctx, e.Target)
		r.event("replace %s: kill -9, members remove, join a new replica", n.Name)
		n.Kill()
		sleepCtx(ctx, e.Hold/2)
		if r.remove(ctx, n) {
			r.join(ctx)
		} else {
			r.restart(ctx, n)
		}
	case FaultRemovePartition:
		n := r.resolve(ctx, e.Target)
		net.Partition([]string{n.Name}, r.names(r.others(n)))
		r.event("isolated %s, removing it from the other side", n.Name)
		sleepCtx(ctx, e.Hold/2)
		removed := r.remove(ctx, n)
		net.Heal()
		if removed {
			// Healed first, so that it hears of its removal for a moment.
			sleepCtx(ctx, e.Hold/2)
			n.MarkRemoved()
			r.join(ctx)
		}
	}
}

// remove removes n from the cluster through the other members; false if
// it could not be done in time.
func (r *runner) remove(ctx context.Context, n *Node) bool {
	var through []*Node
	for _, m := range r.others(n) {
		if m.Running() {
			through = append(through, m)
		}
	}
	if len(through) == 0 {
		return false
	}
	cl, err := r.c.Client(ctx, through, "chaos-members")
	if err != nil {
		r.event("members remove %s: %v", n.Name, err)
		return false
	}
	defer cl.Close()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = cl.RemoveMember(rctx, n.Name)
		cancel()
		if err == nil || fs.KindOf(err) == fs.KindNoEnt {
			r.event("%s removed from the cluster", n.Name)
			n.MarkRemoved()
			return true
		}
		time.Sleep(300 * time.Millisecond)
	}
	r.event("members remove %s failed: %v", n.Name, err)
	r.chk.note("members remove %s failed during a fault: %v", n.Name, err)
	return false
}

// join adds a new replica, joining through the running members.
func (r *runner) join(ctx context.Context) {
	r.newNodes++
	name := fmt.Sprintf("n%d", r.newNodes)
	var through []*Node
	for _, m := range r.c.Members() {
		if m.Running() {
			through = append(through, m)
		}
	}
	n, err := r.c.AddNode(ctx, name, through)
	if err != nil {
		r.chk.fail("join", "a new replica %s could not join: %v", name, err)
		return
	}
	cl, err := r.c.Client(ctx, r.c.Members(), "chaos-setup")
	if err == nil {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		cl.Mkdir(sctx, mountDir(n))
		cancel()
		cl.Close()
	}
	n.Baseline()
	r.event("%s joined", name)
}

// finish heals everything, lets the cluster recover, stops the workload
// and runs every check.
func (r *runner) finish(ctx context.Context) {
	net := r.c.Net()
	net.Heal()
	for _, n := range r.c.Members() {
		n.Resume()
	}
	var down []*Node
	for _, n := range r.c.Members() {
		if n.State() == StateDown {
			down = append(down, n)
		} else if len(n.Env()) > 0 { // still on a fault's environment
			n.Kill()
			down = append(down, n)
		}
	}
	r.restartAll(ctx, down)
	r.event("healed: every link restored, every member running")
	if !r.probeWrite(ctx, 60*time.Second) {
		r.chk.fail("recovery", "no write succeeded within 60 s of healing every fault")
	}
	before := r.w.acked.Load()
	sleepCtx(ctx, r.cfg.Settle)
	if r.w.acked.Load() == before {
		r.chk.fail("recovery", "the clients completed no write in the %v after healing", r.cfg.Settle)
	}
	r.w.halt()
	if !r.w.haltMounts(60 * time.Second) {
		r.chk.fail("mount", "a mount operation is still blocked 60 s after every fault was healed")
	}
	r.event("workload stopped")
	if err := r.waitMembership(ctx, 45*time.Second); err != nil {
		r.chk.fail("membership", "%v", err)
	}
	until := r.sentinel(ctx)
	if until == 0 {
		r.chk.fail("recovery", "the final write did not succeed")
		return
	}
	r.event("final write at rev %d", until)
	r.converge(ctx, until)
	r.w.drainWatches(until, 30*time.Second)
	h := r.w.history()
	l := r.collectLog(ctx, h, until)
	chk := r.chk
	chk.checkErrors(h)
	if l != nil {
		chk.checkAgainstLog(h, l, r.extra)
		chk.checkWriteOrder(h, l)
		chk.checkReads(h, l)
		chk.checkWaits(h, l)
		chk.checkWatches(h, l, until)
	}
	chk.checkSessions(h)
	if l == nil {
		l = &eventLog{from: 1 << 62, setAt: map[string]int64{}, byPath: map[string][]fs.Event{}}
	}
	chk.checkPorcupine(h, l, r.cfg.PorcupineTimeout)
	chk.checkMountOps(h)
	if r.sched.Mounts {
		r.checkMountsUsable(ctx)
	}
	r.checkCtlAddrs(ctx)
	for _, n := range r.c.Members() {
		if p := r.c.Net().Proxy(n.Name); p != nil {
			tcp, udp, dropped := p.TCPBytes.Load(), p.UDPPackets.Load(), p.UDPDropped.Load()
			chk.note("proxy of %s: %d TCP bytes, %d UDP packets forwarded, %d dropped", n.Name, tcp, udp, dropped)
			if tcp == 0 || udp == 0 {
				chk.fail("proxy", "the proxy of %s carried no TCP or no UDP traffic: its peers do not dial what it advertises", n.Name)
			}
		}
	}
	r.w.closeClients()
	r.checkLeaks()
	for _, n := range r.c.Members() {
		if err := n.Stop(30 * time.Second); err != nil {
			chk.fail("shutdown", "%v", err)
		}
	}
	for _, n := range r.c.Nodes() {
		for _, u := range n.Unexpected() {
			chk.fail("exits", "%s", u)
		}
		chk.scanLog(n)
	}
}

// probeWrite waits until a write through every running member succeeds.
func (r *runner) probeWrite(ctx context.Context, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for _, n := range r.c.Members() {
		ok := false
		for !ok && time.Now().Before(deadline) && ctx.Err() == nil {
			cl, err := r.c.Client(ctx, []*Node{n}, "chaos-probe")
			if err == nil {
				pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				body := fmt.Sprintf("probe-%s-%d", n.Name, time.Now().UnixNano())
				r.mu.Lock()
				r.extra[body] = true
				r.mu.Unlock()
				_, err = cl.Set(pctx, "/chaos/probe/"+n.Name, fs.Clobber, []byte(body))
				cancel()
				cl.Close()
				ok = err == nil
			}
			if !ok {
				time.Sleep(200 * time.Millisecond)
			}
		}
		if !ok {
			r.event("no write through %s succeeded", n.Name)
			return false
		}
	}
	return true
}

// sentinel writes the final transaction that every watcher's glob matches
// and returns its revision (0 if it could not).
func (r *runner) sentinel(ctx context.Context) int64 {
	cl, err := r.c.Client(ctx, r.c.Members(), "chaos-final")
	if err != nil {
		return 0
	}
	defer cl.Close()
	for i := range 20 {
		body := fmt.Sprintf("end-%d", i)
		r.mu.Lock()
		r.extra[body] = true
		r.mu.Unlock()
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		rev, err := cl.Txn(sctx, []fs.Op{
			{Kind: fs.OpSet, Path: "/chaos/end", Rev: fs.Clobber, Body: []byte(body)},
			{Kind: fs.OpSet, Path: "/chaos/kv/end", Rev: fs.Clobber, Body: []byte(body)},
			{Kind: fs.OpSet, Path: "/chaos/tx/end", Rev: fs.Clobber, Body: []byte(body)},
		})
		cancel()
		if err == nil {
			return rev
		}
		time.Sleep(500 * time.Millisecond)
	}
	return 0
}

// converge waits until every member has applied revision until, checks
// that their trees are the same there, and that they end at the same
// revision.
func (r *runner) converge(ctx context.Context, until int64) {
	ms := r.c.Members()
	type view struct {
		rev   int64
		files string
	}
	views := make([]view, len(ms))
	for i, n := range ms {
		cl, err := r.c.Client(ctx, []*Node{n}, "chaos-converge")
		if err != nil {
			r.chk.fail("convergence", "%s: %v", n.Name, err)
			continue
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			rev, err := cl.Rev(cctx)
			cancel()
			if err == nil && rev >= until {
				break
			}
			if time.Now().After(deadline) {
				r.chk.fail("convergence", "%s did not apply rev %d within 30 s (at %d, %v)", n.Name, until, rev, err)
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		files, err := cl.Walk(cctx, "/**", until)
		cancel()
		cl.Close()
		if err != nil {
			r.chk.fail("convergence", "%s: walk at rev %d: %v", n.Name, until, err)
			continue
		}
		var b strings.Builder
		for _, f := range files {
			fmt.Fprintf(&b, "%s rev=%d lease=%d %q\n", f.Path, f.Stat.Rev, f.Stat.Lease, f.Body)
		}
		views[i] = view{until, b.String()}
	}
	for i := 1; i < len(ms); i++ {
		if views[i].files != views[0].files && views[i].files != "" && views[0].files != "" {
			r.chk.fail("convergence", "%s and %s differ at rev %d:\n%s\n----\n%s", ms[0].Name, ms[i].Name, until,
				views[0].files, views[i].files)
		}
	}
	// And they settle at one revision.
	deadline := time.Now().Add(15 * time.Second)
	for {
		revs := map[string]int64{}
		same := true
		var first int64 = -1
		for _, n := range ms {
			cl, err := r.c.Client(ctx, []*Node{n}, "chaos-converge")
			if err != nil {
				same = false
				continue
			}
			cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			rev, err := cl.Rev(cctx)
			cancel()
			cl.Close()
			revs[n.Name] = rev
			if err != nil || (first >= 0 && rev != first) {
				same = false
			}
			if first < 0 {
				first = rev
			}
		}
		if same {
			r.event("%d members agree at rev %d and end at rev %d", len(ms), until, first)
			return
		}
		if time.Now().After(deadline) {
			r.chk.fail("convergence", "the members do not settle at one revision: %v", revs)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// collectLog builds the committed event history up to until: from the
// member whose history reaches back furthest, completed below that with
// the recorder's stream (a watcher on /** from rev 1), and checks every
// member's history against it where they overlap.
func (r *runner) collectLog(ctx context.Context, h *History, until int64) *eventLog {
	type src struct {
		name string
		from int64
		evs  []fs.Event
	}
	var srcs []src
	for _, n := range r.c.Members() {
		from, evs, err := memberHistory(ctx, n, until)
		if err != nil {
			r.chk.note("no event history from %s: %v", n.Name, err)
			continue
		}
		srcs = append(srcs, src{n.Name, from, evs})
	}
	if len(srcs) == 0 {
		r.chk.fail("history", "no member could stream its event history")
		return nil
	}
	sort.Slice(srcs, func(i, j int) bool { return srcs[i].from < srcs[j].from })
	best := srcs[0]
	for _, s := range srcs[1:] {
		a := slices.DeleteFunc(slices.Clone(best.evs), func(e fs.Event) bool { return e.Rev < s.from })
		if i, ok := firstDiff(a, s.evs); !ok {
			r.chk.fail("convergence", "the event histories of %s and %s differ (from rev %d, position %d):\n%s  ----\n%s",
				best.name, s.name, s.from, i, describeEvents(window(a, i)), describeEvents(window(s.evs, i)))
		}
	}
	evs, from := best.evs, best.from
	if from > 1 && len(h.Watches) > 0 && h.Watches[0].From == 1 && h.Watches[0].Glob == "/**" {
		rec := h.Watches[0]
		var early []fs.Event
		covered := int64(0)
		for _, e := range rec.Events {
			if e.Rev < from {
				early = append(early, e)
			}
			covered = max(covered, e.Rev)
		}
		if covered >= from-1 || rec.End == "" {
			evs = append(early, evs...)
			r.chk.note("event log: revs 1..%d from the recorder's stream, the rest from %s", from-1, best.name)
			from = 1
		}
	}
	if from > 1 {
		r.chk.note("event log incomplete: it starts at rev %d", from)
	}
	r.event("event log: %d events, revs %d..%d (from %s)", len(evs), from, until, best.name)
	return newEventLog(r.chk, evs, from, until)
}

// memberHistory streams n's event history from the oldest revision it
// still holds up to until.
func memberHistory(ctx context.Context, n *Node, until int64) (int64, []fs.Event, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cl, err := wire.Dial(ctx, []string{n.Addr}, wire.Options{DialTimeout: time.Second})
	if err != nil {
		return 0, nil, err
	}
	defer cl.Close()
	// The oldest revision readable: reads below the history window are
	// TOO_LATE.
	lo, hi := int64(1), until
	for lo < hi {
		mid := (lo + hi) / 2
		_, err := cl.Stat(ctx, "/", mid)
		switch {
		case err == nil:
			hi = mid
		case fs.KindOf(err) == fs.KindTooLate:
			lo = mid + 1
		default:
			return 0, nil, err
		}
	}
	from := lo
	w, err := cl.Watch(ctx, "/**", from)
	if err != nil && fs.KindOf(err) == fs.KindTooLate {
		from++
		w, err = cl.Watch(ctx, "/**", from)
	}
	if err != nil {
		return 0, nil, err
	}
	defer w.Close()
	var evs []fs.Event
	for {
		batch, err := w.NextBatch(ctx)
		if err != nil {
			return 0, nil, fmt.Errorf("streaming history from rev %d: %w", from, err)
		}
		for _, e := range batch {
			if e.Rev <= until {
				evs = append(evs, e)
			}
		}
		if batch[len(batch)-1].Rev >= until {
			return from, evs, nil
		}
	}
}

// checkMountsUsable: every mount shows the files the store holds, takes a
// write, and every other mount sees it.
func (r *runner) checkMountsUsable(ctx context.Context) {
	ms := r.c.Members()
	cl, err := r.c.Client(ctx, ms, "chaos-mounts")
	if err != nil {
		r.chk.fail("mount", "%v", err)
		return
	}
	defer cl.Close()
	for _, n := range ms {
		if n.Mnt == "" || !n.Running() {
			continue
		}
		body := fmt.Sprintf("mount-probe-%s\n", n.Name)
		r.mu.Lock()
		r.extra[body] = true
		r.mu.Unlock()
		p := "/chaos/mnt/probe-" + n.Name
		if err := writeFileTimeout(filepath.Join(n.Mnt, p), body, 20*time.Second); err != nil {
			r.chk.fail("mount", "the mount of %s takes no write after the run: %v", n.Name, err)
			continue
		}
		for _, o := range ms {
			if o.Mnt == "" || !o.Running() {
				continue
			}
			if !eventually(10*time.Second, func() bool {
				b, err := readFileTimeout(filepath.Join(o.Mnt, p), 5*time.Second)
				return err == nil && string(b) == body
			}) {
				r.chk.fail("mount", "a write through the mount of %s is not visible through the mount of %s", n.Name, o.Name)
			}
		}
	}
	// Every mount shows the store's files.
	files, err := cl.Consistent().Walk(ctx, "/chaos/mnt/**", 0)
	if err != nil {
		r.chk.fail("mount", "walk /chaos/mnt: %v", err)
		return
	}
	for _, n := range ms {
		if n.Mnt == "" || !n.Running() {
			continue
		}
		for _, f := range files {
			if !eventually(10*time.Second, func() bool {
				b, err := readFileTimeout(filepath.Join(n.Mnt, f.Path), 5*time.Second)
				return err == nil && string(b) == string(f.Body)
			}) {
				b, err := readFileTimeout(filepath.Join(n.Mnt, f.Path), 5*time.Second)
				r.chk.fail("mount", "the mount of %s shows %q (%v) for %s, the store holds %q", n.Name, b, err, f.Path, f.Body)
			}
		}
	}
}

func eventually(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// writeFileTimeout and readFileTimeout do file I/O on a mount with a
// bound: a hung mount is reported, not waited for forever (the goroutine
// stays behind until the mount is cleared at the end of the run).
func writeFileTimeout(path, body string, d time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- writeFileRaw(path, []byte(body)) }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		return fmt.Errorf("write %s hung for %v", path, d)
	}
}

func readFileTimeout(path string, d time.Duration) ([]byte, error) {
	type res struct {
		b   []byte
		err error
	}
	done := make(chan res, 1)
	go func() { b, err := readFileRaw(path); done <- res{b, err} }()
	select {
	case r := <-done:
		return r.b, r.err
	case <-time.After(d):
		return nil, fmt.Errorf("read %s hung for %v", path, d)
	}
}

// checkCtlAddrs: /ctl/node/<name>/addr is the address each member
// advertises (the one its peers must dial).
func (r *runner) checkCtlAddrs(ctx context.Context) {
	cl, err := r.c.Client(ctx, r.c.Members(), "chaos-ctl")
	if err != nil {
		return
	}
	defer cl.Close()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for _, n := range r.c.Members() {
		b, _, err := cl.Consistent().Get(cctx, "/ctl/node/"+n.Name+"/addr", 0)
		if err != nil {
			r.chk.fail("ctl", "/ctl/node/%s/addr: %v", n.Name, err)
			continue
		}
		if string(b) != n.Adv {
			r.chk.fail("ctl", "/ctl/node/%s/addr is %q, but %s advertises %s (its own address is %s): peers restarting from it bypass --advertise",
				n.Name, b, n.Name, n.Adv, n.Addr)
		}
	}
}

// checkLeaks compares each member's fds and goroutines, once the clients
// are gone, with what it had when it started serving.
func (r *runner) checkLeaks() {
	sleepCtx(context.Background(), 3*time.Second)
	members := len(r.c.Members())
	for _, n := range r.c.Members() {
		fds, gor := n.Base()
		nowFDs, nowGor := n.CountFDs(), n.CountGoroutines()
		r.chk.note("%s: fds %d → %d, goroutines %d → %d (start %d)", n.Name, fds, nowFDs, gor, nowGor, n.Starts())
		if fds > 0 && nowFDs > fds+6*members+24 {
			r.chk.fail("leaks", "%s has %d fds open once every client left; it had %d when it started serving", n.Name, nowFDs, fds)
		}
		if gor > 0 && nowGor > gor+40*members+150 {
			r.chk.fail("leaks", "%s runs %d goroutines once every client left; it ran %d when it started serving", n.Name, nowGor, gor)
		}
	}
}

// summary counts the history's operations by kind and outcome.
func summary(h *History) string {
	count := map[string]int{}
	for i := range h.Ops {
		o := &h.Ops[i]
		k := o.In.Kind.String()
		if o.In.Consistent {
			k = "c" + k
		}
		count[k+"/"+o.Out.Res.String()]++
	}
	keys := make([]string, 0, len(count))
	for k := range count {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "%d ops (", len(h.Ops))
	for i, k := range keys {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%s=%d", k, count[k])
	}
	events := 0
	for _, w := range h.Watches {
		events += len(w.Events)
	}
	mw, mr := 0, 0
	for _, m := range h.MountOps {
		if m.Err != "" {
			continue
		}
		if m.Write {
			mw++
		} else {
			mr++
		}
	}
	fmt.Fprintf(&b, "), %d waits, %d watch events, mount writes/reads ok %d/%d", len(h.Waits), events, mw, mr)
	return b.String()
}
