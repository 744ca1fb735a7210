package consensus

import "fmt"

// The learner: every node learns the chosen prefix from its leader, fetches
// chosen slots it lacks (catch-up), and installs a snapshot when the node it
// asks has compacted past what it needs.

// catchupState is a follower's outstanding catch-up request.
type catchupState struct {
	pending bool   // a request is out and unanswered
	sentAt  uint64 // tick it was sent
}

// learnCommit extends the chosen prefix up to c, told by the leader of b. A
// held entry at ballot b is that leader's value and so the chosen one; any
// other (a hole, or a copy accepted at another ballot) must be fetched.
func (n *Node) learnCommit(b Ballot, c uint64, from uint64) {
	for n.commit < c {
		e := n.slots.get(n.commit + 1)
		if e == nil || e.Ballot != b {
			break
		}
		n.advanceCommit()
	}
	if n.commit < c {
		n.requestCatchup(from)
	}
}

// advanceCommit makes slot commit+1, which must be held, chosen: it takes
// membership changes into effect and retires this node's proposals in it.
func (n *Node) advanceCommit() {
	e := n.slots.get(n.commit + 1)
	if e == nil {
		panic(fmt.Sprintf("consensus: node %d: slot %d chosen but not held (commit %d)", n.id, n.commit+1, n.commit))
	}
	n.commit++
	n.markHardState(false)
	switch e.Kind {
	case EntryValues:
		for _, v := range e.Values {
			if v.ID.Node == n.id {
				n.props.done(v.ID.Seq)
			}
			if n.lead != nil {
				delete(n.lead.known, v.ID)
			}
		}
	case EntryConfig:
		n.applyConfig(*e)
	}
	if l := n.lead; l != nil {
		if l.confSlot == n.commit {
			l.confSlot = 0
		}
		if n.commit+1 == n.conf.Since+Alpha {
			n.rebuildPeers() // the previous membership governs no open slot any more
		}
	}
}

// requestCatchup asks the leader for chosen slots from commit+1 on, at most
// once per RetryTicks while an answer is outstanding. A node that knows no
// membership (a joining replica) asks for slot 0: a snapshot, whose
// metadata carries the membership.
func (n *Node) requestCatchup(leader uint64) {
	if n.catchup.pending && n.now-n.catchup.sentAt < uint64(n.cfg.RetryTicks) {
		return
	}
	n.catchup = catchupState{pending: true, sentAt: n.now}
	slot := n.commit + 1
	if !n.knowsMembership() {
		slot = 0
	}
	n.send(Message{Type: MsgCatchupReq, To: leader, Slot: slot, Commit: n.commit})
}

func (n *Node) knowsMembership() bool { return len(n.conf.Members.Voters) > 0 }

// serveCatchup answers a request for chosen slots. Any node serves one from
// its log (every slot up to its chosen prefix is chosen), or, when its log
// was compacted past the slot wanted (or slot 0, a joining node), asks the
// caller to send a snapshot. Usually the leader answers; a node behind the
// others also asks whoever refused its poll.
func (n *Node) serveCatchup(m Message) {
	var ballot Ballot
	if l := n.lead; l != nil {
		ballot = l.ballot
		if p := l.peers[m.From]; p != nil {
			p.active = true
			p.match = max(p.match, m.Commit)
		}
	}
	// A peer asking for slots after the snapshot it was sent has installed
	// it: the transfer is over, whatever the caller reported.
	if s, ok := n.snapSlot[m.From]; ok && m.Slot > 0 && m.Commit >= s {
		delete(n.snapSent, m.From)
		delete(n.snapSlot, m.From)
	}
	if m.Slot == 0 || m.Slot < n.slots.first {
		n.requestSnapshot(m.From)
		return
	}
	if m.Slot > n.commit {
		return
	}
	delete(n.snapSent, m.From)
	es := n.slots.span(m.Slot, n.commit)
	es = es[:n.chunk(es)]
	n.send(Message{Type: MsgCatchup, To: m.From, Ballot: ballot, Commit: n.commit, Slot: m.Slot - 1, Entries: es})
}

