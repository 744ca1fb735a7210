package fs

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

// undoRecords returns the tree at revision recs[0].rev-1, given root, the
// tree at the last record's revision. The records are consecutive.
func undoRecords(root *node, recs []record) *node {
	for i := len(recs) - 1; i >= 0; i-- {
		r := &recs[i]
		for j := len(r.undo) - 1; j >= 0; j-- {
			root = undoEvent(root, r.events[j].Path, &r.undo[j])
		}
	}
	return root
}

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
