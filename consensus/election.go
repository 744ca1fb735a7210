package consensus

// Leader election is Phase 1 of Multi-Paxos, run once for every open slot,
// guarded by a pre-vote so that a node that merely lost touch with a live
// leader cannot raise the ballot the others promised.

// election is a candidate's state: first the pre-vote poll, then Phase 1.
type election struct {
	// pre is true while polling: no ballot has been raised yet.
	pre bool
	// ballot is the ballot campaigned with (while polling: the one this node
	// would use, echoed by the answers so stale ones are told apart).
	ballot Ballot
	// granted holds the voters that granted the poll, or (in Phase 1) that
	// promised ballot durably. This node's own promise counts only once the
	// Ready carrying it is advanced.
	granted map[uint64]bool
	// rec is what the promises reported for slots above the chosen prefix.
	rec recovery
}

// recovery merges Phase 1 reports: for each slot, the entry with the highest
// ballot. Merging reports from more acceptors than a quorum is safe: any
// value accepted at a ballot at or above the one a value was chosen at is
// that value.
type recovery struct {
	entries map[uint64]Entry
	// end is the highest slot reported; a new leader re-proposes every slot
	// up to it (a no-op where nothing was reported).
	end uint64
}

func (r *recovery) merge(es []Entry, above uint64) {
	for _, e := range es {
		if e.Slot <= above {
			continue
		}
		if r.entries == nil {
			r.entries = make(map[uint64]Entry)
		}
		if cur, ok := r.entries[e.Slot]; ok && !cur.Ballot.Less(e.Ballot) {
			continue
		}
		r.entries[e.Slot] = e
		r.end = max(r.end, e.Slot)
	}
}

// quorumOf reports whether the voters of m for which has is true form a
// majority of m. A membership without voters has no quorum.
func quorumOf(m Membership, has func(uint64) bool) bool {
	if len(m.Voters) == 0 {
		return false
	}
	c := 0
	for _, v := range m.Voters {
		if has(v) {
			c++
		}
	}
	return c >= m.Quorum()
}

// electionQuorum reports whether has holds for a majority of each membership
// that governs a slot a new leader could propose first: the one of the next
// open slot and the latest one (at most two differ, Alpha apart).
func (n *Node) electionQuorum(has func(uint64) bool) bool {
	return quorumOf(n.conf.For(n.commit+1), has) && quorumOf(n.conf.Members, has)
}

// electorate calls f for every other member that must hear a campaign:
// voters and learners of both governing memberships, each once.
func (n *Node) electorate(f func(id uint64)) {
	next, latest := n.conf.For(n.commit+1), n.conf.Members
	visit := func(ids []uint64, skip func(uint64) bool) {
		for _, id := range ids {
			if id != n.id && (skip == nil || !skip(id)) {
				f(id)
			}
		}
	}
	visit(latest.Voters, nil)
	visit(latest.Learners, nil)
	visit(next.Voters, latest.IsMember)
	visit(next.Learners, latest.IsMember)
}

func (n *Node) nextRound() uint64 { return max(n.promised.Round, n.seenRound) + 1 }

// tickElection runs a non-leader's election timer. A voter that heard no
// leader for its timeout polls; a learner (which never campaigns) asks a
// voter, in turn, for what it missed, so one removed while cut off learns
// of it even though no leader talks to it any more.
func (n *Node) tickElection() {
	if n.electionElapsed < n.electionTimeout {
		return
	}
	if n.conf.Members.IsVoter(n.id) {
		n.startPreVote()
		return
	}
	if vs := n.conf.Members.Voters; len(vs) > 0 {
		n.requestCatchup(vs[(n.now/uint64(n.cfg.RetryTicks))%uint64(len(vs))])
	}
}

// startPreVote polls the voters: would they campaign too? Nothing durable
// changes, so a node cut off from a working leader can poll forever without
// disturbing it: voters that hear the leader refuse.
func (n *Node) startPreVote() {
	n.lead = nil
	n.role = RoleCandidate
	n.leader = 0
	n.elect = &election{pre: true, ballot: Ballot{Round: n.nextRound(), Node: n.id}, granted: map[uint64]bool{n.id: true}}
	n.resetElectionTimer()
	if n.electionQuorum(n.granted) {
		n.campaign(false)
		return
	}
	n.electorate(func(id uint64) {
		if n.conf.For(n.commit+1).IsVoter(id) || n.conf.Members.IsVoter(id) {
			n.send(Message{Type: MsgPreVote, To: id, Ballot: n.elect.ballot, Commit: n.commit})
		}
	})
}

