package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/doozerfs/doozerfs/fs"
	"github.com/doozerfs/doozerfs/wire"
)

// The keys of the workload. The KV keys are single registers, checked one
// by one; the group is two files that every transaction sets together
// (a CAS on the first), read together by WALK.
var (
	kvKeys    = []string{"/chaos/kv/k0", "/chaos/kv/k1", "/chaos/kv/k2", "/chaos/kv/k3", "/chaos/kv/k4"}
	groupDir  = "/chaos/tx"
	groupA    = "/chaos/tx/a"
	groupB    = "/chaos/tx/b"
	groupGlob = "/chaos/tx/*"
)

// OpKind is the kind of a recorded client operation.
type OpKind uint8

const (
	KGet  OpKind = iota // GET of a KV key
	KSet                // SET of a KV key (clobber or CAS)
	KDel                // DEL of a KV key
	KTxn                // TXN setting both group files, conditional on the first
	KWalk               // WALK of the group
)

func (k OpKind) String() string { return [...]string{"get", "set", "del", "txn", "walk"}[k] }

// Res is the class of an outcome.
type Res uint8

const (
	ResOK       Res = iota // write applied at Out.Rev; read found the file
	ResMissing             // read: no file; del: NOENT
	ResMismatch            // REV_MISMATCH: nothing changed
	ResUnknown             // a write's outcome is unknown (TIMEOUT, connection lost)
	ResFailed              // nothing happened (a failed read, a write refused READONLY)
)

func (r Res) String() string {
	return [...]string{"ok", "missing", "mismatch", "unknown", "failed"}[r]
}

// FileState is a file as a read saw it, or as the model holds it.
type FileState struct {
	Present bool
	Body    string
	Rev     int64
}

func (f FileState) String() string {
	if !f.Present {
		return "missing"
	}
	return fmt.Sprintf("%q@%d", f.Body, f.Rev)
}

// OpIn is an operation as called.
type OpIn struct {
	Kind       OpKind
	Key        string // KV key, or groupDir
	Rev        int64  // set, del, txn: the condition
	Body       string // set, txn: unique to this operation
	Consistent bool   // get, walk: a linearizable read
}

// OpOut is an operation's outcome.
type OpOut struct {
	Res  Res
	Rev  int64     // ok write: the revision it made
	A, B FileState // get: A; walk: A and B
}

// Op is one recorded operation.
type Op struct {
	Client    int
	Addr      string // the replica the client was connected to at the call
	In        OpIn
	Out       OpOut
	Err       string
	Call, Ret int64 // ns since the workload started
	Seen      int64 // the client's Seen() at the call (its session floor)
}

func (o *Op) isWrite() bool { return o.In.Kind == KSet || o.In.Kind == KDel || o.In.Kind == KTxn }
func (o *Op) isRead() bool  { return o.In.Kind == KGet || o.In.Kind == KWalk }

func (o *Op) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "c%d %s %s", o.Client, o.In.Kind, o.In.Key)
	if o.isWrite() {
		fmt.Fprintf(&b, " rev=%d", o.In.Rev)
	} else if o.In.Consistent {
		b.WriteString(" consistent")
	}
	if o.In.Body != "" {
		fmt.Fprintf(&b, " %q", o.In.Body)
	}
	fmt.Fprintf(&b, " -> %s", o.Out.Res)
	if o.Out.Res == ResOK {
		switch o.In.Kind {
		case KGet:
			fmt.Fprintf(&b, " %s", o.Out.A)
		case KWalk:
			fmt.Fprintf(&b, " a=%s b=%s", o.Out.A, o.Out.B)
		default:
			fmt.Fprintf(&b, " @%d", o.Out.Rev)
		}
	}
	if o.Err != "" {
		fmt.Fprintf(&b, " (%s)", o.Err)
	}
	fmt.Fprintf(&b, " [%.3fs, %.3fs] via %s seen=%d", float64(o.Call)/1e9, float64(o.Ret)/1e9, o.Addr, o.Seen)
	return b.String()
}

// WaitRec is one recorded WAIT.
type WaitRec struct {
	Client    int
	Glob      string
	Rev       int64
	Ev        fs.Event
	OK        bool
	Err       string
	Call, Ret int64
}

// WatchRec is one WATCH stream and what it delivered.
type WatchRec struct {
	Name   string
	Glob   string
	From   int64
	Events []fs.Event
	End    string // why it ended early, if it did
}

