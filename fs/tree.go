package fs

import (
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
)

// Config configures a Tree. It does not affect the state a mutation leads
// to, so replicas with different Configs still agree.
type Config struct {
	// History is how many revisions, counting the current one, stay
	// readable through ViewAt and Events. Zero or less means the default,
	// 10000.
	History int

	// HistoryBytes bounds the memory the window keeps for superseded
	// versions: the bodies that later revisions replaced or deleted, plus
	// HistoryRecordBytes for every revision and HistoryEventBytes and the
	// path's length for every event in the window (see HistoryCost). When
	// the window's cost exceeds it, the oldest revisions stop being
	// readable (TOO_LATE), as when there are more than History of them;
	// the tighter bound wins. The current revision always stays readable,
	// so a single revision costing more than the bound leaves the window
	// holding that revision alone. Zero or less means no byte bound.
	HistoryBytes int64
}

// DefaultHistory is the default Config.History, in revisions.
const DefaultHistory = 10000

// MaxRev is the highest revision a tree accepts. It is far beyond any real
// store (a million writes a second for 146,000 years) and keeps revision
// arithmetic away from overflow, whatever a snapshot or a mirror's source
// claims.
const MaxRev int64 = 1 << 62

// DefaultConfig returns the default configuration.
func DefaultConfig() Config { return Config{History: DefaultHistory} }

func (c Config) withDefaults() Config {
	if c.History <= 0 {
		c.History = DefaultHistory
	}
	return c
}

// A Tree is the doozerfs namespace: the current revision, a window of past
// revisions and their events, and the leases. See the package comment for
// who may call what concurrently.
//
// The window does not keep the past revisions' trees: it keeps, for each
// revision, the events that made it and an undo record for each event (the
// node the event replaced or removed, and its parent's previous rev and
// time). A past revision is rebuilt on demand by ViewAt from the current
// tree (undoing the revisions after it) or from the last revision ViewAt
// rebuilt (undoing or replaying the few revisions in between). So the
// history costs the garbage collector two small objects per revision
// instead of a copy of every node on the changed paths.
type Tree struct {
	cfg Config
	cur atomic.Pointer[View] // the current revision

	// past is the last revision ViewAt rebuilt, for the next call to start
	// from. It is nil, or a view in the window of generation gen.
	past atomic.Pointer[pastView]

	// mu guards the fields below. Only the apply goroutine writes them, and
	// only with mu held; it may read them without mu.
	mu        sync.RWMutex
	hist      ring                          // the window, oldest first: hist.at(i).rev == hist.at(0).rev+i
	histBytes int64                         // the sum of the records' cost
	gen       uint64                        // bumped by Reset: older rebuilt views are stale
	base      int64                         // the first revision this tree held: 0, or its snapshot's
	leases    map[int64]int64               // live leases: id → TTL in nanoseconds
	lastLease int64                         // the last lease id granted (ids start at 1)
	bound     map[int64]map[string]struct{} // lease id → paths of the files bound to it
}

// New returns an empty tree at revision 0: just the directory "/".
func New(cfg Config) *Tree {
	return newTree(cfg, &View{root: newDir("", 0, 0)})
}

// newTree returns a tree whose only revision is v.
func newTree(cfg Config, v *View) *Tree {
	cfg = cfg.withDefaults()
	t := &Tree{
		cfg:    cfg,
		base:   v.rev,
		leases: make(map[int64]int64),
		bound:  make(map[int64]map[string]struct{}),
	}
	t.restartLocked(v)
	return t
}

// restartLocked makes v the current revision and the only one in the
// window, which knows none of its events.
func (t *Tree) restartLocked(v *View) {
	t.hist.reset()
	t.hist.push(record{rev: v.rev, cost: HistoryRecordBytes})
	t.histBytes = HistoryRecordBytes
	t.gen++
	t.past.Store(nil)
	t.cur.Store(v)
}

