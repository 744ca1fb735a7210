package consensus

import "slices"

// Linearizable reads by read index: the leader notes its chosen prefix when
// a read arrives, confirms with a heartbeat round that a majority still
// accepts its ballot, and then answers with that prefix. The caller serves
// the read once it has applied that far. No clock is involved; see
// docs/consensus.md for why it is linearizable.

// ReadState answers a ReadIndex call: once the caller has applied Slot, a
// read of its state machine is linearizable with respect to every write that
// completed before ReadIndex was called.
type ReadState struct {
	Context []byte
	Slot    uint64
}

type readRequest struct {
	ctx   []byte
	from  uint64
	index uint64 // chosen prefix when the read was registered
	round uint64 // heartbeat round that must be answered by a quorum
}

// readIndex is the leader's read state.
type readIndex struct {
	round   uint64        // last heartbeat round sent
	want    bool          // pending reads wait for round+1, not yet sent
	waiting []readRequest // arrived before the leader may answer reads
	pending []readRequest // index fixed, waiting for a quorum of their round
}

// ReadIndex asks for a read index for ctx (an id the caller chooses). The
// answer arrives as a ReadState in a later Ready, on this node. A follower
// forwards the request to the leader; if the request or its answer is lost,
// or leadership changes, no answer comes and the caller retries after a
// timeout (reads are idempotent).
func (n *Node) ReadIndex(ctx []byte) error {
	switch {
	case n.lead != nil:
		n.addRead(ctx, n.id)
	case n.leader != 0:
		n.send(Message{Type: MsgReadIndex, To: n.leader, Context: ctx})
	default:
		return ErrNoLeader
	}
	return nil
}

func (n *Node) handleReadIndex(m Message) {
	if n.lead != nil {
		n.addRead(m.Context, m.From)
	}
}

func (n *Node) addRead(ctx []byte, from uint64) {
	r := &n.lead.reads
	r.waiting = append(r.waiting, readRequest{ctx: ctx, from: from})
}

// readReady reports whether the leader may fix read indexes: it holds
// promises from a majority of each governing membership and has chosen every
// slot Phase 1 reported, so its chosen prefix covers every write completed
// before it was elected.
func (n *Node) readReady() bool {
	l := n.lead
	if l.rec.end > n.commit {
		return false
	}
	pm, pq := n.maskFor(n.commit + 1)
	return hasQuorum(l.promisedMask, pm, pq) && hasQuorum(l.promisedMask, l.curMask, l.curQ)
}

// serveReads runs at Ready: it fixes the index of waiting reads, starts one
// heartbeat round for all of them, and answers what a quorum confirmed.
func (n *Node) serveReads() {
	l := n.lead
	r := &l.reads
	if len(r.waiting) > 0 && n.readReady() {
		for _, w := range r.waiting {
			w.index, w.round = n.commit, r.round+1
			r.pending = append(r.pending, w)
		}
		r.waiting = nil
		r.want = true
	}
	if r.want {
		r.want = false
		r.round++
		n.broadcastHeartbeat()
	}
	n.releaseReads()
}

// releaseReads answers every pending read whose round a majority of each
// governing membership has acknowledged.
func (n *Node) releaseReads() {
	l := n.lead
	r := &l.reads
	if len(r.pending) == 0 {
		return
	}
	pm, pq := n.maskFor(n.commit + 1)
	acked := min(n.quorumRound(pm, pq), n.quorumRound(l.curMask, l.curQ))
	k := 0
	for k < len(r.pending) && r.pending[k].round <= acked {
		req := r.pending[k]
		if req.from == n.id {
			n.out.readStates = append(n.out.readStates, ReadState{Context: req.ctx, Slot: req.index})
		} else {
			n.send(Message{Type: MsgReadIndexResp, To: req.from, Context: req.ctx, Slot: req.index})
		}
		k++
	}
	r.pending = r.pending[k:]
}

// quorumRound is the highest round that q voters of mask have acknowledged.
func (n *Node) quorumRound(mask uint64, q int) uint64 {
	var buf [64]uint64
	rounds := buf[:0]
	for _, p := range n.lead.order {
		if p.bit&mask == 0 {
			continue
		}
		if p == n.lead.self {
			rounds = append(rounds, n.lead.reads.round)
		} else {
			rounds = append(rounds, p.readRound)
		}
	}
	if len(rounds) < q {
		return 0
	}
	slices.Sort(rounds)
	return rounds[len(rounds)-q]
}
