package consensus

import (
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"testing"
)

// This file is the in-memory harness shared by the scripted scenarios, the
// simulator and the benchmarks: replicas that persist to a model disk, a
// network that can drop, duplicate, reorder and partition, and a checker of
// the safety properties.

// disk models one replica's storage: what is durable and what was written
// but not yet fsynced (lost, or not, on a crash).
type disk struct {
	hs      HardState
	entries map[uint64]Entry
	snap    SnapshotMeta
	snapApp app

	unsyncedHS *HardState
}

// app models the replica's state machine: the applied prefix as a hash chain.
type app struct {
	applied uint64
	hash    uint64
	values  int
}

type testNode struct {
	id   uint64
	node *Node
	disk disk
	app  app
	up   bool
	// offered is snapshot data received and offered, awaiting install.
	offered *app
	// pending is a Ready whose write is not yet durable (cluster.async).
	pending *Ready
}

type envelope struct {
	msg  Message
	snap *snapTransfer
}

type snapTransfer struct {
	from, to uint64
	meta     SnapshotMeta
	data     app
}

type cluster struct {
	tb    testing.TB
	cfg   func(id uint64) Config
	nodes map[uint64]*testNode
	ids   []uint64
	net   []envelope
	cut   map[[2]uint64]bool
	chk   *checker
	// trace, if set, receives a line per event (scripts).
	trace func(format string, args ...any)
	// compactEvery, if > 0, makes replicas snapshot and compact once they
	// applied that many slots past their last snapshot.
	compactEvery uint64
	// onReady, if set, may crash a node while it handles a Ready (before its
	// writes are synced); it returns how many entries survive, or -1.
	crashMidReady func(id uint64, rd *Ready) int
	// async makes replicas handle a Ready that must be synced as the
	// replica's loop does: its write stays pending (not durable, lost by a
	// crash) while the node steps messages and hands out Early work, until
	// a later process completes it.
	async bool
	stats clusterStats
}

// clusterStats counts what a run exercised.
type clusterStats struct {
	leaders, installs, confChanges, reads, dupValues, midReadyCrashes int
}

func (s clusterStats) withDups(d int) clusterStats { s.dupValues = d; return s }

func (s clusterStats) String() string {
	return fmt.Sprintf("%d leaderships, %d snapshot installs, %d membership changes, %d reads answered, %d duplicate applies, %d crashes mid-Ready", s.leaders, s.installs, s.confChanges, s.reads, s.dupValues, s.midReadyCrashes)
}

func newCluster(tb testing.TB, cfg func(id uint64) Config) *cluster {
	return &cluster{tb: tb, cfg: cfg, nodes: map[uint64]*testNode{}, cut: map[[2]uint64]bool{}, chk: newChecker()}
}

func (c *cluster) logf(format string, args ...any) {
	if c.trace != nil {
		c.trace(format, args...)
	}
}

// addNode starts a replica from st (as if its data dir held st).
func (c *cluster) addNode(id uint64, st State) *testNode {
	tn := &testNode{id: id, disk: disk{hs: st.HardState, entries: map[uint64]Entry{}, snap: st.Snapshot}}
	tn.disk.snapApp = app{applied: st.Snapshot.Slot, hash: c.chk.prefixAt(st.Snapshot.Slot)}
	c.nodes[id] = tn
	c.ids = append(c.ids, id)
	slices.Sort(c.ids)
	c.start(tn)
	return tn
}

// start runs New on the node's durable state, as a restart does.
func (c *cluster) start(tn *testNode) {
	st := State{HardState: tn.disk.hs, Snapshot: tn.disk.snap, Applied: tn.disk.snap.Slot}
	slots := make([]uint64, 0, len(tn.disk.entries))
	for s := range tn.disk.entries {
		slots = append(slots, s)
	}
	slices.Sort(slots)
	for _, s := range slots {
		st.Entries = append(st.Entries, tn.disk.entries[s])
	}
	n, err := New(c.cfg(tn.id), st)
	if err != nil {
		c.tb.Fatalf("node %d: New: %v", tn.id, err)
	}
	tn.node, tn.app, tn.up, tn.offered = n, tn.disk.snapApp, true, nil
}

// voters returns a State for a node of a cluster whose founding membership
// is voters (and learners): what a restored cluster starts from.
func votersState(voters, learners []uint64) State {
	m := Membership{Voters: slices.Clone(voters), Learners: slices.Clone(learners)}
	return State{Snapshot: SnapshotMeta{Config: ConfigState{Members: m, Prev: m.clone()}}}
}

