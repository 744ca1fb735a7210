package consensus

// output accumulates what the next Ready carries.
type output struct {
	hsDirty, mustSync bool
	entries           []Entry
	msgs              []Message
	forward           []Value // proposals for the leader, sent as MsgProp at Ready
	install           *SnapshotMeta
	sendSnaps         []SnapshotTransfer
	readStates        []ReadState
	failed            []ProposalID
}

// Ready is a batch of work for the caller. Handle it in this order:
//
//  1. If Snapshot is set, persist the received snapshot data with this
//     metadata (it replaces the state machine's state up to Snapshot.Slot).
//  2. Persist Entries, then HardState (one atomic write, entries first); a
//     persisted entry replaces any earlier one for its slot. If MustSync,
//     fsync before step 3.
//  3. Send Messages. (Those whose Type.NeedsPersist() is false may be sent
//     while step 2 is under way.)
//  4. If Snapshot is set, load it into the state machine. Then apply
//     Committed in order; answer ReadStates once applied ≥ their Slot; start
//     SendSnapshots transfers; fail Failed proposals.
//  5. Call Advance(rd).
//
// Call Ready only when HasReady reports true, and not again before Advance.
// Step, Tick, Propose and the other methods may be called between Ready and
// Advance (still never concurrently). All slices are read-only for the
// caller and valid after Advance.
type Ready struct {
	// HardState is the acceptor state to persist, nil if unchanged.
	HardState *HardState
	// Entries are accepted or learned entries to persist.
	Entries []Entry
	// MustSync says HardState or Entries must be fsynced before Messages
	// that need persistence leave. False when only HardState.Commit moved.
	MustSync bool
	// Snapshot, if set, is a snapshot this node accepted via OfferSnapshot:
	// install it before applying Committed.
	Snapshot *SnapshotMeta
	// Messages are for other nodes; each has To set.
	Messages []Message
	// Committed are chosen entries to apply, in slot order, without gaps,
	// starting right after the last slot applied (or Snapshot.Slot). A config
	// entry that lost a race with another change appears as EntryNoop.
	Committed []Entry
	// SendSnapshots asks the caller to stream its latest snapshot (at least
	// Meta.Slot) to a peer, over its own connection, then call
	// ReportSnapshot(To, ok).
	SendSnapshots []SnapshotTransfer
	// ReadStates answer ReadIndex calls made on this node.
	ReadStates []ReadState
	// Failed are this node's proposals it gave up on because it left the
	// cluster. Their outcome is unknown: they may still appear in Committed.
	Failed []ProposalID
}

// SnapshotTransfer asks the caller to send its snapshot to a peer.
type SnapshotTransfer struct {
	To   uint64
	Meta SnapshotMeta
}

// HasReady reports whether Ready would return any work.
func (n *Node) HasReady() bool {
	o := &n.out
	if o.hsDirty || len(o.entries) > 0 || len(o.msgs) > 0 || o.install != nil ||
		len(o.sendSnaps) > 0 || len(o.readStates) > 0 || len(o.failed) > 0 ||
		(len(o.forward) > 0 && n.leader != 0) || n.commit > n.handed {
		return true
	}
	if l := n.lead; l != nil {
		return l.sentFrom < l.next || n.commit > l.sentCommit || l.reads.want ||
			(len(l.reads.waiting) > 0 && n.readReady()) || n.hasWork()
	}
	return false
}

// Ready returns the work accumulated since the last Ready (see Ready for how
// to handle it). A leader assigns queued values to slots here, so proposals
// made between two Readys share slots.
func (n *Node) Ready() Ready {
	if n.inReady {
		panic("consensus: Ready called before Advance of the previous Ready")
	}
	if n.lead != nil {
		n.flushLeader()
		n.broadcastNew()
		n.serveReads()
	}
	n.flushForward()
	o := n.out
	n.out = output{}
	rd := Ready{
		Entries:       o.entries,
		MustSync:      o.mustSync || len(o.entries) > 0 || o.install != nil,
		Snapshot:      o.install,
		Messages:      o.msgs,
		SendSnapshots: o.sendSnaps,
		ReadStates:    o.readStates,
		Failed:        o.failed,
	}
	if o.hsDirty || o.install != nil {
		hs := n.hardState()
		rd.HardState = &hs
	}
	from := n.handed
	if o.install != nil {
		from = max(from, o.install.Slot)
	}
	rd.Committed = n.committed(from+1, n.commit)
	n.handed = max(from, n.commit)
	n.inReady = true
	return rd
}

