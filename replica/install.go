package replica

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/doozerfs/doozerfs/consensus"
	"github.com/doozerfs/doozerfs/replica/wal"
)

// step hands a message from a peer to consensus.
func (r *Replica) step(m consensus.Message) {
	if err := r.node.Step(m); err != nil {
		r.log.Debug("consensus refused a message", "type", m.Type.String(), "from", m.From, "err", err)
	}
}

// offer hands a received snapshot to consensus; if it takes it, the next
// Ready installs it.
func (r *Replica) offer(p *pendingInstall) {
	meta := consensus.SnapshotMeta{Slot: p.hdr.Slot, Config: p.hdr.Config}
	if r.pending == nil && r.node.OfferSnapshot(meta) {
		r.pending = p
		r.log.Info("taking a snapshot from a peer", "slot", meta.Slot, "rev", p.tree.Rev())
	} else {
		os.Remove(p.path)
	}
	p.done <- true
}

// install makes the pending snapshot the replica's state: saved under this
// replica's WAL index (the hard state of the same Ready follows it), then
// applied to the tree.
func (r *Replica) install(meta *consensus.SnapshotMeta) error {
	p := r.pending
	r.pending = nil
	if p == nil || p.hdr.Slot != meta.Slot {
		return fmt.Errorf("replica: consensus installs the snapshot of slot %d, which was not received", meta.Slot)
	}
	defer os.Remove(p.path)
	index := r.dd.WAL.NextIndex()
	f, err := os.Open(p.path)
	if err != nil {
		return err
	}
	defer f.Close()
	sr, err := wal.ReadSnapshot(f)
	if err != nil {
		return err
	}
	if _, err := r.dd.Snapshots.Save(index, func(w io.Writer) error {
		_, err := io.Copy(w, sr)
		return err
	}); err != nil {
		return err
	}
	if err := r.tree.Reset(p.tree); err != nil {
		return err
	}
	r.conf = p.hdr.Config
	r.dedup = p.hdr.Dedup
	r.lastTime = max(r.lastTime, p.hdr.LastTime)
	r.applied = p.hdr.Slot
	r.snapSlot = p.hdr.Slot
	r.snapBytes = 0
	r.snapRev.Store(r.tree.Rev())
	prev := r.snapIndex
	r.snapIndex = index
	for s := range r.entryIndex {
		if s <= p.hdr.Slot {
			delete(r.entryIndex, s)
		}
	}
	r.leases.init(r.tree, time.Now())
	r.revN.advance(r.tree.Rev())
	r.slotN.advance(int64(r.applied))
	if n, err := r.dd.WAL.TruncateBefore(prev); err == nil && n > 0 {
		r.log.Debug("WAL truncated after a snapshot install", "segments", n)
	}
	r.log.Info("installed a snapshot from a peer", "slot", p.hdr.Slot, "rev", r.tree.Rev())
	return nil
}
