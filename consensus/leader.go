package consensus

import (
	"math/bits"
	"slices"
)

// leader is the state of a node that won Phase 1 at ballot. It exists exactly
// while role == RoleLeader.
type leader struct {
	ballot Ballot
	// next is the next slot to assign. Slots (commit, next) are in flight at
	// ballot; next-1 ≤ commit+Alpha, and a slot holding a new batch of
	// values is at most commit+MaxInflightSlots.
	next uint64
	// sentFrom ≤ next: slots [sentFrom, next) are assigned and not yet sent.
	sentFrom uint64
	// sentCommit is the chosen prefix followers were last told.
	sentCommit uint64
	// win[s%Alpha] holds the acknowledgements of in-flight slot s.
	win []slotAcks
	// rec holds what Phase 1 (and late promises) reported for slots ≥ next;
	// every slot up to rec.end is re-proposed before any new value.
	rec recovery
	// queue holds values waiting for a slot, oldest first.
	queue []Value
	// queueBytes is the sum of len(Data) over queue.
	queueBytes int
	// known holds every proposal queued (false) or in an in-flight slot
	// (true) at this leader, so a retry that arrives meanwhile is dropped
	// rather than chosen twice. An id leaves it when its slot is chosen: a
	// retry after that (from an origin that learned the slot in a snapshot)
	// is proposed again and the caller de-duplicates.
	known map[ProposalID]bool
	// stale counts queued values that recovery put in a slot meanwhile; the
	// queue is filtered before the next batch.
	stale int
	// confSlot is the slot of an in-flight config entry (0: none); no other
	// change is proposed until it is chosen and has taken effect.
	confSlot uint64

	// peers holds one entry per member of every membership that governs an
	// in-flight slot, this node included; order is the same, sorted by id.
	peers map[uint64]*peer
	order []*peer
	self  *peer
	free  uint64 // unassigned peer bits
	// promisedMask has the bit of every peer whose promise of ballot is
	// durable (this node's own: once the Ready carrying it was advanced).
	promisedMask uint64
	// prevMask and curMask are the voter bits of conf.Prev and conf.Members;
	// prevQ and curQ their quorum sizes.
	prevMask, curMask uint64
	prevQ, curQ       int

	heartbeatElapsed, quorumElapsed int
	reads                           readIndex
}

// slotAcks records who accepted an in-flight slot, and when it was last sent.
type slotAcks struct {
	acks uint64
	sent uint64
}

// peer is the leader's view of one member.
type peer struct {
	id  uint64
	bit uint64
	// match is the peer's reported chosen prefix (its catch-up progress).
	match uint64
	// active: heard from in the current check-quorum period; recent: in the
	// previous one.
	active, recent bool
	readRound      uint64 // highest read-index round it answered
	prepared       bool   // a Prepare of ballot was sent to it
	prepareSent    uint64 // tick of the last one
}

// becomeLeader turns a candidate that holds promises from a quorum of every
// governing membership into the leader.
func (n *Node) becomeLeader() {
	e := n.elect
	l := &leader{
		ballot:     e.ballot,
		next:       n.commit + 1,
		sentFrom:   n.commit + 1,
		sentCommit: n.commit,
		win:        make([]slotAcks, Alpha),
		rec:        e.rec,
		peers:      map[uint64]*peer{},
		known:      map[ProposalID]bool{},
		free:       ^uint64(0),
	}
	n.elect = nil
	n.lead = l
	n.role = RoleLeader
	n.leader = n.id
	n.rebuildPeers()
	for _, p := range l.order {
		p.prepared, p.prepareSent = true, n.now // the campaign's Prepare is still out
		if e.granted[p.id] {
			l.promisedMask |= p.bit
			p.active = true
		}
	}
	n.logger.Info("consensus: became leader", "id", n.id, "ballot", l.ballot.String(), "commit", n.commit, "recover_to", l.rec.end)
	n.out.forward = nil
	n.props.requeueOwn(n)
	n.broadcastHeartbeat()
	n.prepareMissing()
}

// rebuildPeers makes the peer table match the memberships that govern slots
// from commit+1 on: both while a change has not taken effect, else the
// latest only.
func (n *Node) rebuildPeers() {
	l := n.lead
	want := []uint64{n.id}
	for _, m := range []Membership{n.conf.For(n.commit + 1), n.conf.Members} {
		want = append(append(want, m.Voters...), m.Learners...)
	}
	slices.Sort(want)
	want = slices.Compact(want)
	for _, p := range l.order {
		if _, ok := slices.BinarySearch(want, p.id); !ok {
			n.dropPeer(p)
		}
	}
	l.order = l.order[:0]
	for _, id := range want {
		p := l.peers[id]
		if p == nil {
			b := l.free & -l.free
			if b == 0 {
				panic("consensus: more than 64 members")
			}
			l.free &^= b
			p = &peer{id: id, bit: b}
			l.peers[id] = p
		}
		l.order = append(l.order, p)
	}
	l.self = l.peers[n.id]
	l.prevMask, l.prevQ = l.mask(n.conf.Prev)
	l.curMask, l.curQ = l.mask(n.conf.Members)
}

