package fs

// Special revisions a write may name (doozer's rule, SPEC §1).
const (
	Clobber int64 = -1 // write unconditionally
	Missing int64 = 0  // write only if the path does not exist
)

// NodeType says whether a node is a file or a directory.
type NodeType uint8

// Node types. The zero value means "no node".
const (
	TypeNone NodeType = 0
	TypeFile NodeType = 1
	TypeDir  NodeType = 2
)

func (t NodeType) String() string {
	switch t {
	case TypeFile:
		return "file"
	case TypeDir:
		return "dir"
	}
	return "none"
}

// OpKind is the kind of one operation inside a transaction.
type OpKind uint8

// Operation kinds. The numbers travel on the wire and in the WAL.
const (
	OpSet   OpKind = 1 // write a file's body (creating missing parents)
	OpDel   OpKind = 2 // delete a file or an empty directory
	OpMkdir OpKind = 3 // create a directory (and missing parents)
	OpCheck OpKind = 4 // assert the rev rule for a path; changes nothing
)

func (k OpKind) String() string {
	switch k {
	case OpSet:
		return "set"
	case OpDel:
		return "del"
	case OpMkdir:
		return "mkdir"
	case OpCheck:
		return "check"
	}
	return "op?"
}

// Op is one operation of a transaction. Rev follows the conditional-write
// rule (Clobber, Missing, or R > 0: the node exists and its rev ≤ R).
type Op struct {
	Kind  OpKind
	Path  string
	Rev   int64
	Body  []byte // OpSet only
	Lease int64  // OpSet only: bind the file to this lease (0: none)
}

// MutationKind is the kind of a state-machine command.
type MutationKind uint8

// Mutation kinds. The numbers travel on the wire and in the WAL.
const (
	MutTxn         MutationKind = 1 // Ops applied all-or-nothing in one revision
	MutLeaseGrant  MutationKind = 2 // create a lease with TTL; the id is assigned by Apply
	MutLeaseRenew  MutationKind = 3 // assert the lease exists (NO_LEASE otherwise)
	MutLeaseRevoke MutationKind = 4 // delete the lease and all its files in one revision
	MutLeaseExpire MutationKind = 5 // as revoke, decided by the leader's timer
	MutNop         MutationKind = 6 // changes nothing; a barrier through consensus
)

// Mutation is one command for the state machine. Apply never reads a clock:
// Time is stamped by the leader that proposed it.
type Mutation struct {
	Kind   MutationKind
	Time   int64 // commit time, Unix nanoseconds, stamped by the proposing leader
	Ops    []Op  // MutTxn
	Lease  int64 // lease verbs: the lease id
	TTL    int64 // MutLeaseGrant: time to live in nanoseconds
	System bool  // proposed by a replica itself: may write under /ctl
}

// EventKind is the kind of a change.
type EventKind uint8

// Event kinds. The numbers travel on the wire.
const (
	EventSet   EventKind = 1
	EventDel   EventKind = 2
	EventMkdir EventKind = 3
)

func (k EventKind) String() string {
	switch k {
	case EventSet:
		return "set"
	case EventDel:
		return "del"
	case EventMkdir:
		return "mkdir"
	}
	return "event?"
}

// Event is one change to one path. A transaction yields one event per
// changed path, all with the same Rev, in the order of its operations
// (implicitly created parents come right before the op that created them).
type Event struct {
	Rev   int64
	Path  string
	Kind  EventKind
	Body  []byte // EventSet: the new body
	Time  int64  // commit time of Rev, Unix nanoseconds
	Lease int64  // EventSet: the lease the file is bound to (0: none)
}

// Stat describes a node.
type Stat struct {
	Type     NodeType
	Size     int64 // files: body length; directories: number of children
	Rev      int64 // files: rev of the last change; dirs: see SPEC §1
	Time     int64 // commit time of Rev, Unix nanoseconds
	Children int   // directories: number of direct children
	Lease    int64 // files: bound lease (0: none)
}

// DirEntry is one entry of a directory listing.
type DirEntry struct {
	Name string
	Type NodeType
}

// Lease is a lease as held in the state.
type Lease struct {
	ID  int64
	TTL int64 // nanoseconds
}

// Result is what Apply reports for a mutation that succeeded.
type Result struct {
	Rev     int64   // the revision after the mutation (new if Changed)
	Changed bool    // whether the mutation made a new revision
	Events  []Event // the changes made, all at Rev
	Lease   int64   // MutLeaseGrant: the new lease id
}