// handleCatchup installs chosen entries that extend the prefix. They are
// chosen whoever sent them, so they are taken even from a stale leader.
func (n *Node) handleCatchup(m Message) {
	n.catchup.pending = false
	if !n.knowsMembership() {
		return // it needs a snapshot first
	}
	for _, e := range m.Entries {
		if e.Slot == n.commit+1 {
			n.slots.put(e)
			n.persist(e)
			n.advanceCommit()
		}
	}
	if !m.Ballot.IsZero() && !m.Ballot.Less(n.promised) {
		n.acceptLeader(m.Ballot)
	}
	if n.commit < m.Commit {
		n.requestCatchup(m.From)
	}
}

// requestSnapshot asks the caller (via Ready.SendSnapshots) to stream its
// latest snapshot to node to, unless a transfer to it is under way. At most
// maxMembers transfers are tracked at once.
func (n *Node) requestSnapshot(to uint64) {
	if n.snapSent[to] > n.now {
		return
	}
	if n.snapSent == nil {
		n.snapSent = make(map[uint64]uint64)
	}
	if len(n.snapSent) >= maxMembers {
		for id, until := range n.snapSent {
			if until <= n.now {
				delete(n.snapSent, id)
			}
		}
		if len(n.snapSent) >= maxMembers {
			return
		}
	}
	n.snapSent[to] = n.now + uint64(n.cfg.SnapshotTicks)
	if n.snapSlot == nil {
		n.snapSlot = make(map[uint64]uint64)
	}
	n.snapSlot[to] = n.snap.Slot
	n.out.sendSnaps = append(n.out.sendSnaps, SnapshotTransfer{To: to, Meta: cloneSnapshot(n.snap)})
	n.logger.Info("consensus: peer needs a snapshot", "id", n.id, "peer", to, "slot", n.snap.Slot)
}

// ReportSnapshot tells the node how a transfer it asked for ended. On
// failure it asks again at the peer's next catch-up request; on success it
// waits for the peer to install it and ask for what follows.
func (n *Node) ReportSnapshot(to uint64, ok bool) {
	if !ok {
		delete(n.snapSent, to)
	}
}

// OfferSnapshot hands the node the metadata of a snapshot the caller has
// received in full from the leader's replica. It reports whether the node
// takes it: if so, the next Ready carries it in Snapshot (install it, then
// apply Committed); if not, the caller discards the data. A node takes a
// snapshot beyond its chosen prefix, or any snapshot while it knows no
// membership (a joining node starts from one).
func (n *Node) OfferSnapshot(meta SnapshotMeta) bool {
	if (meta.Slot <= n.commit && n.knowsMembership()) || n.role == RoleLeader || validConfig(meta.Config) != nil {
		return false
	}
	meta = cloneSnapshot(meta)
	n.slots.compact(meta.Slot)
	n.commit = meta.Slot
	n.snap = meta
	n.conf = cloneConfig(meta.Config)
	n.confLog = nil
	n.rejected = nil
	n.failIfRemoved()
	n.out.install = &meta
	n.catchup.pending = false
	n.markHardState(true)
	n.logger.Info("consensus: installing snapshot", "id", n.id, "slot", meta.Slot)
	return true
}

// Compact drops the log up to slot, which the caller has captured in a
// snapshot of its state machine (slot ≤ applied). It returns the snapshot's
// metadata, which the caller persists with the snapshot data; after that it
// may drop persisted entries ≤ slot.
func (n *Node) Compact(slot uint64) (SnapshotMeta, error) {
	if slot > n.applied {
		return SnapshotMeta{}, fmt.Errorf("consensus: compact %d beyond applied %d", slot, n.applied)
	}
	if slot <= n.snap.Slot {
		return cloneSnapshot(n.snap), ErrCompacted
	}
	n.snap = SnapshotMeta{Slot: slot, Config: cloneConfig(n.configAsOf(slot))}
	n.slots.compact(slot)
	i := 0
	for i < len(n.confLog) && n.confLog[i].Since <= slot {
		i++
	}
	n.confLog = n.confLog[i:]
	for s := range n.rejected {
		if s <= slot {
			delete(n.rejected, s)
		}
	}
	return cloneSnapshot(n.snap), nil
}

// configAsOf returns the membership state as of slot s (snap.Slot ≤ s ≤ commit).
func (n *Node) configAsOf(s uint64) ConfigState {
	c := n.snap.Config
	for _, st := range n.confLog {
		if st.Since > s {
			break
		}
		c = st
	}
	return c
}