func (n *Node) granted(id uint64) bool { return n.elect != nil && n.elect.granted[id] }

// handlePreVote grants a poll only if this node hears no leader, the poller is
// a voter it knows, and the poller's chosen prefix is at least its own (so the
// winner rarely needs to catch up before it can lead). A refusal carries this
// node's chosen prefix.
func (n *Node) handlePreVote(m Message) {
	grant := !n.hearsLeader() && n.conf.Members.IsVoter(m.From) && m.Commit >= n.commit && !m.Ballot.Less(n.promised)
	reply := Message{Type: MsgPreVoteResp, To: m.From, Ballot: m.Ballot, Reject: !grant}
	if !grant {
		reply.Commit = n.commit
	}
	n.send(reply)
}

// handlePreVoteResp counts a grant toward the poll; on a majority of each
// governing membership the node campaigns.
//
// A refusal from a node ahead of this one makes this node catch up from it:
// a poller behind the others cannot win until it does, and a node removed
// while cut off (so no leader talks to it any more) learns its removal so
// and falls silent.
func (n *Node) handlePreVoteResp(m Message) {
	if m.Reject && m.Commit > n.commit {
		n.requestCatchup(m.From)
	}
	if n.role != RoleCandidate || !n.elect.pre || m.Ballot != n.elect.ballot || m.Reject {
		return
	}
	n.elect.granted[m.From] = true
	if n.electionQuorum(n.granted) {
		n.campaign(false)
	}
}

// campaign starts Phase 1 with a ballot above every one seen. force skips the
// others' stickiness (a leadership transfer).
func (n *Node) campaign(force bool) {
	b := Ballot{Round: n.nextRound(), Node: n.id}
	n.lead = nil
	n.role = RoleCandidate
	n.leader = 0
	n.promised = b
	n.seenRound = b.Round
	n.markHardState(true)
	n.elect = &election{ballot: b, granted: map[uint64]bool{}}
	n.elect.rec.merge(n.acceptedAbove(n.commit), n.commit)
	n.resetElectionTimer()
	n.logger.Debug("consensus: campaign", "id", n.id, "ballot", b.String())
	n.electorate(func(id uint64) {
		n.send(Message{Type: MsgPrepare, To: id, Ballot: b, Commit: n.commit, Force: force})
	})
}

// handlePromise counts a Phase 1b answer: toward winning while a candidate,
// or as a late promise (a new member, a slow acceptor) once leading.
func (n *Node) handlePromise(m Message) {
	own := n.ownBallot()
	if m.Reject {
		switch {
		case (n.role == RoleCandidate || n.role == RoleLeader) && own.Less(m.Ballot):
			n.becomeFollower(0)
		case n.role == RoleLeader && m.Slot > n.commit:
			// A member compacted past this leader's chosen prefix: it can
			// never promise, so a more up-to-date node must lead.
			n.logger.Info("consensus: stepping down, behind a member's snapshot", "id", n.id, "member", m.From, "snapshot", m.Slot, "commit", n.commit)
			n.becomeFollower(0)
		}
		return
	}
	if m.Ballot != own {
		return
	}
	switch {
	case n.role == RoleCandidate && !n.elect.pre:
		n.elect.granted[m.From] = true
		n.elect.rec.merge(m.Entries, n.commit)
		n.maybeWin()
	case n.role == RoleLeader:
		n.lead.latePromise(n, m)
	}
}

// ownBallot is the ballot this node campaigns or leads with (zero otherwise).
func (n *Node) ownBallot() Ballot {
	switch {
	case n.lead != nil:
		return n.lead.ballot
	case n.elect != nil && !n.elect.pre:
		return n.elect.ballot
	}
	return Ballot{}
}

func (n *Node) maybeWin() {
	if n.role == RoleCandidate && !n.elect.pre && n.electionQuorum(n.granted) {
		n.becomeLeader()
	}
}

// handleTimeoutNow starts a forced campaign at the leader's request.
func (n *Node) handleTimeoutNow(m Message) {
	if m.Ballot.Less(n.promised) || !n.conf.Members.IsVoter(n.id) {
		return
	}
	n.campaign(true)
}
