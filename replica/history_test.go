package replica

// A recorder of concurrent client operations against a running cluster, and
// the checks run on what it records: linearizability of writes and
// consistent reads (porcupine, one partition per key), session
// monotonicity of plain reads, and agreement with the replicated event
// history (every acknowledged write is in it at its revision, nothing is in
// it that no client wrote). See linearizability_test.go for the scenarios.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/doozerfs/doozerfs/fs"
	"github.com/doozerfs/doozerfs/wire"
)

// linKind is the kind of a recorded operation.
type linKind uint8

const (
	linGet linKind = iota
	linSet
	linDel
)

func (k linKind) String() string {
	return [...]string{"get", "set", "del"}[k]
}

// linIn is an operation as called.
type linIn struct {
	Kind linKind
	Key  string
	Rev  int64  // set, del: the condition (fs.Clobber, fs.Missing or > 0)
	Body string // set: unique to this operation
}

// linRes is the class of an outcome.
type linRes uint8

const (
	resOK       linRes = iota // write: applied at Out.Rev; read: the file is there
	resMissing                // read: no file; del: NOENT
	resMismatch               // REV_MISMATCH: nothing changed
	resUnknown                // a write's outcome is unknown (TIMEOUT, connection lost)
	resFailed                 // nothing happened: a read that failed, a write refused READONLY
)

func (r linRes) String() string {
	return [...]string{"ok", "missing", "mismatch", "unknown", "failed"}[r]
}

// linOut is an operation's outcome.
type linOut struct {
	Res  linRes
	Rev  int64  // ok write: the revision it made; ok read: the file's rev
	Body string // ok read
}

// linOp is one recorded operation.
type linOp struct {
	Client     int
	Consistent bool   // get: a linearizable read
	Addr       string // the replica the client was connected to at the call
	In         linIn
	Out        linOut
	Err        error
	Call, Ret  int64 // nanoseconds since the workload started
	SeenBefore int64 // the client's Seen() at the call (its session floor)
}

func (o *linOp) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "c%d %s %s", o.Client, o.In.Kind, o.In.Key)
	if o.In.Kind != linGet {
		fmt.Fprintf(&b, " rev=%d", o.In.Rev)
	} else if o.Consistent {
		b.WriteString(" consistent")
	}
	if o.In.Kind == linSet {
		fmt.Fprintf(&b, " %q", o.In.Body)
	}
	fmt.Fprintf(&b, " -> %s", o.Out.Res)
	if o.Out.Res == resOK {
		fmt.Fprintf(&b, " rev=%d", o.Out.Rev)
		if o.In.Kind == linGet {
			fmt.Fprintf(&b, " %q", o.Out.Body)
		}
	}
	if o.Err != nil {
		fmt.Fprintf(&b, " (%v)", o.Err)
	}
	fmt.Fprintf(&b, " [%v, %v] via %s seen=%d", time.Duration(o.Call), time.Duration(o.Ret), o.Addr, o.SeenBefore)
	return b.String()
}

// isWrite reports whether the op is a set or a del.
func (o *linOp) isWrite() bool { return o.In.Kind != linGet }

// linClientSpec says where one client of the workload connects.
type linClientSpec struct {
	Addrs      []string // the first is its replica; the others are for fail-over
	Consistent bool     // its reads are consistent (else plain, session-monotonic)
}

// linWorkload runs concurrent clients doing random operations on a few keys
// and records every operation.
type linWorkload struct {
	keys      []string
	start     time.Time
	opTimeout time.Duration
	seed      uint64
	stop      chan struct{}
	wg        sync.WaitGroup
	clients   []*wire.Client

	mu  sync.Mutex
	ops []linOp

	acked atomic.Int64 // writes that returned a definite outcome (ok or mismatch/missing)
}

// linKeys are the paths the workload writes: few, so that clients contend.
var linKeys = []string{"/lin/a", "/lin/b", "/lin/c"}

// startLinWorkload dials one client per spec and starts them.
func startLinWorkload(t *testing.T, specs []linClientSpec, opTimeout time.Duration) *linWorkload {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	t.Logf("workload seed %d", seed)
	w := &linWorkload{keys: linKeys, start: time.Now(), opTimeout: opTimeout, seed: seed, stop: make(chan struct{})}
	t.Cleanup(w.halt)
	for _, s := range specs {
		w.addClient(t, s)
	}
	return w
}

