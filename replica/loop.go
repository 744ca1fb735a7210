package replica

import (
	"encoding/binary"
	"errors"
	"io"
	"time"

	"github.com/doozerfs/doozerfs/consensus"
	"github.com/doozerfs/doozerfs/fs"
	"github.com/doozerfs/doozerfs/replica/wal"
)

// loop is the one goroutine that owns the consensus node: it ticks it,
// hands it proposals and read requests, and carries out its Ready —
// persist, send, apply — in that order.
func (r *Replica) loop() {
	defer close(r.donec)
	tick := time.NewTicker(r.cfg.Tick)
	defer tick.Stop()
	r.leases.init(r.tree, time.Now())
	for {
		select {
		case <-r.stopc:
			r.failAll()
			return
		case now := <-tick.C:
			r.node.Tick()
			r.expireHeld(now)
			r.leases.tick(r, now)
			if now.Sub(r.policyAt) >= policyEvery {
				r.policyAt = now
				r.policy(now)
			}
		case p := <-r.propc:
			r.submit(p)
			n := 1
		drain:
			for range 4096 {
				select {
				case p := <-r.propc:
					r.submit(p)
					n++
				default:
					break drain
				}
			}
			r.metrics.propBatch.Observe(float64(n))
		case q := <-r.readc:
			r.readSeq++
			ctx := binary.AppendUvarint(nil, r.readSeq)
			if err := r.node.ReadIndex(ctx); err != nil {
				q.slot <- 0
			} else {
				r.reads[r.readSeq] = q
			}
		case s := <-r.snapDone:
			r.finishSnapshot(s)
		case m := <-r.stepc:
			r.step(m)
		steps:
			for range 4096 {
				select {
				case m := <-r.stepc:
					r.step(m)
				default:
					break steps
				}
			}
		case p := <-r.installc:
			r.offer(p)
		case rep := <-r.snapReportc:
			r.node.ReportSnapshot(rep.to, rep.ok)
		}
		if err := r.process(); err != nil {
			r.log.Error("replica stopping on a storage error", "err", err)
			r.fatal.Store(&err)
			r.closed.Store(true)
			r.failAll()
			return
		}
	}
}

// submit proposes p, or holds it while no leader is known.
func (r *Replica) submit(p *proposal) {
	if r.leader.Load() == 0 {
		// Held for a leader until NoLeaderGrace after the replica lost
		// its leader: at once READONLY when it has been without one for
		// longer (a minority partition knows it has no quorum).
		now := time.Now()
		if r.noLeaderSince.IsZero() {
			r.noLeaderSince = now
		}
		if p.until.IsZero() {
			p.until = r.noLeaderSince.Add(r.cfg.NoLeaderGrace)
		}
		if now.After(p.until) {
			p.res <- propResult{err: &fs.Error{Kind: fs.KindReadOnly,
				Detail: "no leader is known (no quorum); nothing was proposed"}}
			return
		}
		r.held = append(r.held, p)
		return
	}
	id, err := r.node.Propose(p.data)
	if err != nil {
		p.res <- propResult{err: proposeErr(err)}
		return
	}
	r.waiters[id] = p
}

// proposeErr maps a refusal of consensus.Propose to the client's error;
// nothing was proposed.
func proposeErr(err error) error {
	switch {
	case errors.Is(err, consensus.ErrBusy):
		return &fs.Error{Kind: fs.KindUnavailable, Detail: "the replica is overloaded; nothing was proposed"}
	default:
		return &fs.Error{Kind: fs.KindReadOnly, Detail: "not proposed: " + err.Error()}
	}
}

// expireHeld refuses the held proposals whose grace has passed.
func (r *Replica) expireHeld(now time.Time) {
	if len(r.held) == 0 {
		return
	}
	keep := r.held[:0]
	for _, p := range r.held {
		if now.After(p.until) {
			p.res <- propResult{err: &fs.Error{Kind: fs.KindReadOnly,
				Detail: "no leader is known (no quorum); nothing was proposed"}}
			continue
		}
		keep = append(keep, p)
	}
	clear(r.held[len(keep):])
	r.held = keep
}

