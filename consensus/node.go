package consensus

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
)

// Role is what a node is doing in the protocol.
type Role uint8

// Roles as reported by Status.
const (
	RoleFollower  Role = 1 // a voter following (or waiting for) a leader
	RoleCandidate Role = 2 // polling (pre-vote) or running Phase 1
	RoleLeader    Role = 3 // the distinguished proposer
	RoleLearner   Role = 4 // not a voter of the latest membership: never campaigns
)

func (r Role) String() string {
	switch r {
	case RoleFollower:
		return "follower"
	case RoleCandidate:
		return "candidate"
	case RoleLeader:
		return "leader"
	case RoleLearner:
		return "learner"
	}
	return fmt.Sprintf("role%d", uint8(r))
}

// maxAcceptAhead bounds how far above its chosen prefix an acceptor stores
// entries. A leader never proposes beyond its own prefix plus Alpha, so an
// acceptor this far behind is catching up, not voting.
const maxAcceptAhead = 64 * Alpha

// Node is one replica's Multi-Paxos state machine: acceptor, learner, and
// (when elected) leader. It does no I/O, starts no goroutines and reads no
// clock. It is not safe for concurrent use: the caller serialises every call.
type Node struct {
	cfg    Config
	id     uint64
	rng    *rand.Rand
	logger *slog.Logger

	// promised is the highest ballot this node promised (or accepted at). It
	// never decreases and is durable before any MsgPromise, MsgAccepted or
	// MsgPrepare that depends on it is sent.
	promised Ballot
	// slots holds accepted entries above snap.Slot. Every entry at a slot ≤
	// commit is chosen, carries a ballot at which it was chosen, and is never
	// replaced.
	slots slotLog
	// commit is the chosen prefix: every slot ≤ commit is chosen and held in
	// slots (or compacted into the snapshot). It never decreases.
	commit uint64
	// applied ≤ handed ≤ commit. applied is the last slot the caller applied
	// (Advance); handed the last slot put into a Ready.
	applied, handed uint64
	// snap is the latest compaction point: snap.Slot ≤ applied, and
	// slots.first == snap.Slot+1 unless entries were never held.
	snap SnapshotMeta
	// conf is the membership as of commit. It decides the quorum of every
	// slot up to commit+Alpha, so of every slot a leader may propose.
	conf ConfigState
	// confLog lists every ConfigState reached at a slot above snap.Slot, in
	// slot order, so the state as of any slot ≥ snap.Slot is known.
	confLog []ConfigState
	// rejected holds slots ≤ commit (above snap.Slot) whose config entry lost
	// its compare-and-set and is delivered as a no-op.
	rejected map[uint64]bool
	// seenRound is the highest ballot round seen anywhere; a campaign goes
	// above it and above promised.
	seenRound uint64

	role   Role // RoleFollower, RoleCandidate or RoleLeader (learners are followers)
	leader uint64
	// electionElapsed counts ticks since this node last heard its leader (or
	// granted a promise, or campaigned). It drives timeouts and stickiness.
	electionElapsed int
	electionTimeout int // randomised in [ElectionTicks, ElectionTicks+ElectionJitterTicks)
	now             uint64

	elect   *election // non-nil exactly when role == RoleCandidate
	lead    *leader   // non-nil exactly when role == RoleLeader
	props   proposals
	catchup catchupState
	// snapSent maps a node this one asked the caller to send a snapshot to,
	// to the tick until which that transfer is assumed under way.
	snapSent map[uint64]uint64
	// snapSlot maps the same nodes to the slot of the snapshot sent.
	snapSlot map[uint64]uint64

	out     output // what the next Ready carries
	inReady bool   // a Ready was handed out and not yet advanced
}

// New returns a node resuming from st: what the caller persisted, or
// Founding(id) for the first replica of a new cluster, or the zero State for
// a replica joining an existing cluster (a learner that knows no membership
// and never campaigns until the log or a snapshot makes it a voter).
//
// Restarting from persisted state is safe even if the last unsynced write
// was lost, because nothing that depended on it was sent (Ready contract).
func New(cfg Config, st State) (*Node, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	n := &Node{
		cfg:      cfg,
		id:       cfg.ID,
		rng:      rand.New(rand.NewPCG(cfg.Seed, cfg.ID)),
		logger:   cfg.Logger,
		promised: st.HardState.Promised,
		snap:     cloneSnapshot(st.Snapshot),
		role:     RoleFollower,
	}
	if n.logger == nil {
		n.logger = slog.New(slog.DiscardHandler)
	}
	n.seenRound = n.promised.Round
	n.conf = n.snap.Config
	n.slots = newSlotLog(n.snap.Slot)
	for _, e := range st.Entries {
		if e.Slot > n.snap.Slot && !e.Ballot.IsZero() {
			n.slots.put(e)
		}
	}
	n.commit = n.snap.Slot
	for n.commit < st.HardState.Commit && n.slots.get(n.commit+1) != nil {
		n.advanceCommit()
	}
	n.applied = min(max(st.Applied, n.snap.Slot), n.commit)
	n.handed = n.applied
	n.props.init(st.HardState.SeqCeiling)
	n.raiseSeqCeiling()
	n.resetElectionTimer()
	if len(n.conf.Members.Voters) == 1 && n.conf.Members.Voters[0] == n.id {
		n.electionElapsed = n.electionTimeout // a lone voter need not wait
	}
	return n, nil
}

