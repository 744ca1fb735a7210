package consensus

// The acceptor: every node, whatever its role, answers Prepare and Accept by
// the rules of Paxos. Only voters' answers count toward a quorum; learners
// run the same rules so that they hold a correct log when promoted.

// handlePrepare answers Phase 1a. The promise covers every slot above the
// candidate's chosen prefix; the answer carries what this node accepted
// there.
func (n *Node) handlePrepare(m Message) {
	reply := Message{Type: MsgPromise, To: m.From, Ballot: m.Ballot, Commit: n.commit}
	switch {
	case m.Ballot.Less(n.promised):
		reply.Reject, reply.Ballot = true, n.promised
	case !m.Force && m.Ballot != n.promised && n.hearsLeader():
		// Stickiness: a live leader is heard; a candidate that got a
		// majority of pre-votes will find enough others.
		reply.Reject, reply.Ballot = true, n.promised
	case n.snap.Slot > m.Commit:
		// Slots the candidate lacks were compacted here: this node cannot
		// report them, so it does not promise. Slot tells it why.
		reply.Reject, reply.Ballot, reply.Slot = true, n.promised, n.snap.Slot
	default:
		if n.promised.Less(m.Ballot) {
			n.promised = m.Ballot
			n.markHardState(true)
			if n.role != RoleFollower || n.leader != 0 {
				n.becomeFollower(0)
			}
		}
		n.electionElapsed = 0
		reply.Entries = n.acceptedAbove(m.Commit)
	}
	n.send(reply)
}

// acceptedAbove copies every entry held above slot c (chosen ones included:
// each carries a ballot at which it was chosen, so reporting it is safe).
func (n *Node) acceptedAbove(c uint64) []Entry {
	var out []Entry
	for s := max(c+1, n.slots.first); s <= n.slots.last(); s++ {
		if e := n.slots.get(s); e != nil {
			out = append(out, *e)
		}
	}
	return out
}

// handleAccept answers Phase 2a: entries at or above the promise are stored
// (to be persisted before the answer leaves) and acknowledged as a range.
func (n *Node) handleAccept(m Message) {
	first, last := m.Entries[0].Slot, m.Entries[len(m.Entries)-1].Slot
	if m.Ballot.Less(n.promised) {
		n.send(Message{Type: MsgAccepted, To: m.From, Ballot: n.promised, Reject: true, Slot: first, Last: last, Commit: n.commit})
		return
	}
	n.acceptLeader(m.Ballot)
	acked := first - 1
	for _, e := range m.Entries {
		if e.Slot > n.commit+maxAcceptAhead {
			break
		}
		// A slot ≤ commit is chosen and the leader's value equals it, so it
		// is acknowledged without being stored again.
		if e.Slot > n.commit {
			n.slots.put(e)
			n.persist(e)
		}
		acked = e.Slot
	}
	n.learnCommit(m.Ballot, m.Commit, m.From)
	if acked >= first {
		n.send(Message{Type: MsgAccepted, To: m.From, Ballot: m.Ballot, Slot: first, Last: acked, Commit: n.commit})
	}
}

// handleHeartbeat handles MsgHeartbeat and MsgCommit: the leader is alive
// and its chosen prefix is m.Commit. Heartbeats are answered so the leader
// can count a quorum (read index, check-quorum); an answer that is not a
// rejection says "I have promised nothing above your ballot".
func (n *Node) handleHeartbeat(m Message) {
	if m.Ballot.Less(n.promised) {
		if m.Type == MsgHeartbeat {
			n.send(Message{Type: MsgHeartbeatResp, To: m.From, Ballot: n.promised, Reject: true, Round: m.Round, Commit: n.commit})
		}
		return
	}
	n.acceptLeader(m.Ballot)
	n.learnCommit(m.Ballot, m.Commit, m.From)
	if m.Type == MsgHeartbeat {
		n.send(Message{Type: MsgHeartbeatResp, To: m.From, Ballot: m.Ballot, Round: m.Round, Commit: n.commit})
	}
}
