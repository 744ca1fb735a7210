package main

// `doozerfs bench`: the workloads of shared/TARGETS.md, run against a
// running cluster (--addr) or, by default, a single replica started in this
// process on a temporary data directory.
//
// Each workload is one row of the workloads table below: its name, what it
// needs of the system under test, its target from TARGETS.md, and the
// function that runs it once and returns a benchResult. Adding a workload
// (mount-read, inotify-latency, failover, ...) is adding a row and, when it
// needs something new (a mount, replicas this process may kill), a need bit
// that benchEnv.has reports.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/doozerfs/doozerfs/fs"
	"github.com/doozerfs/doozerfs/replica"
	"github.com/doozerfs/doozerfs/wire"
)

func init() {
	register("bench", &command{
		usage: "[--addr A,B,C] [--workload W[,W]] [--runs N] [--json] ...",
		help:  "run the TARGETS.md workloads (default: on an in-process replica)",
		run:   runBench,
	})
}

// need is something a workload requires of the system under test.
type need uint8

const (
	needCluster need = 1 << iota // three or more replicas
	needMount                    // a FUSE mount of a replica
	needControl                  // replicas this process started and may kill
)

// GiB and MiB are byte counts of the scale targets.
const (
	MiB = 1 << 20
	GiB = 1 << 30
)

// target is a workload's line of the TARGETS.md figures table.
type target struct {
	etcd    string        // etcd 3.4.23 measured on this kind of machine
	goal    string        // doozerfs's target, as TARGETS.md words it
	minRate float64       // ops/s at least (0: no bound)
	maxP50  time.Duration // p50 at most (0: no bound)
	maxP99  time.Duration // p99 at most (0: no bound)
	maxRSS  uint64        // the replica's resident memory at most, in bytes (0: no bound)
}

// verdict says whether r meets the target: "met", "missed", or "" when the
// target has no bound this program can check.
func (t target) verdict(r *benchResult) string {
	if t.minRate == 0 && t.maxP50 == 0 && t.maxP99 == 0 && t.maxRSS == 0 {
		return ""
	}
	if r.Ops == 0 ||
		(t.minRate > 0 && r.Rate < t.minRate) ||
		(t.maxP50 > 0 && r.P50 > t.maxP50) ||
		(t.maxP99 > 0 && r.P99 > t.maxP99) ||
		(t.maxRSS > 0 && (r.RSS == 0 || r.RSS > t.maxRSS)) {
		return "missed"
	}
	return "met"
}

// workload is one benchmark of TARGETS.md.
type workload struct {
	name   string
	def    string // what is measured, after TARGETS.md
	needs  need
	target target
	run    func(ctx context.Context, b *benchEnv) (*benchResult, error)
	// scale marks the scale measurements: they run on `doozerfs serve`
	// child processes of their own, whatever the system under test, take
	// minutes at TARGETS.md's sizes, and so run only by name or with
	// --scale.
	scale bool
	// sweep marks the workloads --sweep runs at each client count.
	sweep bool
}

// workloads is the table of every workload, in the order they run.
var workloads = []*workload{
	{
		name: "seq-write",
		def:  "one client, sequential SETs (clobber) of SIZE-byte values over SEQ-KEYS keys",
		target: target{
			etcd: "815–866 ops/s, p50 1.10–1.17 ms, p99 2.0–2.5 ms",
			goal: "p50 ≤ 0.5 ms", maxP50: 500 * time.Microsecond,
		},
		run: runSeqWrite,
	},
	{
		name: "conc-write",
		def:  "CLIENTS concurrent clients spread over the replicas, SETs of SIZE bytes over CONC-KEYS random keys",
		target: target{
			etcd: "7.4k–8.3k ops/s, p99 16–21 ms",
			goal: "≥ 25k ops/s, p99 ≤ 10 ms", minRate: 25000, maxP99: 10 * time.Millisecond,
		},
		run:   runConcWrite,
		sweep: true,
	},
	{
		name: "local-read",
		def:  "CLIENTS concurrent clients, GETs of READ-KEYS keys served from the contacted replica's state",
		target: target{
			etcd: "17k ops/s, p50 2.8 ms",
			goal: "≥ 85k ops/s", minRate: 85000,
		},
		run:   runLocalRead,
		sweep: true,
	},
	{
		name: "watch-latency",
		def:  "a watcher on the last replica, a writer on the first; time from SET issued to event received",
		target: target{
			etcd: "p50 1.25 ms, p99 2.5 ms",
			goal: "p50 ≤ 0.6 ms", maxP50: 600 * time.Microsecond,
		},
		run: runWatchLatency,
	},
	{
		name:  "mount-read",
		def:   "open+read+close of a 1 KiB file through a mount of the last replica, MOUNT-READS times from one process; the same loop on a tmpfs file in the same run",
		needs: needMount,
		target: target{
			etcd: "—; tmpfs 2.2 µs, one FUSE round trip 50–80 µs",
			goal: "p50 ≤ 100 µs per cached open+read+close", maxP50: 100 * time.Microsecond,
		},
		run: runMountRead,
	},
	{
		name:  "inotify-latency",
		def:   "SET on the first replica; time until IN_CLOSE_WRITE for the file reaches an inotify watcher on the last replica's mount; INOTIFY-EVENTS events",
		needs: needMount,
		target: target{
			etcd: "—; floor watch-latency + one replay",
			goal: "p50 ≤ 2 ms", maxP50: 2 * time.Millisecond,
		},
		run: runInotifyLatency,
	},
	{
		name:  "failover",
		def:   "stop the leader of a cluster this process started (--local N), time until a write through another replica commits; restart it; FAILOVERS times",
		needs: needCluster | needControl,
		target: target{
			etcd: "election 1 s by default",
			goal: "≤ 1 s p50", maxP50: time.Second,
		},
		run: runFailover,
	},
	{
		name: "scale-files",
		def:  "FILES files of SIZE bytes written (FILES-BATCH to a transaction, from CLIENTS clients) to one `doozerfs serve` child process; its resident memory (VmRSS, peak VmHWM) once they are in",
		target: target{
			etcd: "—",
			goal: "RSS ≤ 1 GiB for 1,000,000 files", maxRSS: GiB,
		},
		run:   runScaleFiles,
		scale: true,
	},
	{
		name: "restart",
		def:  "SIGKILL the scale-files replica and start it again on its data directory; time until it answers a GET of the last file written",
		target: target{
			etcd: "—",
			goal: "≤ 10 s", maxP50: 10 * time.Second,
		},
		run:   runRestart,
		scale: true,
	},
	{
		name: "catch-up",
		def:  "a new member joins the scale-files replica on an empty data directory; time until it has applied the revision the cluster was at (by snapshot)",
		target: target{
			etcd: "—",
			goal: "≤ 10 s", maxP50: 10 * time.Second,
		},
		run:   runCatchUp,
		scale: true,
	},
	{
		name: "watches",
		def:  "WATCHES open WATCHes (each on its own file) on a fresh `doozerfs serve` child process; its resident memory with them open",
		target: target{
			etcd: "—",
			goal: "RSS ≤ 200 MiB with 10,000 watches", maxRSS: 200 * MiB,
		},
		run:   runWatches,
		scale: true,
	},
}

