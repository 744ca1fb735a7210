package consensus

// Status is a node's state for operators and for the caller's health and lag
// reports.
type Status struct {
	ID         uint64
	Role       Role
	Leader     uint64 // 0 if unknown
	Ballot     Ballot // the highest ballot promised (the leader's own ballot on the leader)
	Commit     uint64 // chosen prefix known here
	Applied    uint64 // last slot the caller applied
	Snapshot   uint64 // slot of the latest compaction point
	Membership Membership
	// Peers is filled on the leader only: every other member it tracks.
	Peers []PeerStatus
}

// PeerStatus is the leader's view of one member.
type PeerStatus struct {
	ID           uint64
	Voter        bool
	Match        uint64 // the member's reported chosen prefix (compare with Commit for lag)
	Active       bool   // heard within the last one or two election timeouts
	Snapshotting bool   // a snapshot transfer to it is believed under way
}

// Status returns a copy of the node's state.
func (n *Node) Status() Status {
	s := Status{
		ID:         n.id,
		Role:       n.role,
		Leader:     n.leader,
		Ballot:     n.promised,
		Commit:     n.commit,
		Applied:    n.applied,
		Snapshot:   n.snap.Slot,
		Membership: n.conf.Members.clone(),
	}
	if n.role == RoleFollower && !n.conf.Members.IsVoter(n.id) {
		s.Role = RoleLearner
	}
	if l := n.lead; l != nil {
		for _, p := range l.order {
			if p == l.self {
				continue
			}
			s.Peers = append(s.Peers, PeerStatus{
				ID:           p.id,
				Voter:        n.conf.Members.IsVoter(p.id),
				Match:        p.match,
				Active:       p.active || p.recent,
				Snapshotting: n.snapSent[p.id] > n.now,
			})
		}
	}
	return s
}