// process handles one Ready of node id, as the replica's loop would. It
// reports whether there was one.
func (c *cluster) process(id uint64) bool {
	tn := c.nodes[id]
	if !tn.up {
		return false
	}
	if tn.pending != nil {
		c.early(tn)
		c.completeSync(tn)
		return true
	}
	if !tn.node.HasReady() {
		return false
	}
	rd := tn.node.Ready()
	if l := tn.node.lead; l != nil && !c.chk.ballots[l.ballot] {
		c.chk.ballots[l.ballot] = true
		c.stats.leaders++
	}
	if c.crashMidReady != nil {
		if keep := c.crashMidReady(id, &rd); keep >= 0 {
			for _, e := range rd.Entries[:keep] {
				tn.disk.entries[e.Slot] = e
			}
			c.crash(id, false)
			c.stats.midReadyCrashes++
			return true
		}
	}
	if c.trace != nil && (rd.HardState != nil || len(rd.Entries) > 0) {
		line := fmt.Sprintf("%d: persist", id)
		if hs := rd.HardState; hs != nil {
			line += fmt.Sprintf(" promised=%s commit=%d", hs.Promised, hs.Commit)
		}
		if len(rd.Entries) > 0 {
			line += " " + entriesString(rd.Entries)
		}
		if rd.MustSync {
			line += " (sync)"
		}
		c.logf("%s", line)
	}
	if c.async && rd.MustSync && rd.Snapshot == nil {
		// Sent while the write is under way; the rest once it is durable.
		for _, m := range rd.Messages {
			if !m.Type.NeedsPersist() {
				c.net = append(c.net, envelope{msg: m})
			}
		}
		c.apply(tn, &rd)
		for _, f := range rd.Failed {
			c.chk.failed[f] = true
		}
		c.logf("%d: write pending", id)
		tn.pending = &rd
		return true
	}
	c.persist(tn, &rd)
	for _, m := range rd.Messages {
		c.net = append(c.net, envelope{msg: m})
	}
	c.apply(tn, &rd)
	for _, st := range rd.SendSnapshots {
		// The replica streams its latest durable snapshot.
		c.net = append(c.net, envelope{snap: &snapTransfer{from: id, to: st.To, meta: cloneSnapshot(tn.disk.snap), data: tn.disk.snapApp}})
		c.logf("%d: send snapshot slot=%d to %d", id, tn.disk.snap.Slot, st.To)
	}
	for _, f := range rd.Failed {
		c.chk.failed[f] = true
	}
	tn.node.Advance(rd)
	c.maybeCompact(tn)
	return true
}

// early hands out what the node may do while its write is pending.
func (c *cluster) early(tn *testNode) {
	msgs, committed := tn.node.Early()
	for _, m := range msgs {
		if m.Type.NeedsPersist() {
			c.tb.Fatalf("node %d: Early gave %s, which needs persistence", tn.id, m)
		}
		c.net = append(c.net, envelope{msg: m})
	}
	if len(committed) > 0 {
		c.apply(tn, &Ready{Committed: committed})
	}
}

// completeSync makes the pending write durable and finishes its Ready.
func (c *cluster) completeSync(tn *testNode) {
	rd := tn.pending
	tn.pending = nil
	c.logf("%d: write synced", tn.id)
	c.persist(tn, rd)
	for _, m := range rd.Messages {
		if m.Type.NeedsPersist() {
			c.net = append(c.net, envelope{msg: m})
		}
	}
	for _, st := range rd.SendSnapshots {
		c.net = append(c.net, envelope{snap: &snapTransfer{from: tn.id, to: st.To, meta: cloneSnapshot(tn.disk.snap), data: tn.disk.snapApp}})
	}
	tn.node.Advance(*rd)
	c.maybeCompact(tn)
}

func (c *cluster) persist(tn *testNode, rd *Ready) {
	if rd.Snapshot != nil {
		tn.disk.snap = cloneSnapshot(*rd.Snapshot)
		tn.disk.snapApp = *tn.offered
		for s := range tn.disk.entries {
			if s <= rd.Snapshot.Slot {
				delete(tn.disk.entries, s)
			}
		}
	}
	for _, e := range rd.Entries {
		tn.disk.entries[e.Slot] = e
	}
	if rd.HardState != nil {
		if rd.MustSync {
			tn.disk.hs, tn.disk.unsyncedHS = *rd.HardState, nil
		} else {
			hs := *rd.HardState
			tn.disk.unsyncedHS = &hs
		}
	} else if rd.MustSync && tn.disk.unsyncedHS != nil {
		tn.disk.hs, tn.disk.unsyncedHS = *tn.disk.unsyncedHS, nil
	}
}

