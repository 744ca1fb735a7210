package replica

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/doozerfs/doozerfs/fs"
	"github.com/doozerfs/doozerfs/wire"
)

// staticDisc stands in for gossip: the test says who is alive.
type staticDisc struct {
	mu    sync.Mutex
	nodes map[uint64]peerView
}

func (d *staticDisc) views() []peerView {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]peerView, 0, len(d.nodes))
	for _, v := range d.nodes {
		out = append(out, v)
	}
	return out
}

func (d *staticDisc) set(v peerView) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.nodes == nil {
		d.nodes = make(map[uint64]peerView)
	}
	d.nodes[v.ID] = v
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startCluster starts n replicas that find each other through disc.
func startCluster(t testing.TB, n int, disc *staticDisc, tweak func(*Config)) ([]*Replica, []Config) {
	t.Helper()
	var rs []*Replica
	var cfgs []Config
	for i := range n {
		cfg := testConfig(t, t.TempDir())
		cfg.Name = fmt.Sprintf("r%d", i+1)
		cfg.disc = disc
		if i > 0 {
			cfg.Join = []string{rs[0].Addr()}
		}
		if tweak != nil {
			tweak(&cfg)
		}
		r := startReplica(t, cfg)
		disc.set(peerView{ID: r.ID(), Name: cfg.Name, Addr: r.Addr(), Alive: true})
		cfg.Addr = r.Addr() // restart on the same address
		rs = append(rs, r)
		cfgs = append(cfgs, cfg)
	}
	want := min(n, 3)
	waitFor(t, fmt.Sprintf("%d voters", want), 30*time.Second, func() bool { return rs[0].voterCount() == want })
	settle(t, rs[0])
	return rs, cfgs
}

// settle waits until the last membership change governs: a change chosen
// at slot s takes effect at s+Alpha, and until then the slots between are
// decided by the membership before it. Growing from one voter to three
// passes through two, and a test that stopped one of those two in that
// window (TestMemberRemoveAndDeadVoterReplaced did, under load) left no
// quorum for those slots: no leader, ever, until it came back. A write
// committed after the change lies past the window.
func settle(t testing.TB, r *Replica) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := r.Nop(ctx); err != nil {
		t.Fatalf("a write after the membership settled: %v", err)
	}
}

func leaderOf(rs []*Replica) *Replica {
	for _, r := range rs {
		if r != nil && !r.closed.Load() && r.leader.Load() == r.id {
			return r
		}
	}
	return nil
}

