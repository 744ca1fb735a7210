package fs

import "strings"

// A txn builds one new revision: the ops of a TXN, a lease's deletions, or
// a mirror's events are applied in order to a private copy of the tree
// (path copying leaves the published revisions untouched). Nothing is
// visible until Tree.commit publishes it.
type txn struct {
	t      *Tree
	root   *node // the tree as changed so far
	rev    int64 // the revision this txn makes, if it changes anything
	time   int64 // commit time of rev
	system bool  // may write /ctl
	events []Event
	undo   []undo // undo[i] reverts events[i]
	noUndo bool   // rebuilding a past revision: keep no undo records
	binds  []bind // lease bindings changed, in order
	drop   int64  // a lease to delete at commit (0: none)

	// Buffers for the place of the op being applied, so that a path of
	// up to 15 components costs locate no allocation. Each locate reuses
	// them: a place is good until the next one.
	compsBuf [15]string
	nodesBuf [16]*node
}

// emit records the event ev, which u reverts.
func (x *txn) emit(ev Event, u undo) {
	if x.events == nil && !x.noUndo {
		// Most revisions have one event: give it and its undo record one
		// allocation, which the window then keeps as one object.
		b := new(struct {
			ev [1]Event
			un [1]undo
		})
		x.events, x.undo = b.ev[:0], b.un[:0]
	}
	x.events = append(x.events, ev)
	if !x.noUndo {
		x.undo = append(x.undo, u)
	}
}

// parentUndo returns an undo record that gives the parent p back its
// current rev and time.
func parentUndo(p *node) undo { return undo{prev: p.rev, ptime: p.time} }

// A bind records that the file at path moved from lease from to lease to.
type bind struct {
	path     string
	from, to int64
}

func (t *Tree) begin(time int64, system bool) *txn {
	cur := t.cur.Load()
	return &txn{t: t, root: cur.root, rev: cur.rev + 1, time: time, system: system}
}

// finishLocked applies x's lease bookkeeping to the tree.
func (x *txn) finishLocked() {
	for _, b := range x.binds {
		x.t.bindLocked(b.path, b.from, b.to)
	}
	if x.drop != 0 {
		delete(x.t.leases, x.drop)
	}
}

// op applies one operation of a TXN. The checks run in this order: kind,
// path, rev range, /ctl permission, then those of the operation.
func (x *txn) op(o *Op) error {
	if o.Kind < OpSet || o.Kind > OpCheck {
		return Errorf(KindBadRequest, o.Path, "unknown op kind %d", o.Kind)
	}
	if err := ValidPath(o.Path); err != nil {
		return err
	}
	if o.Rev < Clobber {
		return Errorf(KindBadRequest, o.Path, "rev %d is below -1", o.Rev)
	}
	if o.Kind != OpCheck && !x.system && isCtl(o.Path) {
		return &Error{Kind: KindPermission, Path: o.Path, Detail: "/ctl is written by the replicas only"}
	}
	at := x.locate(o.Path)
	if at.notDir {
		return &Error{Kind: KindNotDir, Path: o.Path, Detail: "a parent is a file"}
	}
	switch o.Kind {
	case OpSet:
		return x.set(o, at)
	case OpDel:
		return x.del(o, at)
	case OpMkdir:
		return x.mkdir(o, at)
	}
	return x.check(o, at)
}

// A place is where a path falls in the tree being built.
type place struct {
	comps  []string
	nodes  []*node // the existing nodes along comps, from the root
	cur    *node   // the node at path, or nil
	notDir bool    // an ancestor of path is a file
}

func (x *txn) locate(path string) place {
	comps := splitInto(x.compsBuf[:0], path)
	nodes := chainInto(x.nodesBuf[:0], x.root, comps)
	at := place{comps: comps, nodes: nodes}
	last := nodes[len(nodes)-1]
	switch {
	case len(nodes) == len(comps)+1:
		at.cur = last
	case !last.dir:
		at.notDir = true
	}
	return at
}

// revOK applies the conditional-write rule to the node n (nil: missing).
func revOK(n *node, rev int64) bool {
	switch {
	case rev == Clobber:
		return true
	case rev == Missing:
		return n == nil
	}
	return n != nil && n.rev <= rev
}

func (x *txn) set(o *Op, at place) error {
	switch {
	case at.cur != nil && at.cur.dir:
		return &Error{Kind: KindIsDir, Path: o.Path}
	case !revOK(at.cur, o.Rev):
		return x.mismatch(o, at.cur)
	case o.Lease != 0 && !x.t.leaseLive(o.Lease):
		return Errorf(KindNoLease, o.Path, "lease %d is not live", o.Lease)
	}
	from, u := x.putFile(at, o.Body, o.Lease)
	x.emit(Event{Rev: x.rev, Path: o.Path, Kind: EventSet, Body: o.Body, Time: x.time, Lease: o.Lease}, u)
	if from != o.Lease {
		x.binds = append(x.binds, bind{path: o.Path, from: from, to: o.Lease})
	}
	return nil
}

