package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/doozerfs/doozerfs/fs"
	"github.com/doozerfs/doozerfs/replica"
	"github.com/doozerfs/doozerfs/wire"
)

// benchCluster is a cluster of replicas this process started on loopback
// (`bench --local N`): real replicas with their own data directories,
// finding each other by gossip, talking over TCP. The failover workload
// stops and restarts them.
type benchCluster struct {
	dir  string
	cfgs []replica.Config
	rs   []*replica.Replica
}

// startBenchCluster founds a cluster of n replicas and waits until it has
// min(n, 3) voters and a leader.
func startBenchCluster(parent string, n int) (*benchCluster, error) {
	dir, err := os.MkdirTemp(parent, "doozerfs-bench-cluster-")
	if err != nil {
		return nil, err
	}
	c := &benchCluster{dir: dir}
	for i := range n {
		cfg := replica.DefaultConfig()
		cfg.Addr = "127.0.0.1:0"
		cfg.DataDir = filepath.Join(dir, fmt.Sprintf("r%d", i+1))
		cfg.Name = fmt.Sprintf("r%d", i+1)
		cfg.GossipFast = true
		cfg.Version = Version
		if i > 0 {
			cfg.Join = []string{c.rs[0].Addr()}
		}
		r, err := replica.Open(cfg)
		if err != nil {
			c.close()
			return nil, err
		}
		cfg.Addr = r.Addr() // a restart takes the same address
		c.cfgs = append(c.cfgs, cfg)
		c.rs = append(c.rs, r)
	}
	want := min(n, 3)
	if err := c.waitFor(30*time.Second, fmt.Sprintf("%d voters and a leader", want), func() bool {
		voters := 0
		for _, m := range c.rs[0].Members() {
			if m.Role == "voter" {
				voters++
			}
		}
		return voters == want && c.leader() >= 0
	}); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

func (c *benchCluster) addrs() []string {
	out := make([]string, len(c.cfgs))
	for i, cfg := range c.cfgs {
		out[i] = cfg.Addr
	}
	return out
}

// leader returns the index of the replica that leads, or -1.
func (c *benchCluster) leader() int {
	for i, r := range c.rs {
		if r != nil && r.Status().Leader == r.ID() {
			return i
		}
	}
	return -1
}

func (c *benchCluster) waitFor(d time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("bench cluster: no %s after %v", what, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

func (c *benchCluster) close() {
	for _, r := range c.rs {
		if r != nil {
			r.Close()
		}
	}
	os.RemoveAll(c.dir)
}

// runFailover stops the leader, times how long until a write through
// another replica commits, restarts the stopped replica on its data
// directory and waits for it to catch up, FAILOVERS times. The leader is
// stopped as a crash looks to the others: it stops answering (its replica
// closes without handing over leadership).
func runFailover(ctx context.Context, b *benchEnv) (*benchResult, error) {
	c := b.cluster
	var lat []time.Duration
	res := &benchResult{Clients: 1}
	u0, start := usageNow(), time.Now()
	for round := range b.p.failovers {
		li := c.leader()
		if li < 0 {
			if err := c.waitFor(10*time.Second, "leader", func() bool { return c.leader() >= 0 }); err != nil {
				return nil, err
			}
			li = c.leader()
		}
		var others []string
		for i, a := range c.addrs() {
			if i != li {
				others = append(others, a)
			}
		}
		cl, err := b.dialAddrs(ctx, others)
		if err != nil {
			return nil, err
		}
		path := b.path("failover", round)
		if _, err := cl.Set(ctx, path, fs.Clobber, []byte("before")); err != nil {
			cl.Close()
			return nil, err
		}
		t0 := time.Now()
		c.rs[li].Close()
		c.rs[li] = nil
		for {
			wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := cl.Set(wctx, path, fs.Clobber, []byte("after"))
			cancel()
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				cl.Close()
				return nil, ctx.Err()
			}
			res.Errors++ // retried: the write found no leader yet
			if res.FirstErr == "" {
				res.FirstErr = err.Error()
			}
		}
		lat = append(lat, time.Since(t0))
		rev, _ := cl.Rev(ctx)
		cl.Close()
		r, err := replica.Open(c.cfgs[li])
		if err != nil {
			return nil, fmt.Errorf("restarting %s: %w", c.cfgs[li].Name, err)
		}
		c.rs[li] = r
		if err := r.WaitRev(ctx, rev); err != nil {
			return nil, fmt.Errorf("%s did not catch up after its restart: %w", c.cfgs[li].Name, err)
		}
	}
	res.Errors = 0 // retries during a failover are what is measured, not failures
	res.FirstErr = ""
	res.summarize(lat, time.Since(start))
	u0.since(res) // the whole rounds: restarts and catch-up included
	return res, nil
}

// dialAddrs connects one client to the given replicas, in that order.
func (b *benchEnv) dialAddrs(ctx context.Context, addrs []string) (*wire.Client, error) {
	return wire.Dial(ctx, addrs, b.opts)
}