// failAll answers every waiting proposal and read when the loop stops.
func (r *Replica) failAll() {
	for id, p := range r.waiters {
		p.res <- propResult{err: &fs.Error{Kind: fs.KindTimeout, Detail: "the replica stopped; the write's outcome is unknown"}}
		delete(r.waiters, id)
	}
	for _, p := range r.held {
		p.res <- propResult{err: errStopped}
	}
	r.held = nil
	for s, q := range r.reads {
		q.slot <- 0
		delete(r.reads, s)
	}
}

// process carries out every Ready the node has.
func (r *Replica) process() error {
	for r.node.HasReady() {
		rd := r.node.Ready()
		if rd.Snapshot != nil {
			if err := r.install(rd.Snapshot); err != nil {
				return err
			}
		}
		// Messages that state nothing about this replica's disk (the
		// leader's Accepts, Commits, heartbeats, forwarded proposals) leave
		// before the write, so that the followers' fsync overlaps the
		// leader's (docs/consensus.md §5.4); the acceptor's answers
		// (Promise, Accepted, Prepare) only once it is durable.
		r.peers.send(rd.Messages, false)
		if err := r.persist(&rd); err != nil {
			return err
		}
		r.peers.send(rd.Messages, true)
		for _, st := range rd.SendSnapshots {
			r.bg.Add(1)
			go r.sendSnapshot(st.To)
		}
		r.apply(rd.Committed)
		for _, rs := range rd.ReadStates {
			seq, n := binary.Uvarint(rs.Context)
			if q := r.reads[seq]; n > 0 && q != nil {
				delete(r.reads, seq)
				q.slot <- max(rs.Slot, 1)
			}
		}
		// Consensus gave these up because this replica left the cluster;
		// a leader may still have them in its pipeline and choose them.
		for _, id := range rd.Failed {
			if p := r.waiters[id]; p != nil {
				delete(r.waiters, id)
				p.res <- propResult{err: &fs.Error{Kind: fs.KindTimeout,
					Detail: "this replica left the cluster with the write in flight; its outcome is unknown"}}
			}
		}
		r.node.Advance(rd)
	}
	st := r.node.Status()
	r.cstatus.Store(&st)
	if st.Leader != 0 {
		r.noLeaderSince = time.Time{}
	} else if r.noLeaderSince.IsZero() {
		r.noLeaderSince = time.Now()
	}
	r.metrics.leaderSeen(st.Leader)
	r.leader.Store(st.Leader)
	r.role.Store(uint32(st.Role))
	if st.Leader != 0 && len(r.held) > 0 {
		held := r.held
		r.held = nil
		for _, p := range held {
			r.submit(p)
		}
		if r.node.HasReady() {
			return r.process()
		}
	}
	r.maybeSnapshot()
	return nil
}

// persist writes what rd asks to persist, and syncs when it must.
func (r *Replica) persist(rd *consensus.Ready) error {
	n := len(rd.Entries)
	if rd.HardState != nil {
		n++
	}
	if n == 0 {
		return nil
	}
	recs := make([]wal.Record, 0, n)
	for i := range rd.Entries {
		recs = append(recs, wal.Record{Type: recEntry, Data: encodeEntry(&rd.Entries[i])})
	}
	if rd.HardState != nil {
		recs = append(recs, wal.Record{Type: recHardState, Data: encodeHardState(*rd.HardState)})
	}
	first := r.dd.WAL.NextIndex()
	if err := r.dd.WAL.Append(recs...); err != nil {
		return err
	}
	for i, e := range rd.Entries {
		r.entryIndex[e.Slot] = first + uint64(i)
	}
	if rd.HardState != nil {
		r.hs = *rd.HardState
		r.hsIndex = first + uint64(n-1)
	}
	if rd.MustSync {
		return r.dd.WAL.Sync()
	}
	return nil
}

// apply applies chosen entries to the tree in slot order and answers the
// proposals that were made here.
func (r *Replica) apply(entries []consensus.Entry) {
	if len(entries) == 0 {
		return
	}
	now := time.Now()
	values := 0
	for _, e := range entries {
		switch e.Kind {
		case consensus.EntryValues:
			values += len(e.Values)
			for _, v := range e.Values {
				r.applyValue(v, now)
			}
		case consensus.EntryConfig:
			r.conf = consensus.ConfigState{Members: e.Members, Since: e.Slot, Prev: r.conf.Members}
		}
		r.applied = e.Slot
		delete(r.entryIndex, e.Slot)
	}
	r.revN.advance(r.tree.Rev())
	r.slotN.advance(int64(r.applied))
	if values > 0 {
		r.metrics.applyBatch.Observe(float64(values))
	}
}

