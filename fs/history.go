package fs

import (
	"sort"
	"strings"
)

// The window of past revisions (see Tree): per revision, its events and an
// undo record for each, and the code that rebuilds a past revision's tree
// from them.

// HistoryRecordBytes and HistoryEventBytes are what the window charges
// against Config.HistoryBytes for each revision it holds and for each event
// of one, on top of the event's path and the body it superseded: about the
// memory the records themselves take (see Config.HistoryBytes).
const (
	HistoryRecordBytes = 64
	HistoryEventBytes  = 160
)

// recordCost is what one revision made by events costs the window against
// Config.HistoryBytes: HistoryRecordBytes, plus for each event
// HistoryEventBytes, the length of its path, and the length of the body
// the event replaced or deleted (none for a new file or a directory). The
// bodies an event writes are not charged to it: while current they belong
// to the tree, and once superseded they are charged to the revision that
// superseded them. So the window's cost bounds every byte of superseded
// body it keeps alive.
func recordCost(events []Event, undo []undo) int64 {
	c := int64(HistoryRecordBytes)
	for i := range events {
		c += HistoryEventBytes + int64(len(events[i].Path))
	}
	for i := range undo {
		c += int64(len(undo[i].body))
	}
	return c
}

// A record is one revision of the window.
type record struct {
	rev    int64
	events []Event // the events that made rev (nil: none, or unknown)
	undo   []undo  // undo[i] reverts events[i]
	cost   int64   // what the record costs against HistoryBytes
}

// An undo reverts one event: it puts back the node the event replaced or
// removed (or removes the node the event created) at the event's path, and
// gives the parent directory back its rev and time. It holds one pointer,
// the old body, so a record is cheap for the garbage collector to mark.
type undo struct {
	body        []byte // undoFile: the old body
	rev, time   int64  // undoFile, undoDir: the old node's rev and time
	lease       int64  // undoFile: the old node's lease
	prev, ptime int64  // the parent's rev and time before the event
	what        undoKind
}

type undoKind uint8

const (
	undoRemove undoKind = iota // the event created the node: remove it
	undoFile                   // the event replaced or deleted a file: put it back
	undoDir                    // the event deleted an empty directory: put it back
)

// A pastView is a revision ViewAt rebuilt, and the generation of the window
// it belongs to.
type pastView struct {
	v   *View
	gen uint64
}

// undoBatchAbove is how many events undoRecords undoes one by one; more
// go to undoBatch. A variable so that tests can send everything there.
var undoBatchAbove = 8

// undoRecords returns the tree at revision recs[0].rev-1, given root, the
// tree at the last record's revision. The records are consecutive.
func undoRecords(root *node, recs []record) *node {
	n := 0
	for i := range recs {
		n += len(recs[i].undo)
	}
	if n > undoBatchAbove {
		return undoBatch(root, recs)
	}
	for i := len(recs) - 1; i >= 0; i-- {
		r := &recs[i]
		for j := len(r.undo) - 1; j >= 0; j-- {
			root = undoEvent(root, r.events[j].Path, &r.undo[j])
		}
	}
	return root
}

// undoBatch is undoRecords for many events: it changes each path only
// once, however many events touched it. A path ends up as the oldest event
// on it found it (the oldest undo record puts back the node it replaced or
// removed, or removes the node it created), and a directory gets the rev
// and time from before the oldest event on it or on one of its children.
// Removals go deepest first, then the nodes put back shallowest first, so
// that every parent is there before its children; the directories' revs
// and times come last.
func undoBatch(root *node, recs []record) *node {
	nodes := make(map[string]*undo)     // path → its oldest undo record
	stamps := make(map[string][2]int64) // directory → rev and time before the oldest change
	for i := len(recs) - 1; i >= 0; i-- {
		r := &recs[i]
		for j := len(r.undo) - 1; j >= 0; j-- {
			p, u := r.events[j].Path, &r.undo[j]
			nodes[p] = u
			delete(stamps, p) // an older event on p itself decides its stamps
			stamps[parentPath(p)] = [2]int64{u.prev, u.ptime}
		}
	}
	paths := make([]string, 0, len(nodes))
	for p := range nodes {
		paths = append(paths, p)
	}
	sort.Slice(paths, func(i, j int) bool {
		di, dj := strings.Count(paths[i], "/"), strings.Count(paths[j], "/")
		if di != dj {
			return di < dj
		}
		return paths[i] < paths[j]
	})
	b := batch{stamps: stamps, done: make(map[string]bool, len(stamps))}
	for i := len(paths) - 1; i >= 0; i-- {
		if nodes[paths[i]].what == undoRemove {
			root = b.replace(root, paths[i], nil)
		}
	}
	for _, p := range paths {
		u := nodes[p]
		switch u.what {
		case undoFile:
			root = b.replace(root, p, &node{name: lastComponent(p), body: u.body, rev: u.rev, time: u.time, lease: u.lease})
		case undoDir:
			root = b.replace(root, p, &node{name: lastComponent(p), dir: true, rev: u.rev, time: u.time})
			b.done[p] = false // its own stamps replaced any it was given
		}
	}
	for d, st := range stamps {
		if !b.done[d] {
			root = stampDir(root, d, st[0], st[1])
		}
	}
	return root
}