// addClient dials one more client and starts it.
func (w *linWorkload) addClient(t *testing.T, s linClientSpec) {
	t.Helper()
	i := len(w.clients)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	c, err := wire.Dial(ctx, s.Addrs, wire.Options{Name: fmt.Sprintf("lin-c%d", i), DialTimeout: time.Second})
	cancel()
	if err != nil {
		t.Fatalf("client %d: %v", i, err)
	}
	t.Cleanup(func() { c.Close() })
	w.clients = append(w.clients, c)
	w.wg.Add(1)
	go w.run(i, c, s.Consistent, rand.New(rand.NewPCG(w.seed, uint64(i))))
}

func (w *linWorkload) now() int64 { return int64(time.Since(w.start)) }

// halt stops the clients and waits for them.
func (w *linWorkload) halt() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	w.wg.Wait()
}

// finish stops the clients and returns what they recorded.
func (w *linWorkload) finish() []linOp {
	w.halt()
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.ops)
}

// waitWrites waits until n more writes have had a definite outcome.
func (w *linWorkload) waitWrites(t *testing.T, n int64, what string) {
	t.Helper()
	target := w.acked.Load() + n
	waitFor(t, fmt.Sprintf("%d more acknowledged writes (%s)", n, what), 15*time.Second, func() bool {
		return w.acked.Load() >= target
	})
}

// waitOps waits until cond holds for n recorded operations.
func (w *linWorkload) waitOps(t *testing.T, n int, what string, d time.Duration, cond func(*linOp) bool) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d× %s", n, what), d, func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		got := 0
		for i := range w.ops {
			if cond(&w.ops[i]) {
				got++
			}
		}
		return got >= n
	})
}

// run is one client: a sequence of random operations until stop.
func (w *linWorkload) run(id int, c *wire.Client, consistent bool, rng *rand.Rand) {
	defer w.wg.Done()
	last := make(map[string]int64) // the rev of the key at this client's last read or write (0: missing)
	for seq := 0; ; seq++ {
		select {
		case <-w.stop:
			return
		default:
		}
		key := w.keys[rng.IntN(len(w.keys))]
		in := linIn{Key: key}
		switch p := rng.IntN(100); {
		case p < 35:
			in.Kind = linGet
		case p < 60:
			in.Kind, in.Rev = linSet, fs.Clobber
		case p < 85:
			// Compare-and-set on what this client last saw of the key: its
			// rev (0: create only if missing), or sometimes the global
			// revision it has read at.
			in.Kind, in.Rev = linSet, last[key]
			if rng.IntN(4) == 0 {
				in.Rev = c.Seen()
			}
		default:
			in.Kind, in.Rev = linDel, fs.Clobber
			if r := last[key]; r > 0 && rng.IntN(2) == 0 {
				in.Rev = r
			}
		}
		if in.Kind == linSet {
			in.Body = fmt.Sprintf("c%d-%d", id, seq)
		}
		op := w.do(id, c, consistent, in)
		switch {
		case op.In.Kind == linGet && op.Out.Res == resOK, op.In.Kind == linSet && op.Out.Res == resOK:
			last[key] = op.Out.Rev
		case op.In.Kind == linGet && op.Out.Res == resMissing, op.In.Kind == linDel && op.Out.Res == resOK:
			last[key] = 0
		}
		w.mu.Lock()
		w.ops = append(w.ops, op)
		w.mu.Unlock()
		if op.isWrite() && (op.Out.Res == resOK || op.Out.Res == resMismatch || op.Out.Res == resMissing) {
			w.acked.Add(1)
		}
	}
}

// do runs one operation and classifies its outcome.
func (w *linWorkload) do(id int, c *wire.Client, consistent bool, in linIn) linOp {
	ctx, cancel := context.WithTimeout(context.Background(), w.opTimeout)
	defer cancel()
	op := linOp{Client: id, In: in, Addr: c.Addr(), SeenBefore: c.Seen()}
	op.Call = w.now()
	var err error
	switch in.Kind {
	case linGet:
		op.Consistent = consistent
		cl := c
		if consistent {
			cl = c.Consistent()
		}
		var body []byte
		var st fs.Stat
		body, st, err = cl.Get(ctx, in.Key, 0)
		op.Ret = w.now()
		switch {
		case err == nil:
			op.Out = linOut{Res: resOK, Rev: st.Rev, Body: string(body)}
		case fs.KindOf(err) == fs.KindNoEnt:
			op.Out = linOut{Res: resMissing}
		default:
			op.Out = linOut{Res: resFailed}
		}
	case linSet, linDel:
		var rev int64
		if in.Kind == linSet {
			rev, err = c.Set(ctx, in.Key, in.Rev, []byte(in.Body))
		} else {
			rev, err = c.Del(ctx, in.Key, in.Rev)
		}
		op.Ret = w.now()
		switch {
		case err == nil:
			op.Out = linOut{Res: resOK, Rev: rev}
		case fs.KindOf(err) == fs.KindRevMismatch:
			op.Out = linOut{Res: resMismatch}
		case fs.KindOf(err) == fs.KindNoEnt && in.Kind == linDel:
			op.Out = linOut{Res: resMissing}
		case fs.KindOf(err) == fs.KindReadOnly:
			op.Out = linOut{Res: resFailed} // nothing was proposed
		default:
			op.Out = linOut{Res: resUnknown}
		}
	}
	if err != nil && op.Out.Res != resMissing && op.Out.Res != resMismatch {
		op.Err = err
	}
	return op
}