// MountOp is one recorded file operation through a mount.
type MountOp struct {
	Node      string
	Write     bool
	Path      string // store path
	Body      string // write: what was written; read: what was read
	Errno     syscall.Errno
	Err       string
	Up        bool // the node's process was running (not killed, not paused) at the call and the return
	Call, Ret int64
}

func (m *MountOp) String() string {
	op := "read"
	if m.Write {
		op = "write"
	}
	s := fmt.Sprintf("%s %s %s %q [%.3fs, %.3fs]", m.Node, op, m.Path, m.Body, float64(m.Call)/1e9, float64(m.Ret)/1e9)
	if m.Err != "" {
		s += " (" + m.Err + ")"
	}
	return s
}

// History is everything the clients of a run recorded.
type History struct {
	Ops      []Op
	Waits    []WaitRec
	Watches  []*WatchRec
	MountOps []MountOp
}

// workload runs the clients of a run.
type workload struct {
	c     *Cluster
	start time.Time
	seed  uint64
	logf  func(string, ...any)
	stop  chan struct{}
	wg    sync.WaitGroup
	mwg   sync.WaitGroup // mount workers

	mu       sync.Mutex
	ops      []Op
	waits    []WaitRec
	watches  []*WatchRec
	mountOps []MountOp
	clients  []*wire.Client

	acked      atomic.Int64 // writes with a definite outcome
	watchUntil atomic.Int64 // watchers stop once they reach this revision
	watchStop  chan struct{}
	wwg        sync.WaitGroup // watchers
	mountStop  chan struct{}
}

func (w *workload) now() int64 { return int64(time.Since(w.start)) }

// clientAddrs returns the member addresses, rotated by i so that clients
// spread over the replicas.
func clientAddrs(nodes []*Node, i int) []string {
	var out []string
	for j := range nodes {
		out = append(out, nodes[(i+j)%len(nodes)].Addr)
	}
	return out
}

