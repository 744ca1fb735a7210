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
	r.looping = true
	go r.syncer()
	defer close(r.syncReq)
	for {
		// A snapshot's compaction and a received snapshot wait for the
		// sync under way: they change the log the outstanding Ready
		// refers to.
		snapDone, installc := r.snapDone, r.installc
		if r.syncing {
			snapDone, installc = nil, nil
		}
		select {
		case <-r.stopc:
			r.waitSync()
			r.failAll()
			return
		case err := <-r.syncDone:
			if err = r.synced(err); err != nil {
				r.stopOnStorageError(err)
				return
			}
		case now := <-tick.C:
			r.node.Tick()
			r.expireHeld(now)
			r.expireWaiters(now)
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
		case s := <-snapDone:
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
		case p := <-installc:
			r.offer(p)
		case rep := <-r.snapReportc:
			r.node.ReportSnapshot(rep.to, rep.ok)
		}
		err := r.process()
		r.flushAnswers()
		if err != nil {
			r.stopOnStorageError(err)
			return
		}
	}
}

func (r *Replica) stopOnStorageError(err error) {
	r.log.Error("replica stopping on a storage error", "err", err)
	r.fatal.Store(&err)
	r.closed.Store(true)
	r.waitSync()
	r.failAll()
}

// syncer makes the WAL durable for the loop (group commit): while it
// waits in fdatasync, the loop goes on stepping messages, taking proposals
// into the next batch and applying what is chosen.
func (r *Replica) syncer() {
	for range r.syncReq {
		r.syncDone <- r.dd.WAL.Sync()
	}
}

// waitSync waits for the sync under way, if any, when the loop stops.
func (r *Replica) waitSync() {
	if r.syncing {
		<-r.syncDone
		r.syncing = false
		r.syncRd = consensus.Ready{}
	}
}

// synced finishes the Ready whose write the syncer made durable: the
// messages that needed it leave, and consensus counts the write.
func (r *Replica) synced(err error) error {
	rd := r.syncRd
	r.syncing, r.syncRd = false, consensus.Ready{}
	if err != nil {
		return err
	}
	r.peers.send(rd.Messages, true)
	r.startSnapshots(&rd)
	r.node.Advance(rd)
	return nil
}

// finish answers p, once: on its channel, or on its client connection,
// which flushAnswers then writes.
func (r *Replica) finish(p *proposal, res propResult) {
	cc := p.cc
	if cc == nil {
		p.res <- res
		return
	}
	cc.answer(p, res)
	if !cc.flushMark {
		cc.flushMark = true
		r.flushq = append(r.flushq, cc)
	}
}

// flushAnswers writes the answers finish queued on client connections, as
// far as each connection takes them without waiting: one write per
// connection for all its answers of a batch, and no goroutine hand-off.
func (r *Replica) flushAnswers() {
	for i, cc := range r.flushq {
		cc.flushMark = false
		cc.c.TryFlush()
		r.flushq[i] = nil
	}
	r.flushq = r.flushq[:0]
}

// expireWaiters answers TIMEOUT to the proposals whose deadline passed
// (their outcome is unknown: they may still be chosen) and forgets them.
// timeq is in the order proposed, so that deadlines come about in order;
// entries already answered are dropped as they reach its front.
func (r *Replica) expireWaiters(now time.Time) {
	n := 0
	for _, t := range r.timeq {
		if r.waiters[t.id] == t.p {
			if now.Before(t.p.deadline) {
				break
			}
			delete(r.waiters, t.id)
			r.finish(t.p, propResult{err: &fs.Error{Kind: fs.KindTimeout, Detail: "no answer in time: the write's outcome is unknown"}})
		}
		n++
	}
	if n > 0 {
		clear(r.timeq[:n])
		r.timeq = r.timeq[n:]
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
			r.finish(p, propResult{err: &fs.Error{Kind: fs.KindReadOnly,
				Detail: "no leader is known (no quorum); nothing was proposed"}})
			return
		}
		r.held = append(r.held, p)
		return
	}
	id, err := r.node.Propose(p.data)
	if err != nil {
		r.finish(p, propResult{err: proposeErr(err)})
		return
	}
	r.waiters[id] = p
	if !p.deadline.IsZero() {
		r.timeq = append(r.timeq, timedProposal{id: id, p: p})
	}
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
			r.finish(p, propResult{err: &fs.Error{Kind: fs.KindReadOnly,
				Detail: "no leader is known (no quorum); nothing was proposed"}})
			continue
		}
		if !p.deadline.IsZero() && now.After(p.deadline) {
			r.finish(p, propResult{err: &fs.Error{Kind: fs.KindTimeout, Detail: "no answer in time: the write was not proposed"}})
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
		r.finish(p, propResult{err: &fs.Error{Kind: fs.KindTimeout, Detail: "the replica stopped; the write's outcome is unknown"}})
		delete(r.waiters, id)
	}
	for _, p := range r.held {
		r.finish(p, propResult{err: errStopped})
	}
	r.held = nil
	clear(r.timeq)
	r.timeq = nil
	for s, q := range r.reads {
		q.slot <- 0
		delete(r.reads, s)
	}
	r.flushAnswers()
}