// expectedFailure reports whether err is one a fault may cause: the outcome
// is unknown or nothing happened. Anything else (BAD_REQUEST, ISDIR, …) is
// a bug.
func expectedFailure(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, wire.ErrClosed) {
		return true
	}
	switch fs.KindOf(err) {
	case fs.KindTimeout, fs.KindUnavailable, fs.KindReadOnly:
		return true
	}
	return false
}

// linSummary describes the history in one line.
func linSummary(ops []linOp) string {
	count := make(map[string]int)
	for i := range ops {
		o := &ops[i]
		k := o.In.Kind.String()
		if o.Consistent {
			k = "cget"
		}
		count[k+"/"+o.Out.Res.String()]++
	}
	keys := make([]string, 0, len(count))
	for k := range count {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "%d ops:", len(ops))
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%d", k, count[k])
	}
	return b.String()
}

// ---- the model ----

// linState is one key in the sequential specification.
type linState struct {
	Present bool
	Body    string
	Rev     int64 // the file's rev, when present
	Floor   int64 // a lower bound of the store revision, from this key's writes
}

// linHolds is the conditional-write rule (SPEC §1) for a key in state s.
func linHolds(s linState, rev int64) bool {
	switch {
	case rev == fs.Clobber:
		return true
	case rev == fs.Missing:
		return !s.Present
	}
	return s.Present && s.Rev <= rev
}

// linStep is the sequential specification of one key: the states s may
// move to by the operation in with the outcome out (none: impossible).
// A write's revision is the global revision it made, so it must be above
// every revision this key has seen made; a del of unknown outcome may or
// may not have happened (the store revision then grew by at least one).
func linStep(s linState, in linIn, out linOut) []linState {
	switch in.Kind {
	case linGet:
		switch out.Res {
		case resOK:
			if s.Present && s.Body == out.Body && s.Rev == out.Rev {
				return []linState{s}
			}
		case resMissing:
			if !s.Present {
				return []linState{s}
			}
		}
	case linSet:
		switch out.Res {
		case resOK:
			if linHolds(s, in.Rev) && out.Rev > s.Floor {
				return []linState{{Present: true, Body: in.Body, Rev: out.Rev, Floor: out.Rev}}
			}
		case resMismatch:
			if !linHolds(s, in.Rev) {
				return []linState{s}
			}
		}
	case linDel:
		switch out.Res {
		case resOK:
			if s.Present && linHolds(s, in.Rev) && out.Rev > s.Floor {
				return []linState{{Floor: out.Rev}}
			}
		case resMissing:
			if !s.Present {
				return []linState{s}
			}
		case resMismatch:
			if s.Present && !linHolds(s, in.Rev) {
				return []linState{s}
			}
		case resUnknown:
			if s.Present && linHolds(s, in.Rev) {
				return []linState{s, {Floor: s.Floor + 1}}
			}
			return []linState{s}
		}
	}
	return nil
}