func (w *workload) dial(name string, addrs []string) (*wire.Client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var last error
	for ctx.Err() == nil {
		c, err := wire.Dial(ctx, addrs, wire.Options{Name: name, DialTimeout: time.Second})
		if err == nil {
			w.mu.Lock()
			w.clients = append(w.clients, c)
			w.mu.Unlock()
			return c, nil
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return nil, last
}

// startWorkload starts the clients: kv clients (half of them reading
// consistently), waiters, watchers (the first, on everything from rev 1,
// is the recorder) and, with mounts, one worker per mount.
func startWorkload(c *Cluster, seed uint64, kvClients int, logf func(string, ...any)) (*workload, error) {
	w := &workload{c: c, start: time.Now(), seed: seed, logf: logf, stop: make(chan struct{}),
		watchStop: make(chan struct{}), mountStop: make(chan struct{})}
	nodes := c.Members()
	for i := range kvClients {
		cl, err := w.dial(fmt.Sprintf("chaos-kv%d", i), clientAddrs(nodes, i))
		if err != nil {
			w.halt()
			return nil, err
		}
		w.wg.Add(1)
		go w.runKV(i, cl, i%2 == 0, rand.New(rand.NewPCG(seed, uint64(100+i))))
	}
	for i := range 2 {
		id := 1000 + i
		cl, err := w.dial(fmt.Sprintf("chaos-wait%d", i), clientAddrs(nodes, i+1))
		if err != nil {
			w.halt()
			return nil, err
		}
		w.wg.Add(1)
		go w.runWaits(id, cl, rand.New(rand.NewPCG(seed, uint64(id))))
	}
	watches := []struct {
		glob string
		node int
	}{{"/**", 0}, {"/chaos/**", 1}, {"/chaos/kv/*", 2}, {groupGlob, 0}}
	for i, ws := range watches {
		cl, err := w.dial(fmt.Sprintf("chaos-watch%d", i), clientAddrs(nodes, ws.node))
		if err != nil {
			w.halt()
			return nil, err
		}
		rec := &WatchRec{Name: fmt.Sprintf("watch%d(%s)", i, ws.glob), Glob: ws.glob, From: 1}
		if i > 0 {
			rec.From = 0 // from the revision after the replica's current one
		}
		if err := w.startWatch(cl, rec); err != nil {
			w.halt()
			return nil, err
		}
	}
	if c.mounts {
		for _, n := range nodes {
			w.mwg.Add(1)
			go w.runMount(n, nodes, rand.New(rand.NewPCG(seed, uint64(2000+n.Index))))
		}
	}
	return w, nil
}

// halt stops the kv clients and waiters and waits for them.
func (w *workload) halt() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	w.wg.Wait()
}

// haltMounts stops the mount workers and waits for them up to d; false
// if one is still stuck in a system call.
func (w *workload) haltMounts(d time.Duration) bool {
	select {
	case <-w.mountStop:
	default:
		close(w.mountStop)
	}
	done := make(chan struct{})
	go func() { w.mwg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// drainWatches lets the watchers run until each has seen revision until,
// or d passed, then ends them.
func (w *workload) drainWatches(until int64, d time.Duration) {
	w.watchUntil.Store(until)
	done := make(chan struct{})
	go func() { w.wwg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		close(w.watchStop)
		<-done
	}
}

// closeClients closes every client of the workload.
func (w *workload) closeClients() {
	w.mu.Lock()
	cs := w.clients
	w.clients = nil
	w.mu.Unlock()
	for _, c := range cs {
		c.Close()
	}
}

// history returns what was recorded.
func (w *workload) history() *History {
	w.mu.Lock()
	defer w.mu.Unlock()
	h := &History{Ops: slices.Clone(w.ops), Waits: slices.Clone(w.waits), MountOps: slices.Clone(w.mountOps)}
	h.Watches = w.watches
	return h
}

func (w *workload) stopped() bool {
	select {
	case <-w.stop:
		return true
	default:
		return false
	}
}

// opTimeout bounds one client call: above the replicas' write timeout.
const opTimeout = 6 * time.Second

// runKV is one client: random operations on the KV keys and the group.
func (w *workload) runKV(id int, c *wire.Client, consistent bool, rng *rand.Rand) {
	defer w.wg.Done()
	last := map[string]int64{} // rev of each key at this client's last look (0: missing)
	for seq := 0; !w.stopped(); seq++ {
		key := kvKeys[rng.IntN(len(kvKeys))]
		in := OpIn{Key: key, Consistent: consistent}
		switch p := rng.IntN(100); {
		case p < 28:
			in.Kind = KGet
		case p < 42:
			in.Kind, in.Rev = KSet, fs.Clobber
		case p < 62:
			// CAS on what this client last saw: the key's rev (0: create
			// only if missing), or sometimes the global revision it read at.
			in.Kind, in.Rev = KSet, last[key]
			if rng.IntN(4) == 0 {
				in.Rev = c.Seen()
			}
		case p < 70:
			in.Kind, in.Rev = KDel, fs.Clobber
			if r := last[key]; r > 0 && rng.IntN(2) == 0 {
				in.Rev = r
			}
		case p < 84:
			in.Kind, in.Key, in.Rev = KTxn, groupDir, last[groupA]
			if rng.IntN(3) == 0 {
				in.Rev = fs.Clobber
			}
		default:
			in.Kind, in.Key = KWalk, groupDir
		}
		if in.Kind == KSet || in.Kind == KTxn {
			in.Body = fmt.Sprintf("c%d-%d", id, seq)
		}
		in.Consistent = consistent && (in.Kind == KGet || in.Kind == KWalk)
		op := w.do(id, c, in)
		switch {
		case op.In.Kind == KGet && op.Out.Res == ResOK:
			last[key] = op.Out.A.Rev
		case op.In.Kind == KGet && op.Out.Res == ResMissing, op.In.Kind == KDel && op.Out.Res == ResOK:
			last[key] = 0
		case op.In.Kind == KSet && op.Out.Res == ResOK:
			last[key] = op.Out.Rev
		case op.In.Kind == KTxn && op.Out.Res == ResOK:
			last[groupA] = op.Out.Rev
		case op.In.Kind == KWalk && op.Out.Res == ResOK:
			last[groupA] = op.Out.A.Rev
		}
		w.mu.Lock()
		w.ops = append(w.ops, op)
		w.mu.Unlock()
		if op.isWrite() && (op.Out.Res == ResOK || op.Out.Res == ResMismatch || op.Out.Res == ResMissing) {
			w.acked.Add(1)
		}
		if op.Out.Res == ResUnknown || op.Out.Res == ResFailed {
			// Back off a little while something is down.
			sleepOrStop(w.stop, time.Duration(20+rng.IntN(80))*time.Millisecond)
		} else {
			sleepOrStop(w.stop, time.Duration(rng.IntN(4))*time.Millisecond)
		}
	}
}

func sleepOrStop(stop <-chan struct{}, d time.Duration) {
	select {
	case <-stop:
	case <-time.After(d):
	}
}

// do runs one operation and classifies its outcome.
func (w *workload) do(id int, c *wire.Client, in OpIn) Op {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	op := Op{Client: id, In: in, Addr: c.Addr(), Seen: c.Seen()}
	rc := c
	if in.Consistent {
		rc = c.Consistent()
	}
	op.Call = w.now()
	var err error
	switch in.Kind {
	case KGet:
		var body []byte
		var st fs.Stat
		body, st, err = rc.Get(ctx, in.Key, 0)
		switch {
		case err == nil:
			op.Out = OpOut{Res: ResOK, A: FileState{true, string(body), st.Rev}}
		case fs.KindOf(err) == fs.KindNoEnt:
			op.Out = OpOut{Res: ResMissing}
		default:
			op.Out = OpOut{Res: ResFailed}
		}
	case KWalk:
		var files []wire.File
		files, err = rc.Walk(ctx, groupGlob, 0)
		if err == nil {
			op.Out.Res = ResOK
			for _, f := range files {
				st := FileState{true, string(f.Body), f.Stat.Rev}
				switch f.Path {
				case groupA:
					op.Out.A = st
				case groupB:
					op.Out.B = st
				}
			}
		} else {
			op.Out = OpOut{Res: ResFailed}
		}
	case KSet, KDel, KTxn:
		var rev int64
		switch in.Kind {
		case KSet:
			rev, err = c.Set(ctx, in.Key, in.Rev, []byte(in.Body))
		case KDel:
			rev, err = c.Del(ctx, in.Key, in.Rev)
		case KTxn:
			rev, err = c.Txn(ctx, []fs.Op{
				{Kind: fs.OpSet, Path: groupA, Rev: in.Rev, Body: []byte(in.Body)},
				{Kind: fs.OpSet, Path: groupB, Rev: fs.Clobber, Body: []byte(in.Body)},
			})
		}
		switch {
		case err == nil:
			op.Out = OpOut{Res: ResOK, Rev: rev}
		case fs.KindOf(err) == fs.KindRevMismatch:
			op.Out = OpOut{Res: ResMismatch}
		case fs.KindOf(err) == fs.KindNoEnt && in.Kind == KDel:
			op.Out = OpOut{Res: ResMissing}
		case fs.KindOf(err) == fs.KindReadOnly:
			op.Out = OpOut{Res: ResFailed} // nothing was proposed
		default:
			op.Out = OpOut{Res: ResUnknown}
		}
	}
	op.Ret = w.now()
	if err != nil && op.Out.Res != ResMissing && op.Out.Res != ResMismatch {
		op.Err = err.Error()
		if !expectedFailure(err) {
			op.Err = "UNEXPECTED: " + op.Err
		}
	}
	return op
}

// expectedFailure reports whether err is one a fault may cause: the outcome
// is unknown or nothing happened. Anything else (BAD_REQUEST, ISDIR, …) is
// a bug.
func expectedFailure(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || errors.Is(err, wire.ErrClosed) {
		return true
	}
	switch fs.KindOf(err) {
	case fs.KindTimeout, fs.KindUnavailable, fs.KindReadOnly:
		return true
	}
	return false
}

// runWaits is a client that WAITs on globs from revisions it has seen (or
// a little before), and records what each WAIT returned.
func (w *workload) runWaits(id int, c *wire.Client, rng *rand.Rand) {
	defer w.wg.Done()
	globs := []string{"/chaos/kv/*", "/chaos/kv/k1", groupGlob, "/chaos/**"}
	for !w.stopped() {
		g := globs[rng.IntN(len(globs))]
		rev := c.Seen() + 1
		if rng.IntN(3) == 0 {
			rev = max(1, rev-int64(rng.IntN(50)))
		}
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		rec := WaitRec{Client: id, Glob: g, Rev: rev, Call: w.now()}
		ev, err := c.Wait(ctx, g, rev)
		cancel()
		rec.Ret = w.now()
		if err == nil {
			rec.Ev, rec.OK = ev, true
		} else {
			rec.Err = err.Error()
			// TOO_LATE: a replica restarted from a snapshot holds no
			// history before it (a gap checkWaits would see).
			if !expectedFailure(err) && fs.KindOf(err) != fs.KindTooLate {
				rec.Err = "UNEXPECTED: " + rec.Err
			}
			sleepOrStop(w.stop, 50*time.Millisecond)
		}
		w.mu.Lock()
		w.waits = append(w.waits, rec)
		w.mu.Unlock()
	}
}

// startWatch starts one watcher. From 0 means the revision after the one
// the replica has applied: it is made concrete from the first answer.
func (w *workload) startWatch(c *wire.Client, rec *WatchRec) error {
	ctx, cancel := context.WithCancel(context.Background())
	var wt *wire.Watch
	var err error
	from := rec.From
	if from == 0 {
		rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
		rev, rerr := c.Rev(rctx)
		rcancel()
		if rerr != nil {
			cancel()
			return rerr
		}
		from = rev + 1
		rec.From = from
	}
	for range 50 {
		wt, err = c.Watch(ctx, rec.Glob, from)
		if err == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		cancel()
		return fmt.Errorf("chaos: watch %s: %w", rec.Glob, err)
	}
	w.mu.Lock()
	w.watches = append(w.watches, rec)
	w.mu.Unlock()
	w.wwg.Add(1)
	go func() {
		defer w.wwg.Done()
		defer cancel()
		defer wt.Close()
		var last int64
		for {
			if u := w.watchUntil.Load(); u > 0 && last >= u {
				return
			}
			select {
			case <-w.watchStop:
				if u := w.watchUntil.Load(); u > 0 && last < u {
					w.mu.Lock()
					rec.End = fmt.Sprintf("stopped at rev %d before reaching rev %d", last, u)
					w.mu.Unlock()
				}
				return
			default:
			}
			nctx, ncancel := context.WithTimeout(ctx, 300*time.Millisecond)
			evs, err := wt.NextBatch(nctx)
			ncancel()
			if err != nil {
				if errors.Is(err, context.DeadlineExceeded) || fs.KindOf(err) == fs.KindUnavailable || fs.KindOf(err) == fs.KindTimeout {
					continue
				}
				w.mu.Lock()
				rec.End = err.Error()
				w.mu.Unlock()
				return
			}
			w.mu.Lock()
			rec.Events = append(rec.Events, evs...)
			w.mu.Unlock()
			last = evs[len(evs)-1].Rev
		}
	}()
	return nil
}

// mountFiles are the files each mount worker writes under its own directory.
const mountFiles = 3

func mountDir(n *Node) string { return "/chaos/mnt/" + n.Name }

// runMount is a mount worker on node n: it writes its own files through
// n's mount (echo > f: one SET each) and reads files of every worker.
func (w *workload) runMount(n *Node, all []*Node, rng *rand.Rand) {
	defer w.mwg.Done()
	for seq := 0; ; seq++ {
		select {
		case <-w.mountStop:
			return
		default:
		}
		op := MountOp{Node: n.Name}
		var local string
		if rng.IntN(2) == 0 {
			op.Write = true
			op.Path = fmt.Sprintf("%s/f%d", mountDir(n), rng.IntN(mountFiles))
			op.Body = fmt.Sprintf("%s-m%d\n", n.Name, seq)
			local = filepath.Join(n.Mnt, op.Path)
		} else {
			o := all[rng.IntN(len(all))]
			op.Path = fmt.Sprintf("%s/f%d", mountDir(o), rng.IntN(mountFiles))
			local = filepath.Join(n.Mnt, op.Path)
		}
		op.Up = n.Running()
		op.Call = w.now()
		var err error
		if op.Write {
			err = writeFileRaw(local, []byte(op.Body))
		} else {
			var b []byte
			b, err = readFileRaw(local)
			op.Body = string(b)
		}
		op.Ret = w.now()
		op.Up = op.Up && n.Running()
		if err != nil {
			op.Err = err.Error()
			var errno syscall.Errno
			if errors.As(err, &errno) {
				op.Errno = errno
			}
		}
		w.mu.Lock()
		w.mountOps = append(w.mountOps, op)
		w.mu.Unlock()
		d := time.Duration(5+rng.IntN(20)) * time.Millisecond
		if err != nil {
			d = 100 * time.Millisecond
		}
		select {
		case <-w.mountStop:
			return
		case <-time.After(d):
		}
	}
}