// Early hands out, between a Ready and its Advance, what does not wait for
// this node's disk: the messages whose Type.NeedsPersist() is false (a
// leader's Accepts for the slots it assigns now, Commits, forwarded
// proposals, heartbeats …) and the entries chosen since the last Ready or
// Early. A caller that syncs a Ready's write in the background calls it
// meanwhile, so that the pipeline does not wait for that fsync: send msgs,
// then apply committed in order (they count as applied at once). What Early
// leaves (entries to persist, HardState, the acceptor's answers, read
// states) goes in the next Ready: entries a leader assigns here are
// persisted by it, and the leader's own acceptance of them counts from its
// Advance (docs/consensus.md §5.4 is why sending their Accepts first is
// safe). Chosen entries are durable on a majority whatever this node's
// write, so they may be applied before it. Early gives nothing while a
// received snapshot waits to be installed.
func (n *Node) Early() (msgs []Message, committed []Entry) {
	if n.out.install != nil {
		return nil, nil
	}
	if n.lead != nil {
		n.flushLeader()
		n.broadcastNew()
	}
	n.flushForward()
	if len(n.out.msgs) > 0 {
		keep := n.out.msgs[:0]
		for _, m := range n.out.msgs {
			if m.Type.NeedsPersist() {
				keep = append(keep, m)
			} else {
				msgs = append(msgs, m)
			}
		}
		clear(n.out.msgs[len(keep):])
		n.out.msgs = keep
	}
	if n.commit > n.handed {
		committed = n.committed(n.handed+1, n.commit)
		n.handed = n.commit
		n.applied = max(n.applied, n.commit)
	}
	return msgs, committed
}

// committed returns the chosen entries lo..hi for the caller to apply.
func (n *Node) committed(lo, hi uint64) []Entry {
	es := n.slots.span(lo, hi)
	if len(n.rejected) == 0 {
		return es
	}
	for i := range es {
		if es[i].Kind == EntryConfig && n.rejected[es[i].Slot] {
			es = append([]Entry(nil), es...)
			for j := i; j < len(es); j++ {
				if es[j].Kind == EntryConfig && n.rejected[es[j].Slot] {
					es[j] = Entry{Slot: es[j].Slot, Ballot: es[j].Ballot, Kind: EntryNoop}
				}
			}
			break
		}
	}
	return es
}

// Advance tells the node the caller finished rd: persisted, sent, applied.
// Only now do this node's own promise and acceptances count toward a quorum.
func (n *Node) Advance(rd Ready) {
	if !n.inReady {
		panic("consensus: Advance without an outstanding Ready")
	}
	n.inReady = false
	if rd.Snapshot != nil {
		n.applied = max(n.applied, rd.Snapshot.Slot)
		if n.leader != 0 && n.lead == nil {
			n.requestCatchup(n.leader) // what was chosen after the snapshot
		}
	}
	if k := len(rd.Committed); k > 0 {
		n.applied = max(n.applied, rd.Committed[k-1].Slot)
	}
	if hs := rd.HardState; hs != nil {
		n.props.durable = max(n.props.durable, hs.SeqCeiling)
		n.selfPromise(hs.Promised)
	}
	if l := n.lead; l != nil && l.self != nil {
		for _, e := range rd.Entries {
			if e.Ballot == l.ballot && e.Slot > n.commit && e.Slot < l.next {
				l.win[e.Slot%Alpha].acks |= l.self.bit
			}
		}
		n.advanceLeaderCommit()
	}
}

// selfPromise counts this node's own promise of b once it is durable.
func (n *Node) selfPromise(b Ballot) {
	switch {
	case n.elect != nil && !n.elect.pre && n.elect.ballot == b:
		n.elect.granted[n.id] = true
		n.maybeWin()
	case n.lead != nil && n.lead.ballot == b && n.lead.self != nil:
		n.lead.promisedMask |= n.lead.self.bit
	}
}