func (c *cluster) apply(tn *testNode, rd *Ready) {
	if rd.Snapshot != nil {
		tn.app = *tn.offered
		tn.offered = nil
		c.chk.install(c.tb, tn.id, tn.app)
		c.stats.installs++
		c.logf("%d: installed snapshot slot=%d", tn.id, tn.app.applied)
	}
	if len(rd.Committed) > 0 {
		c.logf("%d: apply %s", tn.id, entriesString(rd.Committed))
	}
	for _, e := range rd.Committed {
		if e.Slot != tn.app.applied+1 {
			c.tb.Fatalf("node %d applied slot %d after %d", tn.id, e.Slot, tn.app.applied)
		}
		tn.app.hash = c.chk.learn(c.tb, tn.id, e, tn.app.hash)
		tn.app.applied = e.Slot
		tn.app.values += len(e.Values)
		if e.Kind == EntryConfig && c.chk.digest[e.Slot] == entryDigest(e) && tn.id == c.ids[0] {
			c.stats.confChanges++
		}
	}
	for _, r := range rd.ReadStates {
		c.logf("%d: read %q at slot %d", tn.id, r.Context, r.Slot)
		c.chk.read(c.tb, tn.id, r)
		c.stats.reads++
	}
}

func (c *cluster) maybeCompact(tn *testNode) {
	if c.compactEvery == 0 || tn.app.applied < tn.disk.snap.Slot+c.compactEvery {
		return
	}
	meta, err := tn.node.Compact(tn.app.applied)
	if errors.Is(err, ErrCompacted) && meta.Slot > tn.app.applied {
		// The node took a snapshot offered while its write was pending;
		// its next Ready installs it. The replica's loop does the same
		// (finishSnapshot tolerates ErrCompacted).
		return
	}
	if err != nil {
		c.tb.Fatalf("node %d: Compact(%d): %v", tn.id, tn.app.applied, err)
	}
	tn.disk.snap, tn.disk.snapApp = meta, tn.app
	for s := range tn.disk.entries {
		if s <= meta.Slot {
			delete(tn.disk.entries, s)
		}
	}
}

// crash stops a node; its unsynced writes are lost unless keepUnsynced.
func (c *cluster) crash(id uint64, keepUnsynced bool) {
	tn := c.nodes[id]
	if keepUnsynced && tn.disk.unsyncedHS != nil {
		tn.disk.hs = *tn.disk.unsyncedHS
	}
	tn.disk.unsyncedHS = nil
	tn.pending = nil // its write was not durable
	tn.up, tn.node = false, nil
	c.logf("%d: crash", id)
}

func (c *cluster) restart(id uint64) {
	c.start(c.nodes[id])
	c.logf("%d: restart", id)
}

// deliver hands envelope i to its destination (unless a partition or a down
// node swallows it) and removes it from the network.
func (c *cluster) deliver(i int) {
	env := c.net[i]
	c.net = slices.Delete(c.net, i, i+1)
	from, to := env.msg.From, env.msg.To
	if env.snap != nil {
		from, to = env.snap.from, env.snap.to
	}
	dst := c.nodes[to]
	if dst == nil || !dst.up || c.cut[[2]uint64{from, to}] {
		if env.snap == nil {
			c.logf("%s (lost)", env.msg)
		}
		if env.snap != nil && c.nodes[from].up {
			c.nodes[from].node.ReportSnapshot(to, false)
		}
		return
	}
	if env.snap != nil {
		if dst.node.OfferSnapshot(env.snap.meta) {
			data := env.snap.data
			dst.offered = &data
		}
		if src := c.nodes[from]; src.up {
			src.node.ReportSnapshot(to, true)
		}
		return
	}
	c.logf("%s", env.msg)
	if err := dst.node.Step(env.msg); err != nil {
		c.tb.Fatalf("node %d: Step(%s): %v", to, env.msg, err)
	}
	if dst.pending != nil {
		c.early(dst)
	}
}

// tickAll ticks every running node once.
func (c *cluster) tickAll() {
	for _, id := range c.ids {
		if tn := c.nodes[id]; tn.up {
			tn.node.Tick()
		}
	}
}

// settle processes and delivers, FIFO, until nothing moves (or limit rounds).
func (c *cluster) settle(limit int) {
	for i := 0; i < limit; i++ {
		moved := false
		for _, id := range c.ids {
			if c.process(id) {
				moved = true
			}
		}
		for len(c.net) > 0 {
			c.deliver(0)
			moved = true
		}
		if !moved {
			return
		}
	}
}