var linModel = porcupine.NondeterministicModel{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := make(map[string][]porcupine.Operation)
		var keys []string
		for _, op := range history {
			k := op.Input.(linIn).Key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() []any { return []any{linState{}} },
	Step: func(state, input, output any) []any {
		next := linStep(state.(linState), input.(linIn), output.(linOut))
		out := make([]any, len(next))
		for i, s := range next {
			out[i] = s
		}
		return out
	},
	Equal: func(a, b any) bool { return a.(linState) == b.(linState) },
	DescribeOperation: func(input, output any) string {
		in, out := input.(linIn), output.(linOut)
		var b strings.Builder
		switch in.Kind {
		case linGet:
			fmt.Fprintf(&b, "get(%s)", in.Key)
		case linSet:
			fmt.Fprintf(&b, "set(%s, %d, %q)", in.Key, in.Rev, in.Body)
		case linDel:
			fmt.Fprintf(&b, "del(%s, %d)", in.Key, in.Rev)
		}
		fmt.Fprintf(&b, " -> %s", out.Res)
		if out.Res == resOK {
			fmt.Fprintf(&b, " @%d", out.Rev)
			if in.Kind == linGet {
				fmt.Fprintf(&b, " %q", out.Body)
			}
		}
		return b.String()
	},
	DescribeState: func(state any) string {
		s := state.(linState)
		if !s.Present {
			return fmt.Sprintf("missing (rev ≥ %d)", s.Floor)
		}
		return fmt.Sprintf("%q @%d (rev ≥ %d)", s.Body, s.Rev, s.Floor)
	},
}

// ---- the replicated history ----

// linLog is the committed history of the workload's keys, as the replicas
// applied it.
type linLog struct {
	events []fs.Event       // in revision order
	setAt  map[string]int64 // body → the revision of the set event that wrote it
	byKey  map[string][]fs.Event
}

// collectLinLog reads the events of the workload's keys from rev 1 on from
// every live replica that still holds them all, checks they agree, and
// returns the longest. upTo bounds the comparison (the converged revision).
func collectLinLog(t *testing.T, rs []*Replica, upTo int64) *linLog {
	t.Helper()
	g, err := fs.CompileGlob("/lin/*")
	if err != nil {
		t.Fatal(err)
	}
	var best []fs.Event
	var from string
	got := 0
	for _, r := range rs {
		if r == nil || r.closed.Load() {
			continue
		}
		evs, err := r.tree.Events(1, g)
		if err != nil {
			t.Logf("%s: no complete event history (%v)", r.cfg.Name, err)
			continue
		}
		evs = slices.DeleteFunc(evs, func(e fs.Event) bool { return e.Rev > upTo })
		got++
		if best == nil {
			best, from = evs, r.cfg.Name
			continue
		}
		if !sameEvents(best, evs) {
			t.Errorf("the event histories of %s and %s differ up to rev %d:\n%s\n----\n%s", from, r.cfg.Name, upTo,
				describeEvents(best), describeEvents(evs))
		}
	}
	if got == 0 {
		t.Fatal("no live replica holds the whole event history")
	}
	return newLinLog(t, best)
}

// newLinLog indexes the events of the workload's keys.
func newLinLog(t testing.TB, evs []fs.Event) *linLog {
	t.Helper()
	l := &linLog{events: evs, setAt: make(map[string]int64), byKey: make(map[string][]fs.Event)}
	for _, e := range evs {
		l.byKey[e.Path] = append(l.byKey[e.Path], e)
		if e.Kind == fs.EventSet {
			if prev, dup := l.setAt[string(e.Body)]; dup {
				t.Errorf("body %q was set twice, at revs %d and %d: a write applied twice", e.Body, prev, e.Rev)
			}
			l.setAt[string(e.Body)] = e.Rev
		}
	}
	return l
}

func sameEvents(a, b []fs.Event) bool {
	return slices.EqualFunc(a, b, func(x, y fs.Event) bool {
		return x.Rev == y.Rev && x.Path == y.Path && x.Kind == y.Kind && bytes.Equal(x.Body, y.Body) && x.Time == y.Time
	})
}

func describeEvents(evs []fs.Event) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "%d %v %s %q\n", e.Rev, e.Kind, e.Path, e.Body)
	}
	return b.String()
}

// at returns the state of key at revision v according to the log.
func (l *linLog) at(key string, v int64) linState {
	var s linState
	for _, e := range l.byKey[key] {
		if e.Rev > v {
			break
		}
		switch e.Kind {
		case fs.EventSet:
			s = linState{Present: true, Body: string(e.Body), Rev: e.Rev}
		case fs.EventDel:
			s = linState{}
		}
	}
	return s
}

// seenIn reports whether the read outcome out is the state of key at some
// revision in [lo, hi].
func (l *linLog) seenIn(key string, out linOut, lo, hi int64) bool {
	match := func(s linState) bool {
		if out.Res == resMissing {
			return !s.Present
		}
		return s.Present && s.Body == out.Body && s.Rev == out.Rev
	}
	if lo > hi {
		return false
	}
	if match(l.at(key, lo)) {
		return true
	}
	for _, e := range l.byKey[key] {
		if e.Rev > lo && e.Rev <= hi && match(l.at(key, e.Rev)) {
			return true
		}
	}
	return false
}

