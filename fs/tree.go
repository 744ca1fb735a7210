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
type Tree struct {
	cfg Config
	cur atomic.Pointer[View] // the current revision

	// mu guards the fields below. Only the apply goroutine writes them, and
	// only with mu held; it may read them without mu.
	mu        sync.RWMutex
	hist      []*View                       // the window, oldest first: hist[i].rev == hist[0].rev+i
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
		hist:   []*View{v},
		base:   v.rev,
		leases: make(map[int64]int64),
		bound:  make(map[int64]map[string]struct{}),
	}
	t.cur.Store(v)
	return t
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

func (t *Tree) oldestLocked() int64 { return t.hist[0].rev }

// ViewAt returns revision rev: TOO_LATE if it is older than Oldest(), and
// BAD_REQUEST if it is newer than Rev() (the caller waits for it first).
func (t *Tree) ViewAt(rev int64) (*View, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	cur := t.cur.Load().rev
	switch {
	case rev > cur:
		return nil, Errorf(KindBadRequest, "", "revision %d is in the future (current %d)", rev, cur)
	case rev < t.oldestLocked():
		return nil, Errorf(KindTooLate, "", "revision %d is older than the window (oldest %d)", rev, t.oldestLocked())
	}
	return t.hist[rev-t.oldestLocked()], nil
}

// Events returns, in order, every event with a revision ≥ from whose path
// matches g (nil: every path). A from below 1 counts as 1. It is TOO_LATE
// when the window no longer holds every event from there on: from must be
// at least Oldest(), and after the tree's first revision (a tree read from
// a snapshot does not know that revision's events). A from above Rev()
// gives no events. The bodies are shared and must not be modified.
func (t *Tree) Events(from int64, g *Glob) ([]Event, error) {
	views, err := t.viewsFrom(max(from, 1))
	if err != nil {
		return nil, err
	}
	var out []Event
	for _, v := range views {
		for _, ev := range v.events {
			if g.Match(ev.Path) {
				out = append(out, ev)
			}
		}
	}
	return out, nil
}

// viewsFrom returns the views from revision from to the current one, or
// TOO_LATE if the events of some of them are gone. It copies the window's
// pointers under the lock and leaves the scanning to its caller, so that a
// long scan never holds up Apply.
func (t *Tree) viewsFrom(from int64) ([]*View, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	cur := t.cur.Load().rev
	if from > cur {
		return nil, nil
	}
	if first := max(t.base+1, t.oldestLocked()); from < first {
		return nil, Errorf(KindTooLate, "", "events from revision %d are gone (oldest %d)", from, first)
	}
	return append([]*View(nil), t.hist[from-t.oldestLocked():]...), nil
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

// publishLocked makes v the current revision, first recording the
// revisions skipped since the current one (a mirror may skip some) as views
// of the unchanged tree.
func (t *Tree) publishLocked(v *View) {
	prev := t.cur.Load()
	if v.rev <= prev.rev {
		panic(fmt.Sprintf("fs: publishing revision %d at revision %d", v.rev, prev.rev))
	}
	h := int64(t.cfg.History)
	if v.rev-prev.rev > h {
		clear(t.hist)
		t.hist = t.hist[:0]
	}
	for r := max(prev.rev+1, v.rev-h+1); r < v.rev; r++ {
		t.hist = append(t.hist, &View{rev: r, root: prev.root})
	}
	t.hist = append(t.hist, v)
	if drop := len(t.hist) - t.cfg.History; drop > 0 {
		clear(t.hist[:drop]) // let the dropped revisions go
		t.hist = t.hist[drop:]
	}
	t.cur.Store(v)
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
	clear(t.hist)
	t.hist = []*View{v}
	t.base = v.rev
	t.leases = src.leases
	t.lastLease = src.lastLease
	t.bound = src.bound
	t.cur.Store(v)
	return nil
}