// leaderID returns the running leader with the highest ballot, or 0.
func (c *cluster) leaderID() uint64 {
	var best *testNode
	for _, id := range c.ids {
		tn := c.nodes[id]
		if tn.up && tn.node.role == RoleLeader && (best == nil || best.node.lead.ballot.Less(tn.node.lead.ballot)) {
			best = tn
		}
	}
	if best == nil {
		return 0
	}
	return best.id
}

// checker holds what every replica learned and checks that it agrees.
type checker struct {
	// digest[s] is the digest of the value chosen at slot s; prefix[s] the
	// hash of the whole prefix up to s. Index 0 is the empty prefix.
	digest   []uint64
	prefix   []uint64
	proposed map[ProposalID]uint64 // id -> hash of its data
	chosen   map[ProposalID]bool
	failed   map[ProposalID]bool
	reads    map[string]uint64 // read ctx -> commit of the most advanced node when issued
	dups     int               // values chosen again in a later slot
	ballots  map[Ballot]bool   // ballots that led
}

func newChecker() *checker {
	return &checker{digest: []uint64{0}, prefix: []uint64{0}, proposed: map[ProposalID]uint64{}, chosen: map[ProposalID]bool{}, failed: map[ProposalID]bool{}, reads: map[string]uint64{}, ballots: map[Ballot]bool{}}
}

func hashBytes(b []byte) uint64 {
	h := fnv.New64a()
	h.Write(b)
	return h.Sum64()
}

// entryDigest hashes what an entry means to the application (not the
// ballot it was accepted at).
func entryDigest(e Entry) uint64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d|", e.Kind)
	for _, v := range e.Values {
		fmt.Fprintf(h, "%d.%d:%x|", v.ID.Node, v.ID.Seq, hashBytes(v.Data))
	}
	if e.Kind == EntryConfig {
		fmt.Fprintf(h, "%v|%d|%v|%v", e.Change, e.Base, e.Members.Voters, e.Members.Learners)
	}
	return h.Sum64() | 1
}

func (k *checker) prefixAt(s uint64) uint64 {
	if s < uint64(len(k.prefix)) {
		return k.prefix[s]
	}
	return 0
}

// learn records that node id applied e on top of prefix hash h, checks it
// against every other replica, and returns the new prefix hash.
func (k *checker) learn(tb testing.TB, id uint64, e Entry, h uint64) uint64 {
	d := entryDigest(e)
	switch {
	case e.Slot < uint64(len(k.digest)):
		if k.digest[e.Slot] != d {
			tb.Fatalf("agreement violated: node %d learned %s at slot %d, another replica learned a different value", id, e.short(), e.Slot)
		}
	case e.Slot == uint64(len(k.digest)):
		for _, v := range e.Values {
			if k.chosen[v.ID] {
				k.dups++
			}
		}
		k.digest = append(k.digest, d)
		k.prefix = append(k.prefix, h*1099511628211^d)
	default:
		tb.Fatalf("node %d learned slot %d before slot %d was learned anywhere", id, e.Slot, len(k.digest))
	}
	for _, v := range e.Values {
		want, ok := k.proposed[v.ID]
		if !ok || want != hashBytes(v.Data) {
			tb.Fatalf("validity violated: node %d learned value %v (%q) at slot %d that was never proposed", id, v.ID, v.Data, e.Slot)
		}
		k.chosen[v.ID] = true
	}
	nh := h*1099511628211 ^ d
	if nh != k.prefix[e.Slot] {
		tb.Fatalf("node %d: prefix through slot %d differs from other replicas'", id, e.Slot)
	}
	return nh
}

func (k *checker) install(tb testing.TB, id uint64, a app) {
	if a.applied >= uint64(len(k.prefix)) || k.prefix[a.applied] != a.hash {
		tb.Fatalf("node %d installed a snapshot at slot %d that matches no learned prefix", id, a.applied)
	}
}

// read checks a read index against the writes known chosen when it was
// issued: the index must cover them.
func (k *checker) read(tb testing.TB, id uint64, r ReadState) {
	if want, ok := k.reads[string(r.Context)]; ok && r.Slot < want {
		tb.Fatalf("node %d: read %q got index %d, but slot %d was applied somewhere before the read was issued", id, r.Context, r.Slot, want)
	}
}

func (k *checker) propose(id ProposalID, data []byte) { k.proposed[id] = hashBytes(data) }