// ---- the checks ----

// checkLinHistory runs every check on a finished workload's history: the
// errors are expected ones, acknowledged writes are in the replicated log
// at their revisions and nothing else is, writes are ordered by revision
// as by real time, every read saw a state it could see, plain reads are
// session-monotonic, and writes with consistent reads are linearizable.
func checkLinHistory(t testing.TB, ops []linOp, log *linLog) {
	t.Helper()
	t.Log(linSummary(ops))
	for i := range ops {
		if o := &ops[i]; o.Err != nil && !expectedFailure(o.Err) {
			t.Errorf("unexpected error: %s", o)
		}
	}
	checkAgainstLog(t, ops, log)
	checkWriteOrder(t, ops, log)
	checkReads(t, ops, log)
	checkSessions(t, ops)
	checkPorcupine(t, ops, log)
}

// writeRev returns the revision a write made, from its answer or, for an
// unknown outcome, from the log; 0 if it made none (as far as is known).
func writeRev(o *linOp, log *linLog) int64 {
	switch {
	case o.Out.Res == resOK:
		return o.Out.Rev
	case o.In.Kind == linSet && o.Out.Res == resUnknown:
		return log.setAt[o.In.Body]
	}
	return 0
}

// checkAgainstLog: every acknowledged write is in the log at its revision,
// a write known not to have happened is not, and every event of the log
// is a write some client made.
func checkAgainstLog(t testing.TB, ops []linOp, log *linLog) {
	t.Helper()
	bodies := make(map[string]*linOp)
	ackedDel := make(map[int64]*linOp)
	unknownDels := make(map[string]int)
	for i := range ops {
		o := &ops[i]
		switch o.In.Kind {
		case linSet:
			bodies[o.In.Body] = o
			rev, inLog := log.setAt[o.In.Body]
			switch o.Out.Res {
			case resOK:
				if !inLog || rev != o.Out.Rev {
					t.Errorf("acknowledged write lost: %s; in the log at rev %d (%v)", o, rev, inLog)
				}
			case resMismatch, resFailed:
				if inLog {
					t.Errorf("a write answered %s was applied at rev %d: %s", o.Out.Res, rev, o)
				}
			}
		case linDel:
			switch o.Out.Res {
			case resOK:
				ackedDel[o.Out.Rev] = o
				if !slices.ContainsFunc(log.byKey[o.In.Key], func(e fs.Event) bool {
					return e.Rev == o.Out.Rev && e.Kind == fs.EventDel
				}) {
					t.Errorf("acknowledged delete lost: %s", o)
				}
			case resUnknown:
				unknownDels[o.In.Key]++
			}
		}
	}
	strayDels := make(map[string]int)
	for _, e := range log.events {
		switch e.Kind {
		case fs.EventSet:
			if bodies[string(e.Body)] == nil {
				t.Errorf("the log holds a set no client made: %d %s %q", e.Rev, e.Path, e.Body)
			}
		case fs.EventDel:
			if o := ackedDel[e.Rev]; o == nil || o.In.Key != e.Path {
				strayDels[e.Path]++
			}
		default:
			t.Errorf("unexpected event %d %v %s", e.Rev, e.Kind, e.Path)
		}
	}
	for k, n := range strayDels {
		if n > unknownDels[k] {
			t.Errorf("the log holds %d deletes of %s that no acknowledged delete made, and only %d deletes had an unknown outcome",
				n, k, unknownDels[k])
		}
	}
}

