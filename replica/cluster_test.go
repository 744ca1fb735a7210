package replica

import (
	"context"
	"fmt"
	"sync"
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

func TestThreeReplicasStaticDiscovery(t *testing.T) {
	disc := &staticDisc{}
	var rs []*Replica
	for i := range 3 {
		cfg := testConfig(t, t.TempDir())
		cfg.Name = fmt.Sprintf("r%d", i+1)
		cfg.disc = disc
		if i > 0 {
			cfg.Join = []string{rs[0].Addr()}
		}
		r := startReplica(t, cfg)
		disc.set(peerView{ID: r.ID(), Name: cfg.Name, Addr: r.Addr(), Alive: true})
		rs = append(rs, r)
	}
	waitFor(t, "three voters", 20*time.Second, func() bool {
		return rs[0].voterCount() == 3
	})
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
	_ = context.Background
}