func (r *Replica) applyValue(v consensus.Value, now time.Time) {
	p := r.waiters[v.ID]
	if p != nil {
		delete(r.waiters, v.ID)
	}
	if r.dedup.seen(v.ID) {
		if p != nil { // a late first delivery that the window had forgotten
			p.res <- propResult{err: &fs.Error{Kind: fs.KindTimeout, Detail: "the proposal arrived after the de-duplication window; its outcome is unknown"}}
		}
		return
	}
	r.dedup.add(v.ID)
	var m fs.Mutation
	if err := m.UnmarshalBinary(v.Data); err != nil {
		// Every replica skips the same undecodable value.
		r.log.Error("skipping a chosen value that does not decode", "id", v.ID, "err", err)
		if p != nil {
			p.res <- propResult{err: &fs.Error{Kind: fs.KindBadRequest, Detail: err.Error()}}
		}
		return
	}
	m.Time = max(m.Time, r.lastTime)
	r.lastTime = m.Time
	res, err := r.tree.Apply(&m)
	r.leases.applied(r.tree, &m, res, err, now)
	if p != nil {
		r.metrics.committed(p)
		p.res <- propResult{res: res, err: err}
	}
}

// maybeSnapshot starts a snapshot when enough slots were applied since the
// last one. The tree is captured here, at exactly r.applied, and written
// by another goroutine while the loop goes on.
func (r *Replica) maybeSnapshot() {
	if r.snapping || r.applied < r.snapSlot+r.cfg.SnapshotEvery || time.Now().Before(r.snapRetry) {
		return
	}
	// Write the hard state again so that it is at or after the snapshot's
	// index: records before that index will be truncated.
	if err := r.dd.WAL.Append(wal.Record{Type: recHardState, Data: encodeHardState(r.hs)}); err != nil {
		r.log.Error("snapshot: cannot append the hard state", "err", err)
		r.snapRetry = time.Now().Add(10 * time.Second)
		return
	}
	r.hsIndex = r.dd.WAL.NextIndex() - 1
	index := r.hsIndex
	for _, i := range r.entryIndex {
		index = min(index, i)
	}
	hdr := &snapHeader{Slot: r.applied, Config: r.conf, LastTime: r.lastTime, Dedup: r.dedup.clone()}
	capture := r.tree.Capture()
	rev := r.tree.Rev()
	r.snapping = true
	store := r.dd.Snapshots
	go func() {
		_, err := store.Save(index, func(w io.Writer) error {
			if err := hdr.write(w); err != nil {
				return err
			}
			return capture(w)
		})
		r.snapDone <- snapResult{slot: hdr.Slot, index: index, rev: rev, err: err}
	}()
}

// finishSnapshot compacts consensus and the WAL once a snapshot is saved.
func (r *Replica) finishSnapshot(s snapResult) {
	r.snapping = false
	if s.err != nil {
		r.log.Error("snapshot failed; will try again", "slot", s.slot, "err", s.err)
		r.snapRetry = time.Now().Add(10 * time.Second)
		return
	}
	if _, err := r.node.Compact(s.slot); err != nil && !errors.Is(err, consensus.ErrCompacted) {
		r.log.Warn("consensus compaction refused", "slot", s.slot, "err", err)
	}
	r.snapSlot = s.slot
	r.snapRev.Store(s.rev)
	prev := r.snapIndex
	r.snapIndex = s.index
	if err := r.dd.WAL.Append(wal.Record{Type: recCheckpoint, Data: encodeCheckpoint(s.slot, s.index)}); err != nil {
		r.log.Error("snapshot: checkpoint record", "err", err)
		return
	}
	if err := r.dd.WAL.Sync(); err != nil {
		r.log.Error("snapshot: sync", "err", err)
		return
	}
	// Keep the WAL back to the previous snapshot, so that either snapshot
	// can be started from.
	if n, err := r.dd.WAL.TruncateBefore(prev); err != nil {
		r.log.Warn("WAL truncation failed", "err", err)
	} else if n > 0 {
		r.log.Debug("WAL truncated", "before", prev, "segments", n)
	}
	r.log.Info("snapshot saved", "slot", s.slot, "rev", s.rev, "index", s.index)
}