// Rev returns the current revision.
func (t *Tree) Rev() int64 { return t.cur.Load().rev }

// View returns the current revision. It copies nothing.
func (t *Tree) View() *View { return t.cur.Load() }

// Oldest returns the oldest revision ViewAt can still show.
func (t *Tree) Oldest() int64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.oldestLocked()
}

func (t *Tree) oldestLocked() int64 { return t.hist.at(0).rev }

// HistoryBytes returns what the window costs against Config.HistoryBytes,
// whether or not that bound is set: HistoryRecordBytes per revision, and
// per event HistoryEventBytes, its path's length and the length of the body
// it replaced or deleted.
func (t *Tree) HistoryBytes() int64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.histBytes
}

// ViewAt returns revision rev: TOO_LATE if it is older than Oldest(), and
// BAD_REQUEST if it is newer than Rev() (the caller waits for it first).
// A past revision is rebuilt from the window's records: the cost grows
// with its distance from the current revision or from the revision the
// previous call rebuilt, whichever is nearer.
func (t *Tree) ViewAt(rev int64) (*View, error) {
	t.mu.RLock()
	cur := t.cur.Load()
	oldest := t.oldestLocked()
	switch {
	case rev > cur.rev:
		t.mu.RUnlock()
		return nil, Errorf(KindBadRequest, "", "revision %d is in the future (current %d)", rev, cur.rev)
	case rev < oldest:
		t.mu.RUnlock()
		return nil, Errorf(KindTooLate, "", "revision %d is older than the window (oldest %d)", rev, oldest)
	case rev == cur.rev:
		t.mu.RUnlock()
		return cur, nil
	}
	gen := t.gen
	from, redo := cur, false // undo from the current revision by default
	if p := t.past.Load(); p != nil && p.gen == gen && p.v.rev >= oldest && p.v.rev <= cur.rev {
		switch d := p.v.rev - rev; {
		case d == 0:
			t.mu.RUnlock()
			return p.v, nil
		case d > 0 && d < cur.rev-rev:
			from = p.v
		case d < 0 && -d < cur.rev-rev:
			from, redo = p.v, true
		}
	}
	lo, hi := rev, from.rev // the records (lo, hi] are needed
	if redo {
		lo, hi = from.rev, rev
	}
	recs := t.hist.copyRange(int(lo+1-oldest), int(hi+1-oldest))
	t.mu.RUnlock()

	var root *node
	if redo {
		root = replayRecords(from.root, recs)
	} else {
		root = undoRecords(from.root, recs)
	}
	v := &View{rev: rev, root: root}
	t.past.Store(&pastView{v: v, gen: gen})
	return v, nil
}

// Events returns, in order, every event with a revision ≥ from whose path
// matches g (nil: every path). A from below 1 counts as 1. It is TOO_LATE
// when the window no longer holds every event from there on: from must be
// at least Oldest(), and after the tree's first revision (a tree read from
// a snapshot does not know that revision's events). A from above Rev()
// gives no events. The bodies are shared and must not be modified.
func (t *Tree) Events(from int64, g *Glob) ([]Event, error) {
	evs, err := t.eventsFrom(max(from, 1))
	if err != nil {
		return nil, err
	}
	var out []Event
	for _, e := range evs {
		for _, ev := range e {
			if g.Match(ev.Path) {
				out = append(out, ev)
			}
		}
	}
	return out, nil
}

// eventsFrom returns the events of each revision from from to the current
// one, or TOO_LATE if the events of some of them are gone. It copies the
// window's slices under the lock and leaves the scanning to its caller, so
// that a long scan never holds up Apply.
func (t *Tree) eventsFrom(from int64) ([][]Event, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	cur := t.cur.Load().rev
	if from > cur {
		return nil, nil
	}
	if first := max(t.base+1, t.oldestLocked()); from < first {
		return nil, Errorf(KindTooLate, "", "events from revision %d are gone (oldest %d)", from, first)
	}
	first := int(from - t.oldestLocked())
	out := make([][]Event, t.hist.n-first)
	for i := range out {
		out[i] = t.hist.at(first + i).events
	}
	return out, nil
}