func findWorkload(name string) *workload {
	for _, w := range workloads {
		if w.name == name {
			return w
		}
	}
	return nil
}

// benchParams are the sizes and counts of the workloads (TARGETS.md's by
// default).
type benchParams struct {
	seqWrites, seqKeys   int
	concWrites, concKeys int
	reads, readKeys      int
	events               int
	failovers            int
	clients, conns       int
	size                 int
	prefix               string
	mountReads           int // mount-read: open+read+close loops
	inotifyEvents        int // inotify-latency: events
	files, filesBatch    int // scale-files: files, files per transaction
	watches              int // watches: open WATCHes
	snapshotEvery        int // scale children: serve --snapshot-every (0: its default)
	serveBin             string
	secret               string
}

// benchEnv is the system under test and how to reach it.
type benchEnv struct {
	addrs   []string
	opts    wire.Options
	p       benchParams
	inproc  bool
	local   *replica.Replica // in-process: the replica (a mount workload can mount it)
	dataDir string           // in-process: the replica's data directory
	fsType  string           // in-process: the file system it is on
	cluster *benchCluster    // --local N: the replicas this process started
	// mountDir is an existing mount of the cluster under test (--mount-dir);
	// when empty and canMount, the mount workloads mount the last replica
	// this process started.
	mountDir string
	canMount bool
	scale    *scaleFixture // the scale-files replica, once started
	// withScale: the scale workloads are in the default set (--scale).
	withScale bool
	// sweeping: --sweep; only the workloads with a client count run.
	sweeping bool
	// dataParent is where temporary data directories go (--data).
	dataParent string
	// loadAvg is the machine's 1-minute load average when the bench
	// started ("" if unknown): the plot says how busy the machine was.
	loadAvg string
}

// has reports whether the system under test provides n.
func (b *benchEnv) has(n need) bool {
	var have need
	if len(b.addrs) >= 3 {
		have |= needCluster
	}
	if b.cluster != nil {
		have |= needControl
	}
	if b.mountDir != "" || b.canMount {
		have |= needMount
	}
	return n&^have == 0
}

// dial connects client number i: clients are spread over the replicas in
// turn, each trying the others after its own.
func (b *benchEnv) dial(ctx context.Context, i int) (*wire.Client, error) {
	n := len(b.addrs)
	order := make([]string, 0, n)
	for j := range n {
		order = append(order, b.addrs[(i+j)%n])
	}
	return wire.Dial(ctx, order, b.opts)
}

// dialMany returns n clients sharing conns connections (client i uses
// connection i%conns), spread over the replicas, and a function closing
// them all.
func (b *benchEnv) dialMany(ctx context.Context, n, conns int) ([]*wire.Client, func(), error) {
	conns = sharedConns(n, conns)
	cs := make([]*wire.Client, 0, conns)
	closeAll := func() {
		for _, c := range cs {
			c.Close()
		}
	}
	for i := range conns {
		c, err := b.dial(ctx, i)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		cs = append(cs, c)
	}
	clients := make([]*wire.Client, n)
	for i := range clients {
		clients[i] = cs[i%conns]
	}
	return clients, closeAll, nil
}

// sharedConns is how many connections n clients share under --conns.
func sharedConns(n, conns int) int {
	if conns <= 0 || conns > n {
		return n
	}
	return conns
}

func (b *benchEnv) path(dir string, i int) string {
	return fmt.Sprintf("%s/%s/k%05d", b.p.prefix, dir, i)
}

func (b *benchEnv) body() []byte {
	v := make([]byte, b.p.size)
	for i := range v {
		v[i] = 'a' + byte(i%26)
	}
	return v
}

// benchResult is one run of one workload.
type benchResult struct {
	Workload string
	Run      int // 1.., or 0 for the median of several runs
	Clients  int
	Conns    int // connections the clients shared; 0: one each
	Ops      int // operations that succeeded (measured)
	Errors   int
	FirstErr string
	Elapsed  time.Duration
	Rate     float64 // Ops per second of Elapsed
	P50, P90 time.Duration
	P99, Max time.Duration
	Mean     time.Duration
	// CPU is the CPU time (user and system) this process used while the
	// ops ran: with the in-process replica, the whole system's cost.
	CPU time.Duration
	// Allocs and AllocBytes are the heap allocations this process made
	// while the ops ran.
	Allocs, AllocBytes uint64
	Verdict            string

	// mount-read: the same loop on a tmpfs file, in the same run.
	TmpfsP50, TmpfsP99, TmpfsMean time.Duration
	// inotify-latency: the time to IN_MODIFY (P50 and the others are to
	// IN_CLOSE_WRITE).
	ModifyP50, ModifyP99 time.Duration
	// Scale: the replica's resident memory (VmRSS) when measured, its
	// peak (VmHWM), and its VmRSS before the load.
	RSS, HWM, RSSBefore uint64
	// Detail is a workload's own figures, printed after the others.
	Detail string
}

// AllocsPerOp is Allocs divided among the successful ops.
func (r *benchResult) AllocsPerOp() float64 {
	if r.Ops == 0 {
		return 0
	}
	return float64(r.Allocs) / float64(r.Ops)
}

