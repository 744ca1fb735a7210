package consensus

import "slices"

// Phase 2: the leader assigns slots (batches of values pipelined up to
// MaxInflightSlots, everything else up to Alpha), sends Accepts, counts
// acknowledgements and advances the chosen prefix.

// canAssign reports whether the leader may propose slot s now: s is inside
// the window, so every slot up to s-Alpha is chosen and s's membership is
// known, and a majority of that membership promised this ballot.
func (n *Node) canAssign(s uint64) bool {
	if s > n.commit+Alpha {
		return false
	}
	mask, q := n.maskFor(s)
	return hasQuorum(n.lead.promisedMask, mask, q)
}

// batchWindowOpen reports whether slot s may hold a new batch of values:
// at most MaxInflightSlots of them are proposed and not yet chosen. While
// they are, values wait in the queue and the next batch grows: under load
// a few large slots cost less (messages, WAL records, wake-ups on every
// replica) than many small ones. Once the queue holds a full batch
// (MaxBatchCount values or MaxBatchBytes bytes), waiting cannot make it
// larger, and full batches are pipelined up to Alpha. Recovered slots,
// no-ops and membership changes use the whole Alpha window too.
func (n *Node) batchWindowOpen(s uint64) bool {
	l := n.lead
	return s <= n.commit+uint64(n.cfg.MaxInflightSlots) ||
		len(l.queue) >= n.cfg.MaxBatchCount || l.queueBytes >= n.cfg.MaxBatchBytes
}

// hasWork reports whether flushLeader would assign a slot.
func (n *Node) hasWork() bool {
	l := n.lead
	if !n.canAssign(l.next) {
		return false
	}
	return l.next <= l.rec.end || n.needsFill() || (len(l.queue) > 0 && n.batchWindowOpen(l.next))
}

// needsFill: a chosen membership change has not yet taken effect and no
// values are coming to push the log there, so no-ops do.
func (n *Node) needsFill() bool {
	return n.lead.confSlot == 0 && !n.conf.settled(n.lead.next)
}

// flushLeader assigns every slot it may: recovered values (or no-ops for
// holes) first, then batches of queued values, then no-ops that carry a
// membership change into effect.
func (n *Node) flushLeader() {
	l := n.lead
	for n.canAssign(l.next) {
		switch {
		case l.next <= l.rec.end:
			e, ok := l.rec.entries[l.next]
			if !ok {
				e = Entry{Kind: EntryNoop}
			}
			delete(l.rec.entries, l.next)
			n.assign(e)
		case n.batchWindowOpen(l.next) && len(l.dropStale()) > 0:
			n.assign(Entry{Kind: EntryValues, Values: l.takeBatch(&n.cfg)})
		case n.needsFill():
			n.assign(Entry{Kind: EntryNoop})
		default:
			return
		}
	}
}

// enqueue queues v for a slot unless it is already queued or in flight
// here. It reports false when the queue is full.
func (l *leader) enqueue(v Value, limit int) bool {
	if len(l.queue) >= limit {
		return false
	}
	if _, ok := l.known[v.ID]; !ok {
		l.known[v.ID] = false
		l.queue = append(l.queue, v)
		l.queueBytes += len(v.Data)
	}
	return true
}

// noteAssigned records the values of an entry put in a slot.
func (l *leader) noteAssigned(e Entry) {
	for _, v := range e.Values {
		if queued, ok := l.known[v.ID]; ok && !queued {
			l.stale++
		}
		l.known[v.ID] = true
	}
}

// dropStale removes from the queue the values that recovery already put in
// a slot, and returns the queue. It rewrites only queue positions no batch
// was taken from.
func (l *leader) dropStale() []Value {
	if l.stale == 0 {
		return l.queue
	}
	l.stale = 0
	kept := l.queue[:0]
	l.queueBytes = 0
	for _, v := range l.queue {
		if !l.known[v.ID] {
			kept = append(kept, v)
			l.queueBytes += len(v.Data)
		}
	}
	clear(l.queue[len(kept):])
	l.queue = kept
	return kept
}

