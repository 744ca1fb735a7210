package consensus

// Proposals: the origin of a value tracks it until it sees it chosen, and
// sends it again to whichever node leads. Delivery is therefore at least
// once; the caller de-duplicates by ProposalID when it applies.

// seqBlock is how many sequence numbers one HardState.SeqCeiling step
// reserves. A node only sends ids below a durable ceiling, so after a crash
// it resumes above every id it ever sent.
const seqBlock = 1 << 20

// proposals is the origin's record of its own proposals.
type proposals struct {
	// items[i] is the proposal with Seq base+i; next == base+len(items).
	base  uint64
	items []pendingProp
	live  int // items not yet seen chosen
	next  uint64
	// ceiling is the HardState.SeqCeiling to persist; durable the one known
	// persisted. Only ids below durable are issued.
	ceiling, durable uint64
	scanAt           uint64 // tick of the last retry scan
}

type pendingProp struct {
	data   []byte
	sentAt uint64
	done   bool
}

func (p *proposals) init(ceiling uint64) {
	p.base, p.next, p.ceiling, p.durable = ceiling, ceiling, ceiling, ceiling
}

// raiseSeqCeiling reserves the next block of ids ahead of need.
func (n *Node) raiseSeqCeiling() {
	if n.props.next+seqBlock/2 >= n.props.ceiling {
		n.props.ceiling = n.props.next + seqBlock
		n.markHardState(true)
	}
}

// Propose submits value v and returns its id. The node takes it to the leader
// (forwarding it if this node is not the leader, holding it while no leader
// is known) and sends it again after a leader change or RetryTicks without
// seeing it chosen, until it is chosen. Errors: ErrRemoved (not a member),
// ErrNoLeader (a joining node that has not yet received its first snapshot),
// ErrBusy (too many pending, or right after New before the first Ready was
// advanced). v must not be modified afterwards.
func (n *Node) Propose(v []byte) (ProposalID, error) {
	switch {
	case !n.knowsMembership():
		return ProposalID{}, ErrNoLeader
	case !n.conf.Members.IsMember(n.id):
		return ProposalID{}, ErrRemoved
	case n.props.live >= n.cfg.MaxPending || n.props.next >= n.props.durable:
		return ProposalID{}, ErrBusy
	case n.lead != nil && len(n.lead.queue) >= n.cfg.MaxPending:
		return ProposalID{}, ErrBusy
	}
	id := ProposalID{Node: n.id, Seq: n.props.next}
	n.props.next++
	n.props.items = append(n.props.items, pendingProp{data: v, sentAt: n.now})
	n.props.live++
	n.raiseSeqCeiling()
	if n.lead != nil {
		n.lead.enqueue(Value{ID: id, Data: v}, n.cfg.MaxPending)
	} else {
		n.out.forward = append(n.out.forward, Value{ID: id, Data: v})
	}
	return id, nil
}

// done retires proposal seq: it was chosen.
func (p *proposals) done(seq uint64) {
	if seq < p.base || seq-p.base >= uint64(len(p.items)) {
		return
	}
	it := &p.items[seq-p.base]
	if it.done {
		return
	}
	*it = pendingProp{done: true}
	p.live--
	for len(p.items) > 0 && p.items[0].done {
		p.items = p.items[1:]
		p.base++
	}
}

// resendAll queues every live proposal for the (new) leader.
func (p *proposals) resendAll(n *Node) {
	n.out.forward = n.out.forward[:0]
	for i := range p.items {
		if it := &p.items[i]; !it.done {
			it.sentAt = n.now
			n.out.forward = append(n.out.forward, Value{ID: ProposalID{Node: n.id, Seq: p.base + uint64(i)}, Data: it.data})
		}
	}
}

// requeueOwn puts this node's live proposals in its own queue when it starts
// leading (those Phase 1 recovered are dropped again when re-proposed).
func (p *proposals) requeueOwn(n *Node) {
	for i := range p.items {
		if it := &p.items[i]; !it.done {
			it.sentAt = n.now
			n.lead.enqueue(Value{ID: ProposalID{Node: n.id, Seq: p.base + uint64(i)}, Data: it.data}, n.cfg.MaxPending)
		}
	}
}

// failAll gives up on every live proposal (this node left the cluster); they
// are reported in Ready.Failed, outcome unknown.
func (p *proposals) failAll(n *Node) {
	for i, it := range p.items {
		if !it.done {
			n.out.failed = append(n.out.failed, ProposalID{Node: n.id, Seq: p.base + uint64(i)})
		}
	}
	p.items, p.base, p.live = nil, p.next, 0
	n.out.forward = nil
}

// tickProposals resends, every RetryTicks, the proposals a follower sent at
// least RetryTicks ago and has not seen chosen.
func (n *Node) tickProposals() {
	p := &n.props
	if p.live == 0 || n.leader == 0 || n.lead != nil || n.now-p.scanAt < uint64(n.cfg.RetryTicks) {
		return
	}
	p.scanAt = n.now
	for i := range p.items {
		if it := &p.items[i]; !it.done && n.now-it.sentAt >= uint64(n.cfg.RetryTicks) {
			it.sentAt = n.now
			n.out.forward = append(n.out.forward, Value{ID: ProposalID{Node: n.id, Seq: p.base + uint64(i)}, Data: it.data})
		}
	}
}

// handleProp queues values forwarded by other nodes, up to MaxPending (the
// origin retries the rest). A non-member is told the chosen prefix so it can
// catch up and learn that it was removed.
func (n *Node) handleProp(m Message) {
	l := n.lead
	if l == nil {
		return
	}
	if l.peers[m.From] == nil {
		n.send(Message{Type: MsgCommit, To: m.From, Ballot: l.ballot, Commit: n.commit})
	}
	for _, v := range m.Values {
		if !l.enqueue(v, n.cfg.MaxPending) {
			return
		}
	}
}

// flushForward sends the values waiting for the leader in one message (or a
// few, MaxMsgBytes each). With no leader known they stay pending.
func (n *Node) flushForward() {
	vs := n.out.forward
	n.out.forward = nil
	if len(vs) == 0 || n.leader == 0 || n.lead != nil {
		return
	}
	for len(vs) > 0 {
		k, size := 0, 0
		for k < len(vs) && (k == 0 || size+len(vs[k].Data) <= n.cfg.MaxMsgBytes) {
			size += len(vs[k].Data)
			k++
		}
		n.send(Message{Type: MsgProp, To: n.leader, Values: vs[:k:k]})
		vs = vs[k:]
	}
}