// resUse is the process's resource use at one moment.
type resUse struct {
	cpu            time.Duration
	allocs, allocB uint64
}

func usageNow() resUse {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return resUse{cpu: processCPU(), allocs: ms.Mallocs, allocB: ms.TotalAlloc}
}

// since records the resources used since u in r.
func (u resUse) since(r *benchResult) {
	now := usageNow()
	r.CPU, r.Allocs, r.AllocBytes = now.cpu-u.cpu, now.allocs-u.allocs, now.allocB-u.allocB
}

// CPUPerOp is CPU divided among the successful ops.
func (r *benchResult) CPUPerOp() time.Duration {
	if r.Ops == 0 {
		return 0
	}
	return r.CPU / time.Duration(r.Ops)
}

// processCPU returns the CPU time this process has used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// summarize fills r's figures from the latencies of its successful ops.
func (r *benchResult) summarize(lat []time.Duration, elapsed time.Duration) {
	slices.Sort(lat)
	r.Ops, r.Elapsed = len(lat), elapsed
	if elapsed > 0 {
		r.Rate = float64(len(lat)) / elapsed.Seconds()
	}
	r.P50, r.P90, r.P99 = percentile(lat, 0.50), percentile(lat, 0.90), percentile(lat, 0.99)
	if len(lat) > 0 {
		r.Max = lat[len(lat)-1]
		var sum time.Duration
		for _, d := range lat {
			sum += d
		}
		r.Mean = sum / time.Duration(len(lat))
	}
}

// percentile returns the nearest-rank p-quantile of sorted (0 if empty).
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	k := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(k, 0), len(sorted)-1)]
}

// closedLoop runs total calls of op, spread over workers goroutines that
// each issue their next call as soon as the previous one returns, and
// measures each call. op's i is the call's number, 0..total-1.
func closedLoop(ctx context.Context, workers, total int, op func(ctx context.Context, w, i int) error) *benchResult {
	var (
		next     atomic.Int64
		errs     atomic.Int64
		firstErr atomic.Pointer[error]
		wg       sync.WaitGroup
	)
	lats := make([][]time.Duration, workers)
	start := make(chan struct{})
	for w := range workers {
		lats[w] = make([]time.Duration, 0, total/workers+1)
		wg.Go(func() {
			<-start
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= total {
					return
				}
				t0 := time.Now()
				err := op(ctx, w, i)
				d := time.Since(t0)
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, &err)
					continue
				}
				lats[w] = append(lats[w], d)
			}
		})
	}
	u0, t0 := usageNow(), time.Now()
	close(start)
	wg.Wait()
	elapsed := time.Since(t0)
	r := &benchResult{Clients: workers, Errors: int(errs.Load())}
	u0.since(r)
	if p := firstErr.Load(); p != nil {
		r.FirstErr = (*p).Error()
	}
	r.summarize(slices.Concat(lats...), elapsed)
	return r
}

func runSeqWrite(ctx context.Context, b *benchEnv) (*benchResult, error) {
	c, err := b.dial(ctx, 0)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	body := b.body()
	return closedLoop(ctx, 1, b.p.seqWrites, func(ctx context.Context, _, i int) error {
		_, err := c.Set(ctx, b.path("seq", i%b.p.seqKeys), fs.Clobber, body)
		return err
	}), nil
}

func runConcWrite(ctx context.Context, b *benchEnv) (*benchResult, error) {
	cs, closeAll, err := b.dialMany(ctx, b.p.clients, b.p.conns)
	if err != nil {
		return nil, err
	}
	defer closeAll()
	body := b.body()
	r := closedLoop(ctx, len(cs), b.p.concWrites, func(ctx context.Context, w, _ int) error {
		_, err := cs[w].Set(ctx, b.path("conc", rand.N(b.p.concKeys)), fs.Clobber, body)
		return err
	})
	r.Conns = sharedConns(len(cs), b.p.conns)
	return r, nil
}

func runLocalRead(ctx context.Context, b *benchEnv) (*benchResult, error) {
	cs, closeAll, err := b.dialMany(ctx, b.p.clients, b.p.conns)
	if err != nil {
		return nil, err
	}
	defer closeAll()
	// Write the keys first (not measured), and wait until every replica
	// has applied them so that no GET finds a key missing.
	body := b.body()
	fill := closedLoop(ctx, len(cs), b.p.readKeys, func(ctx context.Context, w, i int) error {
		_, err := cs[w].Set(ctx, b.path("read", i), fs.Clobber, body)
		return err
	})
	if fill.Errors > 0 {
		return nil, fmt.Errorf("writing the keys to read: %d errors, the first: %s", fill.Errors, fill.FirstErr)
	}
	if err := waitApplied(ctx, b); err != nil {
		return nil, err
	}
	size := len(body)
	r := closedLoop(ctx, len(cs), b.p.reads, func(ctx context.Context, w, _ int) error {
		got, _, err := cs[w].Get(ctx, b.path("read", rand.N(b.p.readKeys)), 0)
		if err == nil && len(got) != size {
			err = fmt.Errorf("GET returned %d bytes, want %d", len(got), size)
		}
		return err
	})
	r.Conns = sharedConns(len(cs), b.p.conns)
	return r, nil
}

