package consensus

import (
	"fmt"
	"slices"
)

// Membership changes use Lamport's α-window: the membership is replicated
// state, and a change chosen at slot c decides the quorums of slots c+Alpha
// on. Because a leader proposes slot s only when every slot ≤ s-Alpha is
// chosen, every proposer that touches slot s agrees on its membership, and
// each slot is plain single-decree Paxos over a fixed acceptor set. The full
// argument is in docs/consensus.md.

// maxMembers bounds voters plus learners, so that a leader's peer table
// (both memberships during a change) fits 64 bits.
const maxMembers = 63

// apply returns the membership after cc, or ErrBadChange.
func (m Membership) apply(cc ConfChange) (Membership, error) {
	out := m.clone()
	switch {
	case cc.Node == 0:
		return m, ErrBadChange
	case cc.Type == ConfAddLearner && !m.IsMember(cc.Node):
		out.Learners = insertID(out.Learners, cc.Node)
	case cc.Type == ConfPromote && m.IsLearner(cc.Node):
		out.Learners = removeID(out.Learners, cc.Node)
		out.Voters = insertID(out.Voters, cc.Node)
	case cc.Type == ConfRemove && m.IsMember(cc.Node):
		out.Learners = removeID(out.Learners, cc.Node)
		out.Voters = removeID(out.Voters, cc.Node)
	default:
		return m, ErrBadChange
	}
	if len(out.Voters) == 0 || len(out.Voters)+len(out.Learners) > maxMembers {
		return m, ErrBadChange
	}
	return out, nil
}

func insertID(ids []uint64, id uint64) []uint64 {
	i, _ := slices.BinarySearch(ids, id)
	return slices.Insert(ids, i, id)
}

func removeID(ids []uint64, id uint64) []uint64 {
	if i, ok := slices.BinarySearch(ids, id); ok {
		return slices.Delete(ids, i, i+1)
	}
	return ids
}

// validMembership checks a membership that arrived from the network.
func validMembership(m Membership) error {
	if len(m.Voters) == 0 || len(m.Voters)+len(m.Learners) > maxMembers {
		return fmt.Errorf("membership size")
	}
	for _, ids := range [][]uint64{m.Voters, m.Learners} {
		for i, id := range ids {
			if id == 0 || (i > 0 && ids[i-1] >= id) {
				return fmt.Errorf("membership ids not sorted, unique and non-zero")
			}
		}
	}
	for _, id := range m.Learners {
		if m.IsVoter(id) {
			return fmt.Errorf("learner %d is also a voter", id)
		}
	}
	return nil
}

func validConfig(c ConfigState) error {
	if err := validMembership(c.Members); err != nil {
		return err
	}
	return validMembership(c.Prev)
}

// ProposeConfChange proposes one membership change. Only the leader takes
// it, and only when no other change is in flight or waiting to take effect
// (ErrChangeInProgress). A change that would leave the recently heard voters
// short of a quorum is refused (ErrUnsafeChange), and so is promoting a
// learner more than Alpha slots behind the leader (ErrLagging). The change is chosen like
// any slot; Ready.Committed reports it with the resulting membership, or as
// a no-op if another change won a race (possible across leader changes).
func (n *Node) ProposeConfChange(cc ConfChange) error {
	l := n.lead
	if l == nil {
		return ErrNotLeader
	}
	if l.confSlot != 0 || !n.conf.settled(n.commit+1) || l.next <= l.rec.end {
		return ErrChangeInProgress
	}
	members, err := n.conf.Members.apply(cc)
	if err != nil {
		return err
	}
	if cc.Type != ConfAddLearner && !quorumOf(members, n.recentlyHeard) {
		return ErrUnsafeChange
	}
	if p := l.peers[cc.Node]; cc.Type == ConfPromote && (p == nil || p.match+Alpha < n.commit) {
		return ErrLagging
	}
	if !n.canAssign(l.next) {
		return ErrBusy
	}
	n.assign(Entry{Kind: EntryConfig, Change: cc, Base: n.conf.Since, Members: members})
	return nil
}

// recentlyHeard reports whether the leader heard id in this or the previous
// check-quorum period (itself always).
func (n *Node) recentlyHeard(id uint64) bool {
	p := n.lead.peers[id]
	return id == n.id || (p != nil && (p.active || p.recent))
}

// failIfRemoved gives up this node's pending proposals once it knows a
// membership without it: no leader will take them from it any more.
func (n *Node) failIfRemoved() {
	if n.props.live > 0 && n.knowsMembership() && !n.conf.Members.IsMember(n.id) {
		n.props.failAll(n)
	}
}

// applyConfig takes a chosen config entry into the membership state, if its
// compare-and-set holds: it was computed against the latest change.
func (n *Node) applyConfig(e Entry) {
	if e.Base != n.conf.Since {
		if n.rejected == nil {
			n.rejected = make(map[uint64]bool)
		}
		n.rejected[e.Slot] = true
		n.logger.Info("consensus: membership change lost a race; ignored", "id", n.id, "slot", e.Slot)
		return
	}
	n.conf = ConfigState{Members: e.Members.clone(), Since: e.Slot, Prev: n.conf.Members}
	n.confLog = append(n.confLog, n.conf)
	n.logger.Info("consensus: membership changed", "id", n.id, "slot", e.Slot, "change", e.Change.Type.String(), "node", e.Change.Node, "members", n.conf.Members.String())
	n.failIfRemoved()
	if n.lead != nil {
		n.rebuildPeers()
		n.prepareMissing() // new voters must promise before their slots can be proposed
	}
}