// checkWriteOrder: a write that returned before another was called has a
// lower revision (revisions are one global order), and no two writes share
// one.
func checkWriteOrder(t testing.TB, ops []linOp, log *linLog) {
	t.Helper()
	type w struct {
		op  *linOp
		rev int64
	}
	var ws []w
	byRev := make(map[int64]*linOp)
	for i := range ops {
		o := &ops[i]
		if !o.isWrite() {
			continue
		}
		rev := writeRev(o, log)
		if rev == 0 {
			continue
		}
		if p := byRev[rev]; p != nil {
			t.Errorf("two writes made rev %d:\n  %s\n  %s", rev, p, o)
		}
		byRev[rev] = o
		if o.Out.Res == resOK { // only these have a known return time
			ws = append(ws, w{o, rev})
		}
	}
	// Sweep by call time, keeping the highest revision among the writes
	// that returned before it.
	byRet := slices.Clone(ws)
	sort.Slice(byRet, func(i, j int) bool { return byRet[i].op.Ret < byRet[j].op.Ret })
	sort.Slice(ws, func(i, j int) bool { return ws[i].op.Call < ws[j].op.Call })
	var best *w
	j := 0
	for i := range ws {
		for j < len(byRet) && byRet[j].op.Ret < ws[i].op.Call {
			if best == nil || byRet[j].rev > best.rev {
				best = &byRet[j]
			}
			j++
		}
		if best != nil && best.rev >= ws[i].rev {
			t.Errorf("write order against real time: %s returned before %s was called", best.op, ws[i].op)
		}
	}
}

// checkReads: every read saw the state of its key at a revision no older
// than its client's session floor (and, for a consistent read, than any
// write acknowledged before it was called), and not from the future (no
// newer than every write called after it returned).
func checkReads(t testing.TB, ops []linOp, log *linLog) {
	t.Helper()
	type w struct{ call, ret, rev int64 }
	var ws []w
	for i := range ops {
		o := &ops[i]
		if !o.isWrite() {
			continue
		}
		rev := writeRev(o, log)
		if rev == 0 {
			continue
		}
		ret := int64(-1) // unknown: never "before" anything
		if o.Out.Res == resOK {
			ret = o.Ret
		}
		ws = append(ws, w{o.Call, ret, rev})
	}
	var maxRev int64
	if n := len(log.events); n > 0 {
		maxRev = log.events[n-1].Rev
	}
	bad := 0
	for i := range ops {
		o := &ops[i]
		if o.In.Kind != linGet || (o.Out.Res != resOK && o.Out.Res != resMissing) {
			continue
		}
		lo, hi := o.SeenBefore, max(maxRev, o.SeenBefore)
		for _, x := range ws {
			if o.Consistent && x.ret >= 0 && x.ret < o.Call {
				lo = max(lo, x.rev)
			}
			if x.call > o.Ret {
				hi = min(hi, x.rev-1)
			}
		}
		if !log.seenIn(o.In.Key, o.Out, lo, hi) {
			bad++
			if bad <= 10 {
				t.Errorf("read saw a state its key never had at a revision in [%d, %d]: %s; the key's history:\n%s",
					lo, hi, o, describeEvents(log.byKey[o.In.Key]))
			}
		}
	}
	if bad > 10 {
		t.Errorf("... and %d more bad reads", bad-10)
	}
}

// checkSessions checks, without the log, that each client's reads never go
// backwards: a file's rev seen by a read is at least every rev this client
// saw of that file before, and than its own acknowledged writes to it.
func checkSessions(t testing.TB, ops []linOp) {
	t.Helper()
	byClient := make(map[int][]*linOp)
	for i := range ops {
		byClient[ops[i].Client] = append(byClient[ops[i].Client], &ops[i])
	}
	for c, cops := range byClient {
		sort.Slice(cops, func(i, j int) bool { return cops[i].Call < cops[j].Call })
		floor := make(map[string]int64)
		var seen int64
		for _, o := range cops {
			if o.SeenBefore < seen {
				t.Errorf("client %d: Seen went backwards from %d to %d", c, seen, o.SeenBefore)
			}
			seen = o.SeenBefore
			switch {
			case o.In.Kind == linGet && o.Out.Res == resOK:
				if o.Out.Rev < floor[o.In.Key] {
					t.Errorf("client %d read went backwards: rev %d after it saw rev %d of %s: %s",
						c, o.Out.Rev, floor[o.In.Key], o.In.Key, o)
				}
				floor[o.In.Key] = max(floor[o.In.Key], o.Out.Rev)
			case o.isWrite() && o.Out.Res == resOK:
				floor[o.In.Key] = max(floor[o.In.Key], o.Out.Rev)
			}
		}
	}
}