// waitApplied waits until every replica has applied what has been written
// so far, so that reads on any of them find it.
func waitApplied(ctx context.Context, b *benchEnv) error {
	var rev int64
	for i := range b.addrs {
		c, err := b.dial(ctx, i)
		if err != nil {
			return err
		}
		if rev == 0 {
			if err := c.Nop(ctx); err != nil {
				c.Close()
				return err
			}
			rev, err = c.Rev(ctx)
		} else {
			// The first event at or after rev: it returns once this
			// replica has applied rev.
			_, err = c.Wait(ctx, "/**", rev)
		}
		c.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func runWatchLatency(ctx context.Context, b *benchEnv) (*benchResult, error) {
	writer, err := b.dial(ctx, 0)
	if err != nil {
		return nil, err
	}
	defer writer.Close()
	watcher, err := b.dial(ctx, len(b.addrs)-1)
	if err != nil {
		return nil, err
	}
	defer watcher.Close()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := watcher.Watch(wctx, b.p.prefix+"/watch/*", 0)
	if err != nil {
		return nil, err
	}
	defer w.Close()

	arrivals := make(chan arrival, 64)
	go func() {
		for {
			evs, err := w.NextBatch(wctx)
			at := time.Now()
			if err != nil {
				if fs.KindOf(err) == fs.KindUnavailable || fs.KindOf(err) == fs.KindTimeout {
					continue
				}
				arrivals <- arrival{err: err}
				return
			}
			for _, ev := range evs {
				select {
				case arrivals <- arrival{rev: ev.Rev, at: at}:
				case <-wctx.Done():
					return
				}
			}
		}
	}()

	body := b.body()
	r := &benchResult{Clients: 1}
	lat := make([]time.Duration, 0, b.p.events)
	fail := func(err error) {
		r.Errors++
		if r.FirstErr == "" {
			r.FirstErr = err.Error()
		}
	}
	u0, start := usageNow(), time.Now()
	for i := range b.p.events {
		if ctx.Err() != nil {
			break
		}
		t0 := time.Now()
		rev, err := writer.Set(ctx, b.path("watch", i%1000), fs.Clobber, body)
		if err != nil {
			fail(err)
			continue
		}
		got, err := awaitRev(ctx, arrivals, rev)
		if err != nil {
			return nil, fmt.Errorf("watching for revision %d: %w", rev, err)
		}
		lat = append(lat, got.Sub(t0))
	}
	r.summarize(lat, time.Since(start))
	u0.since(r)
	return r, nil
}

// arrival is an event's revision and when the watcher received it, or the
// error that ended the watch.
type arrival struct {
	rev int64
	at  time.Time
	err error
}

// awaitRev returns when the event of revision rev arrived, skipping older
// ones (from writes whose SET failed).
func awaitRev(ctx context.Context, arrivals <-chan arrival, rev int64) (time.Time, error) {
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	for {
		select {
		case a := <-arrivals:
			switch {
			case a.err != nil:
				return time.Time{}, a.err
			case a.rev == rev:
				return a.at, nil
			case a.rev > rev:
				return time.Time{}, fmt.Errorf("the watch skipped it (next event at %d)", a.rev)
			}
		case <-timeout.C:
			return time.Time{}, errors.New("no event after 30 s")
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
	}
}

// benchOptions are the command's flags beyond the workload parameters.
type benchOptions struct {
	p          benchParams
	addr       string
	secret     string
	tls        tlsFlags
	names      string
	runs       int
	json       bool
	cpuprofile string
	dataParent string
	timeout    time.Duration
	local      int
	mountDir   string
	scale      bool
	sweep      string
	plot       string
	// sweepCounts are --sweep's client counts.
	sweepCounts []int
}

func parseBenchFlags(e *env, args []string) (*benchOptions, error) {
	o := &benchOptions{}
	f := flag.NewFlagSet("bench", flag.ContinueOnError)
	f.StringVar(&o.addr, "addr", "", "benchmark this running cluster (replica addresses, comma-separated; the first is replica 1); default: an in-process replica")
	f.StringVar(&o.addr, "a", "", "short for --addr")
	f.StringVar(&o.secret, "secret", e.getenv("DOOZERFS_SECRET"), "secret token (env DOOZERFS_SECRET)")
	o.tls.register(f)
	f.StringVar(&o.names, "workload", "", "workloads to run, comma-separated (default: every one the system under test allows)")
	f.IntVar(&o.runs, "runs", 1, "run the workloads this many times (in turn) and report each run and the medians")
	f.BoolVar(&o.json, "json", false, "print one JSON document instead of text")
	f.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of this process (with the in-process replica) to this file")
	f.StringVar(&o.dataParent, "data", "", "in-process replica: make its temporary data directory in this directory (default: the system's temporary directory)")
	f.DurationVar(&o.timeout, "timeout", 5*time.Minute, "give up on one run of one workload after this long")
	f.IntVar(&o.p.seqWrites, "writes", 1000, "seq-write: number of SETs")
	f.IntVar(&o.p.seqKeys, "seq-keys", 1000, "seq-write: number of keys")
	f.IntVar(&o.p.concWrites, "conc-writes", 5000, "conc-write: number of SETs")
	f.IntVar(&o.p.concKeys, "conc-keys", 10000, "conc-write: number of keys")
	f.IntVar(&o.p.reads, "reads", 20000, "local-read: number of GETs")
	f.IntVar(&o.p.readKeys, "read-keys", 1000, "local-read: number of keys (written before the reads)")
	f.IntVar(&o.p.events, "events", 500, "watch-latency: number of events")
	f.IntVar(&o.p.failovers, "failovers", 5, "failover: number of leader stops")
	f.IntVar(&o.local, "local", 0, "start a cluster of this many replicas in this process, on loopback, and benchmark it (3 is TARGETS.md's set-up)")
	f.IntVar(&o.p.clients, "clients", 64, "conc-write, local-read, scale-files: concurrent clients")
	f.IntVar(&o.p.conns, "conns", 8, "conc-write, local-read: connections the clients share, spread over the replicas (8: how TARGETS.md's etcd figures were taken, 64 clients over 8 connections; 0: one each)")
	f.IntVar(&o.p.size, "size", 256, "value size in bytes")
	f.StringVar(&o.p.prefix, "prefix", "/bench", "directory the workloads write under")
	f.StringVar(&o.mountDir, "mount-dir", "", "mount-read, inotify-latency with --addr: an existing mount of the cluster (of its last replica for inotify-latency), showing the store's root")
	f.IntVar(&o.p.mountReads, "mount-reads", 20000, "mount-read: open+read+close loops (on the mount, and again on tmpfs)")
	f.IntVar(&o.p.inotifyEvents, "inotify-events", 300, "inotify-latency: number of events")
	f.BoolVar(&o.scale, "scale", false, "run the scale measurements too (scale-files, restart, catch-up, watches: doozerfs serve child processes, minutes at the default sizes)")
	f.IntVar(&o.p.files, "files", 1000000, "scale-files, restart, catch-up: number of files")
	f.IntVar(&o.p.filesBatch, "files-batch", 1, "scale-files: files written per transaction (the replica's history keeps the last revisions, whatever their size: more files per transaction, more memory)")
	f.IntVar(&o.p.watches, "watches", 10000, "watches: number of open WATCHes")
	f.IntVar(&o.p.snapshotEvery, "snapshot-every", 0, "scale workloads: run serve with this --snapshot-every (0: serve's default)")
	f.StringVar(&o.p.serveBin, "serve-bin", "", "scale workloads: the doozerfs binary to run serve with (default: this one)")
	f.StringVar(&o.sweep, "sweep", "", "run the client-count workloads (conc-write, local-read) at each of these client counts, comma-separated (e.g. 1,4,16,64,256)")
	f.StringVar(&o.plot, "plot", "", "with --sweep: draw throughput against client count as a PNG to this file")
	if slices.ContainsFunc(args, func(a string) bool { return a == "-h" || a == "-help" || a == "--help" }) {
		printBenchHelp(e.stdout, f)
		return nil, errBenchHelp
	}
	pos, err := parseInterspersed(f, args)
	if err != nil {
		return nil, err
	}
	if len(pos) > 0 {
		return nil, usagef("bench takes no arguments, got %q", pos)
	}
	p := &o.p
	for _, v := range []struct {
		name string
		n    int
	}{{"writes", p.seqWrites}, {"seq-keys", p.seqKeys}, {"conc-writes", p.concWrites}, {"conc-keys", p.concKeys},
		{"reads", p.reads}, {"read-keys", p.readKeys}, {"events", p.events}, {"clients", p.clients}, {"runs", o.runs},
		{"mount-reads", p.mountReads}, {"inotify-events", p.inotifyEvents}, {"files", p.files}, {"files-batch", p.filesBatch},
		{"watches", p.watches}} {
		if v.n <= 0 {
			return nil, usagef("--%s must be at least 1", v.name)
		}
	}
	if p.size < 0 || p.conns < 0 {
		return nil, usagef("--size and --conns cannot be negative")
	}
	if !strings.HasPrefix(p.prefix, "/") || p.prefix == "/" || strings.ContainsAny(p.prefix, "*?") {
		return nil, usagef("--prefix must be an absolute path other than / and without * or ?")
	}
	p.prefix = strings.TrimRight(p.prefix, "/")
	p.secret = o.secret
	if o.sweep != "" {
		if o.sweepCounts, err = parseCounts(o.sweep); err != nil {
			return nil, usagef("--sweep: %v", err)
		}
	}
	if o.plot != "" && o.sweep == "" {
		return nil, usagef("--plot draws a --sweep; give --sweep too")
	}
	if o.mountDir != "" && o.addr == "" {
		return nil, usagef("--mount-dir is for --addr; without it the bench mounts the replica it starts")
	}
	return o, nil
}

// errBenchHelp ends the command after --help printed the flags.
var errBenchHelp = errors.New("help printed")

func printBenchHelp(w io.Writer, f *flag.FlagSet) {
	fmt.Fprintln(w, "usage: doozerfs bench [FLAGS]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Runs the workloads of shared/TARGETS.md against --addr, or by default against a")
	fmt.Fprintln(w, "single replica started in this process on a temporary data directory.")
	fmt.Fprintln(w, "mount-read and inotify-latency mount the last replica this process started")
	fmt.Fprintln(w, "(FUSE), or use --mount-dir with --addr. The scale workloads run on doozerfs")
	fmt.Fprintln(w, "serve child processes and only by name or with --scale. --sweep N,N,... runs")
	fmt.Fprintln(w, "conc-write and local-read at each client count; --plot FILE.png draws them.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "workloads:")
	for _, wl := range workloads {
		fmt.Fprintf(w, "  %-15s %s; target %s\n", wl.name, wl.def, wl.target.goal)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "flags:")
	f.SetOutput(w)
	f.PrintDefaults()
}

// selectWorkloads returns the workloads named by names (comma-separated), or
// every one b allows when names is empty.
func selectWorkloads(names string, b *benchEnv) ([]*workload, error) {
	if names == "" {
		var ws []*workload
		for _, w := range workloads {
			if b.has(w.needs) && (!w.scale || b.withScale) && (!b.sweeping || w.sweep) {
				ws = append(ws, w)
			}
		}
		return ws, nil
	}
	var ws []*workload
	for _, n := range splitList(names) {
		w := findWorkload(n)
		if w == nil {
			all := make([]string, len(workloads))
			for i, w := range workloads {
				all[i] = w.name
			}
			return nil, usagef("unknown workload %q (known: %s)", n, strings.Join(all, ", "))
		}
		if !b.has(w.needs) {
			return nil, usagef("workload %s needs %s, which this run does not have", n, describeNeeds(w.needs&^needsOf(b)))
		}
		if b.sweeping && !w.sweep {
			return nil, usagef("--sweep varies the client count of conc-write and local-read; %s has no client count", n)
		}
		if !slices.Contains(ws, w) {
			ws = append(ws, w)
		}
	}
	return ws, nil
}

func needsOf(b *benchEnv) need {
	var have need
	for n := need(1); n != 0; n <<= 1 {
		if b.has(n) {
			have |= n
		}
	}
	return have
}

func describeNeeds(n need) string {
	var s []string
	if n&needCluster != 0 {
		s = append(s, "three replicas (--addr A,B,C)")
	}
	if n&needMount != 0 {
		s = append(s, "a mount (FUSE, /dev/fuse and fusermount3, with an in-process replica or --local; --mount-dir with --addr)")
	}
	if n&needControl != 0 {
		s = append(s, "replicas it started itself")
	}
	return strings.Join(s, " and ")
}

func runBench(ctx context.Context, e *env, args []string) error {
	o, err := parseBenchFlags(e, args)
	if errors.Is(err, errBenchHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	b := &benchEnv{p: o.p, opts: wire.Options{Name: "doozerfs-bench", Secret: o.secret},
		mountDir: o.mountDir, withScale: o.scale, sweeping: o.sweep != "", dataParent: o.dataParent}
	defer b.closeScale()
	tc, err := o.tls.clientConfig()
	if err != nil {
		return usagef("%v", err)
	}
	b.opts.TLS = tc
	if o.addr != "" {
		b.addrs = splitList(o.addr)
	}
	if o.local > 0 {
		if o.addr != "" {
			return usagef("--local and --addr go separately")
		}
		c, err := startBenchCluster(o.dataParent, o.local)
		if err != nil {
			return err
		}
		defer c.close()
		b.cluster, b.addrs = c, c.addrs()
	}
	if len(b.addrs) == 0 {
		if o.addr != "" {
			return usagef("--addr names no address")
		}
		r, dir, err := startBenchReplica(o.dataParent)
		if err != nil {
			return err
		}
		defer func() {
			r.Close()
			os.RemoveAll(dir)
		}()
		b.inproc, b.local, b.addrs, b.dataDir, b.fsType = true, r, []string{r.Addr()}, dir, fsTypeOf(dir)
	}
	b.canMount = (b.inproc || b.cluster != nil) && fuseMissing() == ""
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(la)); len(f) > 0 {
			b.loadAvg = f[0]
		}
	}
	ws, err := selectWorkloads(o.names, b)
	if err != nil {
		return err
	}
	if o.cpuprofile != "" {
		pf, err := os.Create(o.cpuprofile)
		if err != nil {
			return err
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	out := newBenchOutput(e.stdout, o, b)
	out.header()
	var all []*benchResult
	var failed []string
	// runOne runs w once and reports it; false if it failed.
	runOne := func(w *workload, run int) *benchResult {
		rctx, cancel := context.WithTimeout(ctx, o.timeout)
		r, err := w.run(rctx, b)
		timedOut := rctx.Err() != nil
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if err == nil && timedOut {
			err = fmt.Errorf("did not finish within --timeout %v", o.timeout)
		}
		if err == nil && r.Ops == 0 {
			err = fmt.Errorf("no operation succeeded (%d errors, the first: %s)", r.Errors, r.FirstErr)
		}
		if err != nil {
			failed = append(failed, w.name)
			out.failure(w, run, err)
			return nil
		}
		r.Workload, r.Run = w.name, run
		r.Verdict = w.target.verdict(r)
		all = append(all, r)
		out.result(w, r)
		return r
	}
	if b.sweeping {
		clients := b.p.clients
		for _, n := range o.sweepCounts {
			b.p.clients = n
			var these []*benchResult
			for run := 1; run <= o.runs; run++ {
				for _, w := range ws {
					if r := runOne(w, run); r != nil {
						these = append(these, r)
					}
					if ctx.Err() != nil {
						return ctx.Err()
					}
				}
			}
			for _, w := range ws {
				if m := medianOf(w, these); m != nil {
					out.sweepPoint(w, m)
				}
			}
		}
		b.p.clients = clients
		if o.plot != "" {
			if err := writeSweepPlot(o.plot, out.doc.Sweep, b); err != nil {
				return fmt.Errorf("--plot: %w", err)
			}
			out.note("plot of the sweep written to " + o.plot)
		}
	} else {
		for run := 1; run <= o.runs; run++ {
			for _, w := range ws {
				runOne(w, run)
				if ctx.Err() != nil {
					return ctx.Err()
				}
			}
		}
		if o.runs > 1 {
			for _, w := range ws {
				if m := medianOf(w, all); m != nil {
					out.median(w, m)
				}
			}
		}
	}
	if err := out.finish(); err != nil {
		return err
	}
	if len(failed) > 0 {
		return fmt.Errorf("workloads failed: %s", strings.Join(failed, ", "))
	}
	return nil
}

// startBenchReplica founds a cluster of one on a new temporary directory
// under parent, listening on a free loopback port, and waits until it
// accepts writes.
func startBenchReplica(parent string) (*replica.Replica, string, error) {
	dir, err := os.MkdirTemp(parent, "doozerfs-bench-")
	if err != nil {
		return nil, "", err
	}
	cfg := replica.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = dir
	cfg.Name = "bench"
	cfg.Version = Version
	r, err := replica.Open(cfg)
	if err != nil {
		os.RemoveAll(dir)
		return nil, "", err
	}
	deadline := time.Now().Add(10 * time.Second)
	for r.Writable() != nil {
		if time.Now().After(deadline) {
			err := r.Writable()
			r.Close()
			os.RemoveAll(dir)
			return nil, "", fmt.Errorf("the in-process replica is not writable after 10 s: %w", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return r, dir, nil
}

// fsTypeOf returns the type of the file system dir is on, from
// /proc/self/mountinfo, or "" if it cannot tell.
func fsTypeOf(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return ""
	}
	if p, err := filepath.EvalSymlinks(abs); err == nil {
		abs = p
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	best, typ := -1, ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER
		fields := strings.Fields(sc.Text())
		sep := slices.Index(fields, "-")
		if len(fields) < 5 || sep < 0 || sep+1 >= len(fields) {
			continue
		}
		mp := strings.ReplaceAll(fields[4], `\040`, " ")
		if (abs == mp || mp == "/" || strings.HasPrefix(abs, mp+"/")) && len(mp) > best {
			best, typ = len(mp), fields[sep+1]
		}
	}
	return typ
}

// medianOf returns the per-figure medians of w's runs in rs, or nil.
func medianOf(w *workload, rs []*benchResult) *benchResult {
	var mine []*benchResult
	for _, r := range rs {
		if r.Workload == w.name {
			mine = append(mine, r)
		}
	}
	if len(mine) == 0 {
		return nil
	}
	medDur := func(get func(*benchResult) time.Duration) time.Duration {
		v := make([]time.Duration, len(mine))
		for i, r := range mine {
			v[i] = get(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	rates := make([]float64, len(mine))
	for i, r := range mine {
		rates[i] = r.Rate
	}
	slices.Sort(rates)
	m := &benchResult{Workload: w.name, Clients: mine[0].Clients, Conns: mine[0].Conns}
	for _, r := range mine {
		m.Ops += r.Ops
		m.Errors += r.Errors
		if m.FirstErr == "" {
			m.FirstErr = r.FirstErr
		}
	}
	m.Ops /= len(mine)
	m.Rate = rates[len(rates)/2]
	m.Elapsed = medDur(func(r *benchResult) time.Duration { return r.Elapsed })
	m.P50 = medDur(func(r *benchResult) time.Duration { return r.P50 })
	m.P90 = medDur(func(r *benchResult) time.Duration { return r.P90 })
	m.P99 = medDur(func(r *benchResult) time.Duration { return r.P99 })
	m.Max = medDur(func(r *benchResult) time.Duration { return r.Max })
	m.Mean = medDur(func(r *benchResult) time.Duration { return r.Mean })
	// The median CPU per op, kept as a total over the median ops.
	m.CPU = medDur(func(r *benchResult) time.Duration { return r.CPUPerOp() }) * time.Duration(m.Ops)
	allocs := make([]float64, len(mine))
	for i, r := range mine {
		allocs[i] = r.AllocsPerOp()
	}
	slices.Sort(allocs)
	m.Allocs = uint64(allocs[len(allocs)/2] * float64(m.Ops))
	m.TmpfsP50 = medDur(func(r *benchResult) time.Duration { return r.TmpfsP50 })
	m.TmpfsP99 = medDur(func(r *benchResult) time.Duration { return r.TmpfsP99 })
	m.TmpfsMean = medDur(func(r *benchResult) time.Duration { return r.TmpfsMean })
	m.ModifyP50 = medDur(func(r *benchResult) time.Duration { return r.ModifyP50 })
	m.ModifyP99 = medDur(func(r *benchResult) time.Duration { return r.ModifyP99 })
	medU := func(get func(*benchResult) uint64) uint64 {
		v := make([]uint64, len(mine))
		for i, r := range mine {
			v[i] = get(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	m.RSS = medU(func(r *benchResult) uint64 { return r.RSS })
	m.HWM = medU(func(r *benchResult) uint64 { return r.HWM })
	m.RSSBefore = medU(func(r *benchResult) uint64 { return r.RSSBefore })
	m.Verdict = w.target.verdict(m)
	switch {
	case m.TmpfsP50 > 0:
		m.Detail = tmpfsDetail(m, "")
	case m.ModifyP50 > 0:
		m.Detail = modifyDetail(m, len(mine)*m.Ops)
	case w.scale && m.RSS > 0:
		m.Detail = fmt.Sprintf("medians of %d runs: replica RSS %s, peak %s", len(mine), fmtBytes(m.RSS), fmtBytes(m.HWM))
	case w.scale:
		m.Detail = fmt.Sprintf("medians of %d runs: %s", len(mine), fmtSeconds(m.P50))
	}
	return m
}

// benchOutput prints results as text lines as they come, or gathers them
// into one JSON document printed at the end.
type benchOutput struct {
	w   io.Writer
	o   *benchOptions
	b   *benchEnv
	doc benchDoc
}

type benchDoc struct {
	Mode       string       `json:"mode"` // "in-process" or "cluster"
	Addrs      []string     `json:"addrs"`
	DataDir    string       `json:"data_dir,omitempty"`
	FSType     string       `json:"fs_type,omitempty"`
	GOMAXPROCS int          `json:"gomaxprocs"`
	NumCPU     int          `json:"num_cpu"`
	Version    string       `json:"version"`
	Runs       int          `json:"runs"`
	Results    []resultJSON `json:"results"`
	Medians    []resultJSON `json:"medians,omitempty"`
	// Sweep is, with --sweep, one entry per workload and client count
	// (the median over --runs).
	Sweep    []resultJSON `json:"sweep,omitempty"`
	Failures []failJSON   `json:"failures,omitempty"`
}

type resultJSON struct {
	Workload   string  `json:"workload"`
	Run        int     `json:"run,omitempty"`
	Clients    int     `json:"clients"`
	Conns      int     `json:"conns,omitempty"`
	Ops        int     `json:"ops"`
	Errors     int     `json:"errors"`
	FirstError string  `json:"first_error,omitempty"`
	ElapsedS   float64 `json:"elapsed_s"`
	OpsPerS    float64 `json:"ops_per_s"`
	P50us      float64 `json:"p50_us"`
	P90us      float64 `json:"p90_us"`
	P99us      float64 `json:"p99_us"`
	MaxUs      float64 `json:"max_us"`
	MeanUs     float64 `json:"mean_us"`
	CPUPerOpUs float64 `json:"cpu_us_per_op"`
	AllocsOp   float64 `json:"allocs_per_op"`
	Target     string  `json:"target"`
	Etcd       string  `json:"etcd"`
	Verdict    string  `json:"verdict,omitempty"`

	TmpfsP50us    float64 `json:"tmpfs_p50_us,omitempty"`
	TmpfsP99us    float64 `json:"tmpfs_p99_us,omitempty"`
	TmpfsMeanUs   float64 `json:"tmpfs_mean_us,omitempty"`
	ModifyP50us   float64 `json:"modify_p50_us,omitempty"`
	ModifyP99us   float64 `json:"modify_p99_us,omitempty"`
	RSSBytes      uint64  `json:"rss_bytes,omitempty"`
	HWMBytes      uint64  `json:"hwm_bytes,omitempty"`
	RSSBeforeByte uint64  `json:"rss_before_bytes,omitempty"`
	Detail        string  `json:"detail,omitempty"`
}

type failJSON struct {
	Workload string `json:"workload"`
	Run      int    `json:"run"`
	Error    string `json:"error"`
}

func newBenchOutput(w io.Writer, o *benchOptions, b *benchEnv) *benchOutput {
	mode := "cluster"
	if b.inproc {
		mode = "in-process"
	}
	return &benchOutput{w: w, o: o, b: b, doc: benchDoc{
		Mode: mode, Addrs: b.addrs, DataDir: b.dataDir, FSType: b.fsType,
		GOMAXPROCS: runtime.GOMAXPROCS(0), NumCPU: runtime.NumCPU(), Version: Version, Runs: o.runs,
		Results: []resultJSON{},
	}}
}

func (out *benchOutput) header() {
	if out.o.json {
		return
	}
	b := out.b
	if b.inproc {
		fs := b.fsType
		if fs == "" {
			fs = "file system unknown"
		}
		fmt.Fprintf(out.w, "doozerfs bench: in-process single replica at %s, data in %s (%s); it shares this process (GOMAXPROCS %d) with the load\n",
			b.addrs[0], b.dataDir, fs, runtime.GOMAXPROCS(0))
	} else {
		fmt.Fprintf(out.w, "doozerfs bench: cluster at %s (%d replica(s)); load from this process (GOMAXPROCS %d)\n",
			strings.Join(b.addrs, ","), len(b.addrs), runtime.GOMAXPROCS(0))
	}
	if len(b.addrs) < 3 {
		fmt.Fprintln(out.w, "doozerfs bench: TARGETS.md's targets are for three replicas on loopback; this run has fewer")
	}
}

func (out *benchOutput) json(w *workload, r *benchResult) resultJSON {
	us := func(d time.Duration) float64 { return math.Round(float64(d)/1e1) / 1e2 }
	return resultJSON{
		Workload: r.Workload, Run: r.Run, Clients: r.Clients, Conns: r.Conns, Ops: r.Ops, Errors: r.Errors, FirstError: r.FirstErr,
		ElapsedS: math.Round(r.Elapsed.Seconds()*1e4) / 1e4, OpsPerS: math.Round(r.Rate*10) / 10,
		P50us: us(r.P50), P90us: us(r.P90), P99us: us(r.P99), MaxUs: us(r.Max), MeanUs: us(r.Mean),
		CPUPerOpUs: us(r.CPUPerOp()), AllocsOp: math.Round(r.AllocsPerOp()*10) / 10,
		Target: w.target.goal, Etcd: w.target.etcd, Verdict: r.Verdict,
		TmpfsP50us: us(r.TmpfsP50), TmpfsP99us: us(r.TmpfsP99), TmpfsMeanUs: us(r.TmpfsMean),
		ModifyP50us: us(r.ModifyP50), ModifyP99us: us(r.ModifyP99),
		RSSBytes: r.RSS, HWMBytes: r.HWM, RSSBeforeByte: r.RSSBefore, Detail: r.Detail,
	}
}

// sweepPoint reports the figures of w at one client count of --sweep.
func (out *benchOutput) sweepPoint(w *workload, m *benchResult) {
	out.doc.Sweep = append(out.doc.Sweep, out.json(w, m))
	if out.o.json || out.o.runs == 1 {
		return // the text line of the one run is already printed
	}
	out.line(fmt.Sprintf("%s @%d median/%d", w.name, m.Clients, out.o.runs), w, m)
}

// note prints a line of text (nothing with --json).
func (out *benchOutput) note(s string) {
	if !out.o.json {
		fmt.Fprintln(out.w, "doozerfs bench: "+s)
	}
}

func (out *benchOutput) result(w *workload, r *benchResult) {
	if out.o.json {
		out.doc.Results = append(out.doc.Results, out.json(w, r))
		return
	}
	label := w.name
	if out.b.sweeping {
		label = fmt.Sprintf("%s @%d", w.name, r.Clients)
	}
	if out.o.runs > 1 {
		label = fmt.Sprintf("%s #%d", label, r.Run)
	}
	out.line(label, w, r)
}

func (out *benchOutput) median(w *workload, m *benchResult) {
	if out.o.json {
		out.doc.Medians = append(out.doc.Medians, out.json(w, m))
		return
	}
	out.line(fmt.Sprintf("%s median/%d", w.name, out.o.runs), w, m)
}

func (out *benchOutput) line(label string, w *workload, r *benchResult) {
	verdict := ""
	if r.Verdict != "" {
		verdict = ": " + r.Verdict
	}
	errs := ""
	if r.Errors > 0 {
		errs = fmt.Sprintf(" (%d errors, the first: %s)", r.Errors, r.FirstErr)
	}
	if w.scale {
		fmt.Fprintf(out.w, "%-22s %s  | target %s%s%s\n", label, r.Detail, w.target.goal, verdict, errs)
		return
	}
	extra := ""
	if r.Detail != "" {
		extra = "  " + r.Detail
	}
	fmt.Fprintf(out.w, "%-22s %s %6d ops in %6.2fs %9.0f ops/s  p50 %7s  p90 %7s  p99 %7s  max %7s  cpu/op %7s %4.0f allocs/op%s  | target %s%s (etcd: %s)%s\n",
		label, clientsLabel(r), r.Ops, r.Elapsed.Seconds(), r.Rate,
		fmtLatency(r.P50), fmtLatency(r.P90), fmtLatency(r.P99), fmtLatency(r.Max), fmtLatency(r.CPUPerOp()), r.AllocsPerOp(),
		extra, w.target.goal, verdict, w.target.etcd, errs)
}

// clientsLabel says how many clients ran, and on how many connections
// when they shared them.
func clientsLabel(r *benchResult) string {
	if r.Conns > 0 && r.Conns < r.Clients {
		return fmt.Sprintf("%3d clients/%d conns", r.Clients, r.Conns)
	}
	return fmt.Sprintf("%3d clients", r.Clients)
}

func (out *benchOutput) failure(w *workload, run int, err error) {
	if out.o.json {
		out.doc.Failures = append(out.doc.Failures, failJSON{Workload: w.name, Run: run, Error: err.Error()})
		return
	}
	fmt.Fprintf(out.w, "%-22s FAILED: %v\n", w.name, err)
}

func (out *benchOutput) finish() error {
	if !out.o.json {
		return nil
	}
	enc := json.NewEncoder(out.w)
	enc.SetIndent("", "  ")
	return enc.Encode(out.doc)
}

// fmtLatency prints d with three significant digits in µs or ms.
func fmtLatency(d time.Duration) string {
	us := float64(d) / 1e3
	switch {
	case us < 10:
		return fmt.Sprintf("%.2fµs", us)
	case us < 1000:
		return fmt.Sprintf("%.0fµs", us)
	case us < 10000:
		return fmt.Sprintf("%.2fms", us/1e3)
	case us < 100000:
		return fmt.Sprintf("%.1fms", us/1e3)
	default:
		return fmt.Sprintf("%.0fms", us/1e3)
	}
}