// A batch is the state of one undoBatch: the directories' stamps to give
// back, those given already, and buffers for the paths it changes.
type batch struct {
	stamps map[string][2]int64
	done   map[string]bool
	comps  []string
	nodes  []*node
}

// replace returns root with x at path p, or without the node at p if x is
// nil (nothing to do if there is none), giving the parent its stamps.
func (b *batch) replace(root *node, p string, x *node) *node {
	b.comps = splitInto(b.comps, p)
	b.nodes = chainInto(b.nodes, root, b.comps)
	comps, nodes := b.comps, b.nodes
	switch {
	case x == nil && len(nodes) <= len(comps):
		return root // already missing
	case len(comps) == 0 || len(nodes) < len(comps) || !nodes[len(comps)-1].dir:
		panic("fs: history cannot put back " + p)
	}
	parent := *nodes[len(comps)-1]
	if x == nil {
		parent.kids, _ = parent.kids.del(comps[len(comps)-1])
	} else {
		parent.kids, _ = parent.kids.put(x)
	}
	pp := parentPath(p)
	if st, ok := b.stamps[pp]; ok {
		parent.rev, parent.time = st[0], st[1]
		b.done[pp] = true
	}
	return copyUp(nodes, len(comps)-1, &parent)
}

// stampDir returns root with the directory at p given rev and time, if it
// is there.
func stampDir(root *node, p string, rev, time int64) *node {
	comps := split(p)
	nodes := chain(root, comps)
	if len(nodes) <= len(comps) || !nodes[len(comps)].dir {
		return root
	}
	d := *nodes[len(comps)]
	d.rev, d.time = rev, time
	return copyUp(nodes, len(comps), &d)
}

// copyUp returns the root of the tree in which x replaces nodes[i], the
// node at depth i of the chain nodes, copying its ancestors.
func copyUp(nodes []*node, i int, x *node) *node {
	for i--; i >= 0; i-- {
		d := *nodes[i]
		d.kids, _ = d.kids.put(x)
		x = &d
	}
	return x
}

// parentPath returns the path of the directory holding the valid path p,
// not "/".
func parentPath(p string) string {
	if i := strings.LastIndexByte(p, '/'); i > 0 {
		return p[:i]
	}
	return "/"
}

// lastComponent returns the last component of the valid path p, not "/".
func lastComponent(p string) string { return p[strings.LastIndexByte(p, '/')+1:] }

// undoEvent reverts, on the tree root, the event at path that u records.
func undoEvent(root *node, path string, u *undo) *node {
	comps := split(path)
	nodes := chain(root, comps)
	if len(comps) == 0 || len(nodes) < len(comps) {
		panic("fs: history cannot undo an event at " + path)
	}
	name := comps[len(comps)-1]
	parent := *nodes[len(comps)-1]
	switch u.what {
	case undoRemove:
		parent.kids, _ = parent.kids.del(name)
	case undoFile:
		parent.kids, _ = parent.kids.put(&node{name: name, body: u.body, rev: u.rev, time: u.time, lease: u.lease})
	default:
		parent.kids, _ = parent.kids.put(&node{name: name, dir: true, rev: u.rev, time: u.time})
	}
	parent.rev, parent.time = u.prev, u.ptime
	x := &parent
	for i := len(comps) - 2; i >= 0; i-- {
		d := *nodes[i]
		d.kids, _ = d.kids.put(x)
		x = &d
	}
	return x
}

// replayRecords returns the tree at the last record's revision, given root,
// the tree at revision recs[0].rev-1, by replaying the records' events as
// a mirror does. The records are consecutive.
func replayRecords(root *node, recs []record) *node {
	for i := range recs {
		x := &txn{root: root, rev: recs[i].rev, system: true, noUndo: true}
		for j := range recs[i].events {
			if err := x.replay(&recs[i].events[j]); err != nil {
				panic("fs: history cannot replay its own events: " + err.Error())
			}
		}
		root = x.root
	}
	return root
}

// A ring holds the window's records, oldest first, in a circular buffer
// whose size is a power of two, so that moving the window copies nothing.
type ring struct {
	buf  []record
	head int // the index in buf of the oldest record
	n    int // the number of records
}

// at returns the i-th record, oldest first.
func (r *ring) at(i int) *record { return &r.buf[(r.head+i)&(len(r.buf)-1)] }

// push adds rec as the newest record.
func (r *ring) push(rec record) {
	if r.n == len(r.buf) {
		buf := make([]record, max(16, 2*len(r.buf)))
		for i := 0; i < r.n; i++ {
			buf[i] = *r.at(i)
		}
		r.buf, r.head = buf, 0
	}
	*r.at(r.n) = rec
	r.n++
}

// pop drops the oldest record and returns it.
func (r *ring) pop() record {
	p := r.at(0)
	rec := *p
	*p = record{} // let it go
	r.head = (r.head + 1) & (len(r.buf) - 1)
	r.n--
	return rec
}

// reset drops every record.
func (r *ring) reset() {
	clear(r.buf)
	r.head, r.n = 0, 0
}

// copyRange returns a copy of the records i to j-1, oldest first.
func (r *ring) copyRange(i, j int) []record {
	out := make([]record, j-i)
	for k := range out {
		out[k] = *r.at(i + k)
	}
	return out
}