// putFile writes the file at at, replacing it or creating it (and its
// parents), and returns the lease it was bound to before (0: none) and the
// undo record of the set event the caller emits.
func (x *txn) putFile(at place, body []byte, lease int64) (from int64, u undo) {
	f := &node{body: body, rev: x.rev, time: x.time, lease: lease}
	if c := at.cur; c != nil {
		f.name = c.name
		u = parentUndo(at.nodes[len(at.nodes)-2])
		u.what, u.body, u.rev, u.time, u.lease = undoFile, c.body, c.rev, c.time, c.lease
		x.root = rebuild(at.nodes[:len(at.nodes)-1], at.comps, f, x.rev, x.time)
		return c.lease, u
	}
	f.name = at.name()
	return 0, x.create(at, f)
}

// name returns the last component of at's path as a string of its own, so
// that a node never keeps a whole path (or mutation) alive.
func (at place) name() string {
	return strings.Clone(at.comps[len(at.comps)-1])
}

// create adds leaf at the missing path of at, creating the missing
// directories above it with an EventMkdir each, top down. It returns the
// undo record of the leaf's own event, which the caller emits.
func (x *txn) create(at place, leaf *node) undo {
	have := len(at.nodes) - 1 // components that exist
	n := leaf
	for i := len(at.comps) - 2; i >= have; i-- {
		d := newDir(strings.Clone(at.comps[i]), x.rev, x.time)
		d.kids, _ = d.kids.put(n)
		n = d
	}
	u := parentUndo(at.nodes[have]) // the first node created goes there
	x.root = rebuild(at.nodes, at.comps, n, x.rev, x.time)
	for i := have; i < len(at.comps)-1; i++ {
		x.emit(Event{Rev: x.rev, Path: join(at.comps[:i+1]), Kind: EventMkdir, Time: x.time}, u)
		u = undo{prev: x.rev, ptime: x.time} // the rest go in new directories
	}
	return u
}

func (x *txn) del(o *Op, at place) error {
	switch {
	case len(at.comps) == 0:
		return &Error{Kind: KindIsDir, Path: o.Path, Detail: "/ cannot be deleted"}
	case at.cur == nil && o.Rev == Missing:
		return nil // asked to hold only if missing: nothing to do
	case at.cur == nil:
		return &Error{Kind: KindNoEnt, Path: o.Path}
	case !revOK(at.cur, o.Rev):
		return x.mismatch(o, at.cur)
	case at.cur.dir && at.cur.kids.Len() > 0:
		return &Error{Kind: KindNotEmpty, Path: o.Path}
	}
	x.remove(at, o.Path)
	return nil
}

// remove deletes the existing node of at, the path path, which is a file or an empty
// directory.
func (x *txn) remove(at place, path string) {
	c := at.cur
	u := parentUndo(at.nodes[len(at.nodes)-2])
	u.rev, u.time = c.rev, c.time
	if c.dir {
		u.what = undoDir
	} else {
		u.what, u.body, u.lease = undoFile, c.body, c.lease
	}
	x.root = rebuild(at.nodes[:len(at.nodes)-1], at.comps, nil, x.rev, x.time)
	x.emit(Event{Rev: x.rev, Path: path, Kind: EventDel, Time: x.time}, u)
	if at.cur.lease != 0 {
		x.binds = append(x.binds, bind{path: path, from: at.cur.lease})
	}
}

func (x *txn) mkdir(o *Op, at place) error {
	switch {
	case at.cur != nil && o.Rev == Missing:
		return &Error{Kind: KindRevMismatch, Path: o.Path, Detail: "exists"}
	case at.cur != nil && !at.cur.dir:
		return &Error{Kind: KindNotDir, Path: o.Path, Detail: "a file exists there"}
	case !revOK(at.cur, o.Rev):
		return x.mismatch(o, at.cur)
	case at.cur != nil:
		return nil // an existing directory: nothing to do
	}
	u := x.create(at, newDir(at.name(), x.rev, x.time))
	x.emit(Event{Rev: x.rev, Path: o.Path, Kind: EventMkdir, Time: x.time}, u)
	return nil
}

func (x *txn) check(o *Op, at place) error {
	switch {
	case at.cur == nil && o.Rev == Missing:
		return nil
	case at.cur == nil:
		return &Error{Kind: KindNoEnt, Path: o.Path}
	case !revOK(at.cur, o.Rev):
		return x.mismatch(o, at.cur)
	}
	return nil
}

func (x *txn) mismatch(o *Op, n *node) error {
	if n == nil {
		return Errorf(KindRevMismatch, o.Path, "rev %d: missing", o.Rev)
	}
	return Errorf(KindRevMismatch, o.Path, "rev %d: %s has rev %d", o.Rev, n.typ(), n.rev)
}