// process carries out every Ready the node has. In the loop, a Ready that
// must be synced is handed to the syncer after its write (its chosen
// entries are applied meanwhile), and the next Ready waits for synced;
// until then each call hands out what consensus can do without the disk
// (Node.Early).
func (r *Replica) process() error {
	if r.syncing {
		// While the disk works: what does not wait for it (forwarded
		// proposals, a leader's Accepts and Commits, what was chosen).
		msgs, committed := r.node.Early()
		r.peers.send(msgs, false)
		if len(committed) > 0 {
			r.apply(committed)
			r.flushAnswers()
		}
	}
	for !r.syncing && r.node.HasReady() {
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
		async := r.looping && rd.Snapshot == nil
		handed, err := r.persist(&rd, async)
		if err != nil {
			return err
		}
		if handed {
			// What rd.Committed holds is chosen, i.e. durable on a
			// majority, whatever this write's fate: it is applied and
			// answered while the syncer waits for the disk.
			r.syncing, r.syncRd = true, rd
			r.syncReq <- struct{}{}
			r.applyReady(&rd)
			break
		}
		r.peers.send(rd.Messages, true)
		r.startSnapshots(&rd)
		r.applyReady(&rd)
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
		if !r.syncing && r.node.HasReady() {
			return r.process()
		}
	}
	if !r.syncing {
		r.maybeSnapshot()
	}
	return nil
}

// startSnapshots starts the snapshot transfers rd asks for.
func (r *Replica) startSnapshots(rd *consensus.Ready) {
	for _, st := range rd.SendSnapshots {
		r.bg.Add(1)
		go r.sendSnapshot(st.To)
	}
}

// applyReady applies rd's chosen entries, answers its read states and
// failed proposals, and writes the answers.
func (r *Replica) applyReady(rd *consensus.Ready) {
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
			r.finish(p, propResult{err: &fs.Error{Kind: fs.KindTimeout,
				Detail: "this replica left the cluster with the write in flight; its outcome is unknown"}})
		}
	}
	// The answers go out now, not after the next Ready's fsync.
	r.flushAnswers()
}

// persist writes what rd asks to persist, and syncs when it must; with
// async, it leaves the sync to the caller and reports so (handed).
func (r *Replica) persist(rd *consensus.Ready, async bool) (handed bool, err error) {
	n := len(rd.Entries)
	if rd.HardState != nil {
		n++
	}
	if n == 0 {
		return false, nil
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
		return false, err
	}
	for i, e := range rd.Entries {
		// A slot can be applied before its entry is written here
		// (Node.Early: chosen by the others while this write waited).
		if e.Slot > r.applied {
			r.entryIndex[e.Slot] = first + uint64(i)
		}
	}
	if rd.HardState != nil {
		r.hs = *rd.HardState
		r.hsIndex = first + uint64(n-1)
	}
	if rd.MustSync {
		if async {
			return true, nil
		}
		return false, r.dd.WAL.Sync()
	}
	return false, nil
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
				r.snapBytes += int64(len(v.Data))
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
			r.finish(p, propResult{err: &fs.Error{Kind: fs.KindTimeout, Detail: "the proposal arrived after the de-duplication window; its outcome is unknown"}})
		}
		return
	}
	r.dedup.add(v.ID)
	var m fs.Mutation
	if err := m.UnmarshalBinary(v.Data); err != nil {
		// Every replica skips the same undecodable value.
		r.log.Error("skipping a chosen value that does not decode", "id", v.ID, "err", err)
		if p != nil {
			r.finish(p, propResult{err: &fs.Error{Kind: fs.KindBadRequest, Detail: err.Error()}})
		}
		return
	}
	m.Time = max(m.Time, r.lastTime)
	r.lastTime = m.Time
	res, err := r.tree.Apply(&m)
	r.leases.applied(r.tree, &m, res, err, now)
	if p != nil {
		r.metrics.committed(p)
		r.finish(p, propResult{res: res, err: err})
	}
}

// maybeSnapshot starts a snapshot when enough slots were applied since the
// last one. The tree is captured here, at exactly r.applied, and written
// by another goroutine while the loop goes on.
func (r *Replica) maybeSnapshot() {
	due := r.applied >= r.snapSlot+r.cfg.SnapshotEvery ||
		(r.cfg.SnapshotBytes > 0 && r.snapBytes >= r.cfg.SnapshotBytes && r.applied > r.snapSlot)
	if r.snapping || !due || time.Now().Before(r.snapRetry) {
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
	r.snapBytes = 0
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
		r.snapBytes = max(r.snapBytes, r.cfg.SnapshotBytes) // still due
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
