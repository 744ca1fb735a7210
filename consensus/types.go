package consensus

import (
	"fmt"
	"slices"
)

// Alpha is the reconfiguration window: a membership change chosen at slot c
// governs the quorums of slots c+Alpha and later; slots before that use the
// membership that was in force before it. It also bounds the pipeline: a
// leader proposes slot s only once every slot up to s-Alpha is chosen, so the
// membership of every slot it touches is already known. Every replica must use
// the same value; it is a protocol constant, not a tunable.
const Alpha = 64

// Ballot orders proposers. Ballots are compared by Round, then by Node, so two
// proposers never share one. The zero Ballot is below every real ballot.
type Ballot struct {
	Round uint64 // raised by one above everything seen when a node campaigns
	Node  uint64 // the proposer (the leader, once it wins)
}

// Less reports whether b orders before o.
func (b Ballot) Less(o Ballot) bool {
	if b.Round != o.Round {
		return b.Round < o.Round
	}
	return b.Node < o.Node
}

// IsZero reports whether b is the zero ballot (no ballot at all).
func (b Ballot) IsZero() bool { return b.Round == 0 && b.Node == 0 }

// String formats b as "round.node".
func (b Ballot) String() string { return fmt.Sprintf("%d.%d", b.Round, b.Node) }

// ProposalID names one proposal cluster-wide: the node that took it in
// Propose and that node's sequence number. A node never issues the same
// sequence number twice, across restarts too (see HardState.SeqCeiling), as
// long as node ids are never reused. The same ProposalID can be chosen in
// more than one slot (a retried proposal); the caller applies only its first
// occurrence (see docs/consensus.md, "De-duplication").
type ProposalID struct {
	Node uint64
	Seq  uint64
}

// Value is one proposal's payload with its id. Data is opaque to consensus and
// never copied: the caller must not modify it after Propose.
type Value struct {
	ID   ProposalID
	Data []byte
}

// EntryKind says what a slot holds. The zero kind marks an empty slot and is
// never chosen.
type EntryKind uint8

// Entry kinds.
const (
	EntryNoop   EntryKind = 1 // fills a hole a new leader found; applies nothing
	EntryValues EntryKind = 2 // a batch of client values, applied in order
	EntryConfig EntryKind = 3 // a membership change (Change, Base, Members)
)

func (k EntryKind) String() string {
	switch k {
	case EntryNoop:
		return "noop"
	case EntryValues:
		return "values"
	case EntryConfig:
		return "config"
	}
	return fmt.Sprintf("kind%d", uint8(k))
}

// ConfChangeType is the kind of a membership change.
type ConfChangeType uint8

// Membership change kinds. Only one change is in flight at a time.
const (
	ConfAddLearner ConfChangeType = 1 // add a non-voting member that receives the log
	ConfPromote    ConfChangeType = 2 // make a learner a voter
	ConfRemove     ConfChangeType = 3 // remove a voter or learner
)

func (t ConfChangeType) String() string {
	switch t {
	case ConfAddLearner:
		return "add-learner"
	case ConfPromote:
		return "promote"
	case ConfRemove:
		return "remove"
	}
	return fmt.Sprintf("change%d", uint8(t))
}

// ConfChange is one membership change request.
type ConfChange struct {
	Type ConfChangeType
	Node uint64
}

// Entry is the content of one slot: what acceptors persist, what Accept
// messages carry and what Ready.Committed hands to the caller.
type Entry struct {
	Slot   uint64
	Ballot Ballot // the ballot at which this copy was accepted
	Kind   EntryKind
	Values []Value // EntryValues: the batch, in order

	// For EntryConfig only.
	Change  ConfChange // the change requested
	Base    uint64     // ConfigState.Since it was computed against (a compare-and-set)
	Members Membership // the membership after the change
}

// Membership is a set of voters and learners, each list sorted and disjoint.
// Voters form the quorums; learners receive the log and never vote.
type Membership struct {
	Voters   []uint64
	Learners []uint64
}

// IsVoter reports whether id is a voter.
func (m Membership) IsVoter(id uint64) bool {
	_, ok := slices.BinarySearch(m.Voters, id)
	return ok
}

// IsLearner reports whether id is a learner.
func (m Membership) IsLearner(id uint64) bool {
	_, ok := slices.BinarySearch(m.Learners, id)
	return ok
}

// IsMember reports whether id is a voter or a learner.
func (m Membership) IsMember(id uint64) bool { return m.IsVoter(id) || m.IsLearner(id) }

// Quorum is the number of voters that form a majority. A membership without
// voters has none: its quorum of 1 is never reached by its empty voter set.
func (m Membership) Quorum() int { return len(m.Voters)/2 + 1 }

// Equal reports whether m and o hold the same voters and learners.
func (m Membership) Equal(o Membership) bool {
	return slices.Equal(m.Voters, o.Voters) && slices.Equal(m.Learners, o.Learners)
}

// String formats m as "voters=[1 2 3] learners=[4]".
func (m Membership) String() string {
	return fmt.Sprintf("voters=%v learners=%v", m.Voters, m.Learners)
}

func (m Membership) clone() Membership {
	return Membership{Voters: slices.Clone(m.Voters), Learners: slices.Clone(m.Learners)}
}

// ConfigState is the membership as of some slot: everything a replica needs to
// know the quorum of every later slot.
type ConfigState struct {
	Members Membership // the membership after the latest chosen change
	Since   uint64     // slot of that change (0: the founding membership)
	Prev    Membership // the membership before it; governs slots < Since+Alpha
}

// For returns the membership whose majorities decide slot s. It is exact for
// every slot s ≤ (the slot this state is as of) + Alpha.
func (c *ConfigState) For(s uint64) Membership {
	if s >= c.Since+Alpha {
		return c.Members
	}
	return c.Prev
}

// settled reports whether no change is still waiting to take effect at slot s,
// so a new change may be proposed there.
func (c *ConfigState) settled(s uint64) bool {
	return s >= c.Since+Alpha || c.Prev.Equal(c.Members)
}

// SnapshotMeta describes an application snapshot: the slot it reflects (every
// slot ≤ Slot applied) and the membership as of that slot. The snapshot's
// data belongs to the caller; consensus deals only in this description.
type SnapshotMeta struct {
	Slot   uint64
	Config ConfigState
}

// HardState is the acceptor state a node persists. Promised and SeqCeiling
// must be durable (fsynced) before any message that depends on them is sent;
// Commit may be written lazily.
type HardState struct {
	Promised   Ballot // highest ballot promised; never decreases
	Commit     uint64 // every slot ≤ Commit is chosen (a hint for restart)
	SeqCeiling uint64 // every ProposalID.Seq this node ever issued is below it
}

// State is what a caller hands New on start: everything it persisted.
type State struct {
	HardState HardState
	// Entries are the persisted accepted entries in the order they were
	// written; a later entry for a slot replaces an earlier one. Entries at or
	// below Snapshot.Slot are ignored.
	Entries  []Entry
	Snapshot SnapshotMeta
	// Applied is the slot the caller's state machine reflects
	// (Snapshot.Slot ≤ Applied); Ready.Committed resumes after it.
	Applied uint64
}

// Founding returns the State a replica starts a new cluster with: it is the
// single voter of a membership that holds nothing else. The caller persists
// it as its initial snapshot metadata (of the empty store) before New.
func Founding(id uint64) State {
	m := Membership{Voters: []uint64{id}}
	return State{Snapshot: SnapshotMeta{Config: ConfigState{Members: m, Prev: m.clone()}}}
}