// checkPorcupine checks that the writes and the consistent reads are
// linearizable. A write of unknown outcome may take effect at any time
// after its call: it gets no return time (it is pending to the end), and
// a set is given the revision the log shows it made, or is left out if it
// never took effect.
func checkPorcupine(t testing.TB, ops []linOp, log *linLog) {
	t.Helper()
	var end int64
	for i := range ops {
		end = max(end, ops[i].Ret)
	}
	end++
	var hist []porcupine.Operation
	var applied, lost int
	for i := range ops {
		o := &ops[i]
		p := porcupine.Operation{ClientId: o.Client, Input: o.In, Call: o.Call, Output: o.Out, Return: o.Ret, Metadata: o.String()}
		switch {
		case o.Out.Res == resFailed:
			continue
		case o.In.Kind == linGet && !o.Consistent:
			continue // plain reads are only session-monotonic
		case o.Out.Res == resUnknown && o.In.Kind == linSet:
			rev, ok := log.setAt[o.In.Body]
			if !ok {
				lost++
				continue // never applied
			}
			applied++
			p.Output, p.Return = linOut{Res: resOK, Rev: rev}, end
		case o.Out.Res == resUnknown:
			p.Return = end
		}
		hist = append(hist, p)
	}
	model := linModel.ToModel()
	model.DescribeOperationMetadata = func(info any) string { return fmt.Sprint(info) }
	start := time.Now()
	res, info := porcupine.CheckOperationsVerbose(model, hist, 30*time.Second)
	t.Logf("porcupine: %s on %d operations in %v (sets of unknown outcome: %d applied, %d not)",
		res, len(hist), time.Since(start).Round(time.Millisecond), applied, lost)
	if res == porcupine.Ok {
		return
	}
	dir := os.Getenv("DOOZERFS_LIN_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	path := filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+".html")
	if err := porcupine.VisualizePath(model, info, path); err != nil {
		t.Logf("visualisation: %v", err)
	}
	if res == porcupine.Unknown {
		t.Errorf("porcupine could not decide linearizability in time; visualisation in %s", path)
		return
	}
	t.Errorf("the history is not linearizable; visualisation in %s (set DOOZERFS_LIN_DIR to keep it)", path)
}

// ---- the cluster ----

// linCluster is a cluster under test with its fault switches.
type linCluster struct {
	t      *testing.T
	disc   *staticDisc
	faults *netFaults
	rs     []*Replica
	cfgs   []Config
	logs   *linLogBuf
}

// linLogBuf keeps the replicas' logs, shown if the test fails.
type linLogBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *linLogBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *linLogBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Timings of the fault tests: short, so that faults show up as timeouts
// within a few seconds.
const (
	linWriteTimeout = 2 * time.Second
	linOpTimeout    = 5 * time.Second // the client's bound, above the replica's
)

// startLinCluster starts n replicas keeping `voters` voters, with fault
// injection and short timeouts.
func startLinCluster(t *testing.T, n, voters int, tweak func(*Config)) *linCluster {
	t.Helper()
	lc := &linCluster{t: t, disc: &staticDisc{}, faults: &netFaults{}, logs: &linLogBuf{}}
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("DOOZERFS_LIN_LOGS") != "" {
			s := lc.logs.String()
			if len(s) > 200<<10 && os.Getenv("DOOZERFS_LIN_DEBUG") == "" {
				s = "…" + s[len(s)-200<<10:]
			}
			t.Logf("replica logs:\n%s", s)
		}
	})
	lc.rs, lc.cfgs = startCluster(t, n, lc.disc, func(c *Config) {
		c.faults = lc.faults
		c.Voters = voters
		c.WriteTimeout = linWriteTimeout
		c.NoLeaderGrace = time.Second
		c.History = 1 << 20
		level := slog.LevelInfo
		if os.Getenv("DOOZERFS_LIN_DEBUG") != "" {
			level = slog.LevelDebug
		}
		c.Logger = slog.New(slog.NewTextHandler(lc.logs, &slog.HandlerOptions{Level: level})).With("replica", c.Name)
		if tweak != nil {
			tweak(c)
		}
	})
	waitFor(t, fmt.Sprintf("%d voters", min(n, voters)), 30*time.Second, func() bool {
		return lc.rs[0].voterCount() == min(n, voters)
	})
	lc.waitLeader(nil)
	return lc
}

// waitLeader waits for a leader among the live replicas, not excluded, that
// they all know, and returns it.
func (lc *linCluster) waitLeader(exclude *Replica) *Replica {
	lc.t.Helper()
	var l *Replica
	waitFor(lc.t, "a leader", 15*time.Second, func() bool {
		l = nil
		for _, r := range lc.rs {
			if r != nil && r != exclude && !r.closed.Load() && r.leader.Load() == r.id {
				l = r
			}
		}
		return l != nil
	})
	return l
}

func (lc *linCluster) index(r *Replica) int {
	for i, x := range lc.rs {
		if x == r {
			return i
		}
	}
	lc.t.Fatalf("%s is not in the cluster", r.cfg.Name)
	return -1
}