// Leases returns every live lease, sorted by id.
func (t *Tree) Leases() []Lease {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]Lease, 0, len(t.leases))
	for id, ttl := range t.leases {
		out = append(out, Lease{ID: id, TTL: ttl})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// LeaseFiles returns the paths of the files bound to lease id, sorted.
func (t *Tree) LeaseFiles(id int64) []string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]string, 0, len(t.bound[id]))
	for p := range t.bound[id] {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// leaseLive reports whether lease id is live. Apply goroutine only.
func (t *Tree) leaseLive(id int64) bool {
	_, ok := t.leases[id]
	return ok
}

// publishLocked makes v the current revision, made by events that undo
// reverts, first recording the revisions skipped since the current one (a
// mirror may skip some) as revisions without a change. Then it drops the
// oldest revisions the window no longer has room for.
func (t *Tree) publishLocked(v *View, events []Event, undo []undo) {
	prev := t.cur.Load()
	if v.rev <= prev.rev {
		panic(fmt.Sprintf("fs: publishing revision %d at revision %d", v.rev, prev.rev))
	}
	h := int64(t.cfg.History)
	if v.rev-prev.rev > h {
		t.hist.reset()
		t.histBytes = 0
		t.past.Store(nil)
	}
	for r := max(prev.rev+1, v.rev-h+1); r < v.rev; r++ {
		t.hist.push(record{rev: r, cost: HistoryRecordBytes})
		t.histBytes += HistoryRecordBytes
	}
	rec := record{rev: v.rev, events: events, undo: undo, cost: recordCost(events, undo)}
	t.hist.push(rec)
	t.histBytes += rec.cost
	t.cur.Store(v)
	t.trimLocked()
}

// trimLocked drops the oldest revisions while the window holds more than
// History of them or costs more than HistoryBytes, always keeping the
// current one.
func (t *Tree) trimLocked() {
	dropped := false
	for t.hist.n > 1 && (t.hist.n > t.cfg.History || (t.cfg.HistoryBytes > 0 && t.histBytes > t.cfg.HistoryBytes)) {
		t.histBytes -= t.hist.pop().cost
		dropped = true
	}
	if !dropped {
		return
	}
	if p := t.past.Load(); p != nil && p.v.rev < t.oldestLocked() {
		t.past.CompareAndSwap(p, nil) // nor keep a rebuilt tree out of the window
	}
}

// bindLocked moves the file at path from lease from to lease to (0: none).
func (t *Tree) bindLocked(path string, from, to int64) {
	if from != 0 {
		delete(t.bound[from], path)
		if len(t.bound[from]) == 0 {
			delete(t.bound, from)
		}
	}
	if to != 0 {
		s := t.bound[to]
		if s == nil {
			s = make(map[string]struct{})
			t.bound[to] = s
		}
		s[path] = struct{}{}
	}
}

// Reset makes t hold src's current state — revision, tree, leases — with a
// history window that starts afresh at that revision: readers of older
// revisions get TOO_LATE. A replica calls it, from the apply goroutine,
// when it installs a snapshot received from a peer; src must not be used
// afterwards. The revision may not go backwards.
func (t *Tree) Reset(src *Tree) error {
	v := src.cur.Load()
	t.mu.Lock()
	defer t.mu.Unlock()
	if cur := t.cur.Load(); v.rev < cur.rev {
		return Errorf(KindBadRequest, "", "reset to revision %d below the current %d", v.rev, cur.rev)
	}
	t.base = v.rev
	t.leases = src.leases
	t.lastLease = src.lastLease
	t.bound = src.bound
	t.restartLocked(v)
	return nil
}