func cloneSnapshot(s SnapshotMeta) SnapshotMeta {
	s.Config = cloneConfig(s.Config)
	return s
}

func cloneConfig(c ConfigState) ConfigState {
	return ConfigState{Members: c.Members.clone(), Since: c.Since, Prev: c.Prev.clone()}
}

// Step hands the node one message from a peer. A message that breaks the
// protocol's shape is ignored and reported as ErrBadMessage (count it; never
// fatal).
func (n *Node) Step(m Message) error {
	if err := n.check(m); err != nil {
		return err
	}
	if m.Type != MsgPreVote && m.Type != MsgPreVoteResp {
		// A poll raises nothing: only real ballots move the next round.
		n.seenRound = max(n.seenRound, m.Ballot.Round)
	}
	switch m.Type {
	case MsgProp:
		n.handleProp(m)
	case MsgPreVote:
		n.handlePreVote(m)
	case MsgPreVoteResp:
		n.handlePreVoteResp(m)
	case MsgPrepare:
		n.handlePrepare(m)
	case MsgPromise:
		n.handlePromise(m)
	case MsgAccept:
		n.handleAccept(m)
	case MsgAccepted:
		n.handleAccepted(m)
	case MsgCommit, MsgHeartbeat:
		n.handleHeartbeat(m)
	case MsgHeartbeatResp:
		n.handleHeartbeatResp(m)
	case MsgCatchupReq:
		n.serveCatchup(m)
	case MsgCatchup:
		n.handleCatchup(m)
	case MsgReadIndex:
		n.handleReadIndex(m)
	case MsgReadIndexResp:
		n.out.readStates = append(n.out.readStates, ReadState{Context: m.Context, Slot: m.Slot})
	case MsgTimeoutNow:
		n.handleTimeoutNow(m)
	}
	return nil
}

// Tick advances the node's logical clock by one tick.
func (n *Node) Tick() {
	n.now++
	if n.electionElapsed < 1<<30 {
		n.electionElapsed++
	}
	if n.role == RoleLeader {
		n.tickLeader()
	} else {
		n.tickElection()
	}
	n.tickProposals()
}

func (n *Node) send(m Message) {
	m.From = n.id
	n.out.msgs = append(n.out.msgs, m)
}

// markHardState notes that HardState changed; sync says whether the change
// must be fsynced before dependent messages leave.
func (n *Node) markHardState(sync bool) {
	n.out.hsDirty = true
	if sync {
		n.out.mustSync = true
	}
}

// persist queues e to be written by the caller with the next Ready.
func (n *Node) persist(e Entry) {
	n.out.entries = append(n.out.entries, e)
}

func (n *Node) hardState() HardState {
	return HardState{Promised: n.promised, Commit: n.commit, SeqCeiling: n.props.ceiling}
}

func (n *Node) resetElectionTimer() {
	n.electionElapsed = 0
	n.electionTimeout = n.cfg.ElectionTicks + n.rng.IntN(n.cfg.ElectionJitterTicks)
}

// hearsLeader reports whether this node has heard a live leader within the
// shortest election timeout (or is the leader). Such a node refuses
// pre-votes and Prepares from others: leader stickiness.
func (n *Node) hearsLeader() bool {
	return n.role == RoleLeader || (n.leader != 0 && n.electionElapsed < n.cfg.ElectionTicks)
}

// becomeFollower drops any candidacy or leadership and follows leader (0:
// none known).
func (n *Node) becomeFollower(leader uint64) {
	if n.lead != nil {
		n.logger.Info("consensus: stepped down", "id", n.id, "ballot", n.lead.ballot.String())
		n.lead = nil
	}
	n.elect = nil
	n.role = RoleFollower
	changed := n.leader != leader
	n.leader = leader
	n.resetElectionTimer()
	if changed && leader != 0 {
		n.props.resendAll(n)
	}
}

// acceptLeader handles the ballot of a message only a leader sends (Accept,
// Commit, Heartbeat, Catchup, TimeoutNow) once it is known not to be below
// the promise: the promise rises to it and its proposer is followed.
func (n *Node) acceptLeader(b Ballot) {
	if n.promised.Less(b) {
		n.promised = b
		n.markHardState(true)
	}
	if n.role != RoleFollower || n.leader != b.Node {
		n.becomeFollower(b.Node)
	}
	n.electionElapsed = 0
}