func (lc *linCluster) ids() []uint64 {
	var ids []uint64
	for _, r := range lc.rs {
		ids = append(ids, r.id)
	}
	return ids
}

// clientSpecs gives n clients, spread over the replicas (each with every
// other replica to fail over to); even ones read consistently, so with
// twice as many clients as replicas each replica has a client of each kind.
func (lc *linCluster) clientSpecs(n int) []linClientSpec {
	var specs []linClientSpec
	for i := range n {
		var addrs []string
		for j := range lc.rs {
			addrs = append(addrs, lc.cfgs[(i+j)%len(lc.rs)].Addr)
		}
		specs = append(specs, linClientSpec{Addrs: addrs, Consistent: i%2 == 0})
	}
	return specs
}

// converge waits until every live replica has applied the highest
// revision any of them has, checks that their trees are the same there,
// and returns that revision.
func (lc *linCluster) converge() int64 {
	t := lc.t
	t.Helper()
	var live []*Replica
	var top int64
	for _, r := range lc.rs {
		if r != nil && !r.closed.Load() {
			live = append(live, r)
			top = max(top, r.tree.Rev())
		}
	}
	for _, r := range live {
		waitFor(t, fmt.Sprintf("%s to apply rev %d", r.cfg.Name, top), 15*time.Second, func() bool {
			return r.tree.Rev() >= top
		})
	}
	var want string
	for i, r := range live {
		v, err := r.tree.ViewAt(top)
		if err != nil {
			t.Fatalf("%s: view at %d: %v", r.cfg.Name, top, err)
		}
		got := dumpView(t, v)
		if i == 0 {
			want = got
			continue
		}
		if got != want {
			t.Errorf("%s and %s differ at rev %d:\n%s\n----\n%s", live[0].cfg.Name, r.cfg.Name, top, want, got)
		}
	}
	t.Logf("%d live replicas agree at rev %d", len(live), top)
	return top
}

// dumpView lists every node of v: path, type, rev, time, lease, body.
func dumpView(t *testing.T, v *fs.View) string {
	t.Helper()
	var b strings.Builder
	var walk func(p string)
	walk = func(p string) {
		st, err := v.Stat(p)
		if err != nil {
			t.Fatalf("stat %s: %v", p, err)
		}
		if st.Type == fs.TypeFile {
			body, _, err := v.Get(p)
			if err != nil {
				t.Fatalf("get %s: %v", p, err)
			}
			fmt.Fprintf(&b, "%s file rev=%d time=%d lease=%d %q\n", p, st.Rev, st.Time, st.Lease, body)
			return
		}
		fmt.Fprintf(&b, "%s dir rev=%d time=%d children=%d\n", p, st.Rev, st.Time, st.Children)
		ents, err := v.GetDir(p)
		if err != nil {
			t.Fatalf("getdir %s: %v", p, err)
		}
		for _, e := range ents {
			walk(strings.TrimSuffix(p, "/") + "/" + e.Name)
		}
	}
	walk("/")
	return b.String()
}

// finishLin stops the workload, waits for the live replicas to agree and
// checks the history against them.
func (lc *linCluster) finishLin(w *linWorkload) []linOp {
	lc.t.Helper()
	ops := w.finish()
	top := lc.converge()
	checkLinHistory(lc.t, ops, collectLinLog(lc.t, lc.rs, top))
	return ops
}

// checkNothingThrough checks that no write through the replica at addr,
// called after from and answered before to, had a definite outcome: none
// could be committed while that replica was cut off from a quorum.
func checkNothingThrough(t *testing.T, ops []linOp, addr string, from, to int64) {
	t.Helper()
	tried := 0
	for i := range ops {
		o := &ops[i]
		if o.Addr != addr || o.Call <= from || o.Ret >= to {
			continue
		}
		if !o.isWrite() {
			t.Logf("through %s while cut off: %s", addr, o)
			continue
		}
		tried++
		t.Logf("through %s while cut off: %s", addr, o)
		if o.Out.Res == resOK || o.Out.Res == resMismatch || o.Out.Res == resMissing {
			t.Errorf("a write through %s had an answer while it was cut off: %s", addr, o)
		}
	}
	t.Logf("%d writes through %s while it was cut off, none answered", tried, addr)
	if tried == 0 {
		t.Errorf("no write went through %s while it was cut off: the scenario tested nothing", addr)
	}
}