// takeBatch removes the next batch from the queue. The batch shares the
// queue's array; the queue only ever moves forward in it, so a batch is never
// overwritten.
func (l *leader) takeBatch(c *Config) []Value {
	k, size := 0, 0
	for k < len(l.queue) && k < c.MaxBatchCount {
		sz := len(l.queue[k].Data)
		if k > 0 && size+sz > c.MaxBatchBytes {
			break
		}
		size += sz
		k++
	}
	batch := l.queue[:k:k]
	l.queue = l.queue[k:]
	l.queueBytes -= size
	return batch
}

// assign proposes e at the next slot at this ballot; the leader accepts it
// itself once the caller has persisted it (Advance).
func (n *Node) assign(e Entry) {
	l := n.lead
	e.Slot, e.Ballot = l.next, l.ballot
	n.slots.put(e)
	n.persist(e)
	l.win[e.Slot%Alpha] = slotAcks{sent: n.now}
	if e.Kind == EntryConfig {
		l.confSlot = e.Slot
	}
	l.noteAssigned(e)
	l.next++
}

// broadcastNew sends the slots assigned since the last Ready to every
// member, or, when there are none, tells them a moved chosen prefix.
func (n *Node) broadcastNew() {
	l := n.lead
	if l.sentFrom < l.next {
		es := slices.Clone(n.slots.span(l.sentFrom, l.next-1))
		for _, p := range l.order {
			if p != l.self {
				n.sendAccepts(p.id, es)
			}
		}
		l.sentFrom = l.next
		l.sentCommit = n.commit
		return
	}
	if n.commit > l.sentCommit {
		for _, p := range l.order {
			if p != l.self {
				n.send(Message{Type: MsgCommit, To: p.id, Ballot: l.ballot, Commit: n.commit})
			}
		}
		l.sentCommit = n.commit
	}
}

// sendAccepts sends consecutive entries es to one member, split so that each
// message holds at most MaxMsgBytes of values (and at least one entry).
func (n *Node) sendAccepts(to uint64, es []Entry) {
	for len(es) > 0 {
		k := n.chunk(es)
		n.send(Message{Type: MsgAccept, To: to, Ballot: n.lead.ballot, Commit: n.commit, Entries: es[:k:k]})
		es = es[k:]
	}
}

// chunk returns how many leading entries of es fit in one message (at least
// one).
func (n *Node) chunk(es []Entry) int {
	size := 0
	for i, e := range es {
		for _, v := range e.Values {
			size += len(v.Data)
		}
		if i > 0 && size > n.cfg.MaxMsgBytes {
			return i
		}
	}
	return len(es)
}

// handleAccepted counts a Phase 2b answer.
func (n *Node) handleAccepted(m Message) {
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
	for s := max(m.Slot, n.commit+1); s <= m.Last && s < l.next; s++ {
		l.win[s%Alpha].acks |= p.bit
	}
	n.advanceLeaderCommit()
}

// advanceLeaderCommit extends the chosen prefix over every slot a majority of
// its membership accepted at this ballot.
func (n *Node) advanceLeaderCommit() {
	for l := n.lead; l != nil && n.commit+1 < l.next; l = n.lead {
		s := n.commit + 1
		mask, q := n.maskFor(s)
		if !hasQuorum(l.win[s%Alpha].acks, mask, q) {
			return
		}
		n.advanceCommit()
	}
}

// retransmit resends, to each member that has not acknowledged it, every
// in-flight slot last sent a heartbeat interval ago or more.
func (n *Node) retransmit() {
	l := n.lead
	stale := func(s uint64) bool { return n.now-l.win[s%Alpha].sent >= uint64(n.cfg.HeartbeatTicks) }
	for _, p := range l.order {
		if p == l.self {
			continue
		}
		var run []Entry
		for s := n.commit + 1; s <= l.sentFrom; s++ {
			if s < l.sentFrom && stale(s) && l.win[s%Alpha].acks&p.bit == 0 {
				run = append(run, *n.slots.get(s))
				continue
			}
			n.sendAccepts(p.id, run)
			run = nil
		}
	}
	for s := n.commit + 1; s < l.sentFrom; s++ {
		if stale(s) {
			l.win[s%Alpha].sent = n.now
		}
	}
}