func TestThreeReplicasStaticDiscovery(t *testing.T) {
	disc := &staticDisc{}
	rs, _ := startCluster(t, 3, disc, nil)
	ctx := testCtx(t)
	c0, err := wire.Dial(ctx, []string{rs[0].Addr()}, wire.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c0.Close()
	rev, err := c0.Set(ctx, "/x", fs.Clobber, []byte("1"))
	if err != nil {
		t.Fatal(err)
	}
	c2, err := wire.Dial(ctx, []string{rs[2].Addr()}, wire.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if err := rs[2].waitRev(ctx, rev); err != nil {
		t.Fatal(err)
	}
	if body, _, err := c2.Get(ctx, "/x", 0); err != nil || string(body) != "1" {
		t.Fatalf("read on r3: %q %v", body, err)
	}
	rev2, err := c2.Set(ctx, "/y", fs.Clobber, []byte("2"))
	if err != nil || rev2 <= rev {
		t.Fatalf("write forwarded from r3: rev %d err %v", rev2, err)
	}
}

func TestLeaderFailoverAndRestartCatchesUp(t *testing.T) {
	disc := &staticDisc{}
	rs, cfgs := startCluster(t, 3, disc, nil)
	ctx := testCtx(t)
	old := leaderOf(rs)
	if old == nil {
		t.Fatal("no leader")
	}
	var i int
	for j, r := range rs {
		if r == old {
			i = j
		}
	}
	if _, err := old.Txn(ctx, []fs.Op{{Kind: fs.OpSet, Path: "/before", Rev: fs.Clobber, Body: []byte("b")}}); err != nil {
		t.Fatal(err)
	}
	old.Close()
	other := rs[(i+1)%3]
	start := time.Now()
	var rev int64
	for {
		wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		var err error
		rev, err = other.Txn(wctx, []fs.Op{{Kind: fs.OpSet, Path: "/after", Rev: fs.Clobber, Body: []byte("a")}})
		cancel()
		if err == nil {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("no write committed %v after the leader died: %v", time.Since(start), err)
		}
	}
	t.Logf("first write after the leader died committed in %v", time.Since(start))
	// The old leader restarts on its data directory and catches up.
	r := startReplica(t, cfgs[i])
	rs[i] = r
	if err := r.waitRev(ctx, rev); err != nil {
		t.Fatalf("restarted replica did not catch up to %d: %v", rev, err)
	}
	if body, _, err := r.tree.View().Get("/after"); err != nil || string(body) != "a" {
		t.Fatalf("restarted replica reads %q %v", body, err)
	}
}

func TestMemberRemoveAndDeadVoterReplaced(t *testing.T) {
	disc := &staticDisc{}
	rs, _ := startCluster(t, 4, disc, func(c *Config) { c.DeadTimeout = 300 * time.Millisecond })
	ctx := testCtx(t)
	// r4 is a learner (voters: 3). Kill a voter that is not the leader: r4
	// replaces it.
	lead := leaderOf(rs)
	var victim *Replica
	for _, r := range rs[:3] {
		if r != lead && lead.consensusStatus().Membership.IsVoter(r.id) {
			victim = r
			break
		}
	}
	if victim == nil {
		t.Fatal("no follower voter to kill")
	}
	victim.Close()
	disc.set(peerView{ID: victim.id, Name: victim.cfg.Name, Addr: victim.Addr(), Alive: false, DeadSince: time.Now()})
	waitFor(t, "the dead voter replaced", 20*time.Second, func() bool {
		m := lead.consensusStatus().Membership
		return len(m.Voters) == 3 && !m.IsVoter(victim.id) && !m.IsLearner(victim.id)
	})
	// members remove: through a follower.
	var follower, target *Replica
	for _, r := range rs {
		if r != lead && r != victim {
			if follower == nil {
				follower = r
			} else {
				target = r
			}
		}
	}
	if err := follower.RemoveMember(ctx, target.cfg.Name); err != nil {
		t.Fatal(err)
	}
	m := lead.consensusStatus().Membership
	if m.IsVoter(target.id) || m.IsLearner(target.id) {
		t.Fatalf("%s still a member: %+v", target.cfg.Name, m)
	}
	if err := follower.RemoveMember(ctx, "nobody"); fs.KindOf(err) != fs.KindNoEnt {
		t.Fatalf("removing an unknown name: %v", err)
	}
	if _, err := follower.Txn(ctx, []fs.Op{{Kind: fs.OpSet, Path: "/still", Rev: fs.Clobber, Body: []byte("ok")}}); err != nil {
		t.Fatalf("write after removal: %v", err)
	}
}

// startGossipCluster starts n replicas that find each other by real
// gossip on loopback, joining through the first.
func startGossipCluster(t *testing.T, n int, tweak func(*Config)) []*Replica {
	t.Helper()
	var rs []*Replica
	for i := range n {
		cfg := testConfig(t, t.TempDir())
		cfg.Name = fmt.Sprintf("g%d", i+1)
		cfg.GossipFast = true
		if i > 0 {
			cfg.Join = []string{rs[0].Addr()}
		}
		if tweak != nil {
			tweak(&cfg)
		}
		rs = append(rs, startReplica(t, cfg))
	}
	want := min(n, 3)
	waitFor(t, fmt.Sprintf("%d voters by gossip", want), 30*time.Second, func() bool { return rs[0].voterCount() == want })
	settle(t, rs[0])
	return rs
}

func TestGossipJoinAndDeadVoterReplaced(t *testing.T) {
	rs := startGossipCluster(t, 4, func(c *Config) { c.DeadTimeout = 500 * time.Millisecond })
	ctx := testCtx(t)
	lead := leaderOf(rs)
	if lead == nil {
		t.Fatal("no leader")
	}
	waitFor(t, "four members", 20*time.Second, func() bool {
		m := lead.consensusStatus().Membership
		return len(m.Voters)+len(m.Learners) == 4
	})
	// /ctl/node lists every member by name.
	waitFor(t, "/ctl/node", 10*time.Second, func() bool {
		ents, err := lead.tree.View().GetDir("/ctl/node")
		return err == nil && len(ents) == 4
	})
	var victim *Replica
	for _, r := range rs {
		if r != lead && lead.consensusStatus().Membership.IsVoter(r.id) {
			victim = r
			break
		}
	}
	// Die without leaving: stop gossip first, then the rest.
	victim.gossip.Shutdown()
	victim.Close()
	waitFor(t, "the dead voter replaced", 30*time.Second, func() bool {
		m := lead.consensusStatus().Membership
		return len(m.Voters) == 3 && !m.IsVoter(victim.id) && !m.IsLearner(victim.id)
	})
	if _, err := lead.Txn(ctx, []fs.Op{{Kind: fs.OpSet, Path: "/after", Rev: fs.Clobber, Body: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "/ctl/node without the dead member", 10*time.Second, func() bool {
		_, err := lead.tree.View().Stat("/ctl/node/" + victim.cfg.Name)
		return fs.KindOf(err) == fs.KindNoEnt
	})
}

// TestIsolatedReplicaRefusesWritesAtOnce: a replica cut off from the
// others holds a write only for NoLeaderGrace after it lost its leader;
// after that it knows it has no quorum and refuses writes at once.
func TestIsolatedReplicaRefusesWritesAtOnce(t *testing.T) {
	disc := &staticDisc{}
	faults := &netFaults{}
	rs, _ := startCluster(t, 3, disc, func(c *Config) {
		c.faults = faults
		c.NoLeaderGrace = 2 * time.Second
	})
	lead := leaderOf(rs)
	var f *Replica
	for _, r := range rs {
		if r != lead {
			f = r
			break
		}
	}
	ids := []uint64{rs[0].id, rs[1].id, rs[2].id}
	faults.isolate(f.id, ids)
	waitFor(t, "the isolated replica to lose its leader", 20*time.Second, func() bool { return f.leader.Load() == 0 })
	if err := f.Writable(); fs.KindOf(err) != fs.KindReadOnly {
		t.Fatalf("Writable on the isolated replica: %v, want READONLY", err)
	}
	ctx := testCtx(t)
	op := []fs.Op{{Kind: fs.OpSet, Path: "/x", Rev: fs.Clobber, Body: []byte("x")}}
	if _, err := f.Txn(ctx, op); fs.KindOf(err) != fs.KindReadOnly {
		t.Fatalf("first write on the isolated replica: %v, want READONLY", err)
	}
	// Past the grace: refused without waiting for a leader (well within a
	// deadline shorter than the grace).
	qctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if _, err := f.Txn(qctx, op); fs.KindOf(err) != fs.KindReadOnly {
		t.Fatalf("second write on the isolated replica: %v, want READONLY at once", err)
	}
	// Reads keep working there.
	if _, err := f.tree.View().GetDir("/"); err != nil {
		t.Fatal(err)
	}
	faults.heal()
	waitFor(t, "a leader again", 20*time.Second, func() bool { return f.leader.Load() != 0 })
	if _, err := f.Txn(ctx, op); err != nil {
		t.Fatalf("write after healing: %v", err)
	}
}

// countingDisc is staticDisc for one replica, counting the membership
// policy's passes (each pass asks for the views once).
type countingDisc struct {
	*staticDisc
	calls atomic.Int64
}

func (d *countingDisc) views() []peerView {
	d.calls.Add(1)
	return d.staticDisc.views()
}

// TestVoterGossipCallsDeadButConsensusHearsIsKept is the chaos harness's
// finding: after a partition longer than --dead-timeout heals, gossip can
// go on reporting a voter dead while it answers consensus again, and the
// leader removed it, shrinking the cluster for nothing. A voter is now
// removed only when gossip says dead and consensus hears nothing.
func TestVoterGossipCallsDeadButConsensusHearsIsKept(t *testing.T) {
	disc := &staticDisc{}
	counters := map[string]*countingDisc{}
	rs, _ := startCluster(t, 3, disc, func(c *Config) {
		c.DeadTimeout = 300 * time.Millisecond
		cd := &countingDisc{staticDisc: disc}
		counters[c.Name] = cd
		c.disc = cd
	})
	lead := leaderOf(rs)
	if lead == nil {
		t.Fatal("no leader")
	}
	var victim *Replica
	for _, r := range rs {
		if r != lead {
			victim = r
			break
		}
	}
	// Gossip calls the victim dead long ago; it still runs and answers.
	disc.set(peerView{ID: victim.id, Name: victim.cfg.Name, Addr: victim.Addr(), Alive: false, DeadSince: time.Now().Add(-time.Hour)})
	lc := counters[lead.cfg.Name]
	start := lc.calls.Load()
	waitFor(t, "25 policy passes on the leader", 30*time.Second, func() bool { return lc.calls.Load() >= start+25 })
	if l := leaderOf(rs); l != lead {
		t.Fatalf("leadership moved during the test (%v): cannot tell", l)
	}
	if m := lead.consensusStatus().Membership; !m.IsVoter(victim.id) || len(m.Voters) != 3 {
		t.Fatalf("a voter consensus still hears was removed on gossip's word: %+v", m)
	}
	// Once consensus hears nothing either, it is removed as before.
	victim.Close()
	waitFor(t, "the silent, gossip-dead voter removed", 20*time.Second, func() bool {
		m := lead.consensusStatus().Membership
		return !m.IsVoter(victim.id) && !m.IsLearner(victim.id)
	})
}