func (n *Node) dropPeer(p *peer) {
	l := n.lead
	delete(l.peers, p.id)
	l.free |= p.bit
	l.promisedMask &^= p.bit
	for i := range l.win {
		l.win[i].acks &^= p.bit
	}
}

func (l *leader) mask(m Membership) (uint64, int) {
	var mask uint64
	for _, v := range m.Voters {
		if p := l.peers[v]; p != nil {
			mask |= p.bit
		}
	}
	return mask, m.Quorum()
}

// maskFor returns the voter bits and quorum size that decide slot s.
func (n *Node) maskFor(s uint64) (uint64, int) {
	if s >= n.conf.Since+Alpha {
		return n.lead.curMask, n.lead.curQ
	}
	return n.lead.prevMask, n.lead.prevQ
}

func hasQuorum(set, mask uint64, q int) bool { return bits.OnesCount64(set&mask) >= q }

// latePromise merges a promise that arrives after winning (a slow acceptor, a
// new member): it counts for slots not yet proposed, which is every slot
// whose membership could have lacked it.
func (l *leader) latePromise(n *Node, m Message) {
	p := l.peers[m.From]
	if p == nil {
		return
	}
	l.promisedMask |= p.bit
	l.rec.merge(m.Entries, max(n.commit, l.next-1))
}

// prepareMissing sends Prepare to members whose promise the leader lacks: a
// slot can only be proposed once a majority of its membership promised.
func (n *Node) prepareMissing() {
	l := n.lead
	for _, p := range l.order {
		if p == l.self || l.promisedMask&p.bit != 0 || (p.prepared && n.now-p.prepareSent < uint64(n.cfg.RetryTicks)) {
			continue
		}
		p.prepared, p.prepareSent = true, n.now
		n.send(Message{Type: MsgPrepare, To: p.id, Ballot: l.ballot, Commit: n.commit})
	}
}

// tickLeader sends heartbeats, retransmits, and steps down when a quorum has
// not answered for an election timeout (so a leader cut off from the
// majority stops taking writes it cannot commit).
func (n *Node) tickLeader() {
	l := n.lead
	l.heartbeatElapsed++
	l.quorumElapsed++
	if l.heartbeatElapsed >= n.cfg.HeartbeatTicks {
		l.heartbeatElapsed = 0
		n.broadcastHeartbeat()
		n.retransmit()
		n.prepareMissing()
	}
	if l.quorumElapsed >= n.cfg.ElectionTicks {
		l.quorumElapsed = 0
		if !n.checkQuorum() {
			n.logger.Info("consensus: lost contact with a quorum", "id", n.id)
			n.becomeFollower(0)
			return
		}
	}
	n.maybeHandOff()
}

func (n *Node) checkQuorum() bool {
	l := n.lead
	ok := n.electionQuorum(func(id uint64) bool {
		p := l.peers[id]
		return p != nil && (p == l.self || p.active)
	})
	for _, p := range l.order {
		p.recent, p.active = p.active, false
	}
	return ok
}

func (n *Node) broadcastHeartbeat() {
	l := n.lead
	for _, p := range l.order {
		if p != l.self {
			n.send(Message{Type: MsgHeartbeat, To: p.id, Ballot: l.ballot, Commit: n.commit, Round: l.reads.round})
		}
	}
	l.sentCommit = n.commit
}

func (n *Node) handleHeartbeatResp(m Message) {
	l := n.lead
	if l == nil {
		return
	}
	if m.Reject {
		if l.ballot.Less(m.Ballot) {
			n.becomeFollower(0)
		}
		return
	}
	p := l.peers[m.From]
	if m.Ballot != l.ballot || p == nil {
		return
	}
	p.active = true
	p.match = max(p.match, m.Commit)
	if m.Round > p.readRound {
		p.readRound = m.Round
		n.releaseReads()
	}
}

// maybeHandOff: a leader removed from the voters keeps leading until the
// change has taken effect (it fills the window with no-ops), then asks the
// most up-to-date voter to campaign at once and steps down.
func (n *Node) maybeHandOff() {
	if n.lead == nil || n.conf.Members.IsVoter(n.id) || !n.conf.settled(n.commit+1) {
		return
	}
	var best *peer
	for _, p := range n.lead.order {
		if p != n.lead.self && n.conf.Members.IsVoter(p.id) && (best == nil || p.match > best.match) {
			best = p
		}
	}
	if best != nil {
		n.send(Message{Type: MsgTimeoutNow, To: best.id, Ballot: n.lead.ballot})
	}
	n.becomeFollower(0)
}

// TransferLeadership asks voter to campaign at once (skipping the pre-vote and
// the others' stickiness). This node keeps leading until the new ballot
// reaches it. Only the leader may call it.
func (n *Node) TransferLeadership(voter uint64) error {
	if n.lead == nil {
		return ErrNotLeader
	}
	if voter == n.id || !n.conf.Members.IsVoter(voter) {
		return ErrBadChange
	}
	n.send(Message{Type: MsgTimeoutNow, To: voter, Ballot: n.lead.ballot})
	return nil
}
