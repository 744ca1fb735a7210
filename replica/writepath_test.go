package replica

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/doozerfs/doozerfs/fs"
	"github.com/doozerfs/doozerfs/replica/wal"
	"github.com/doozerfs/doozerfs/wire"
)

// Writes on a client connection are proposed by its reading goroutine and
// answered by the loop (server.go proposeWrite, answer). These tests check
// that the protocol's semantics survive that.

// TestPipelinedWritesOnOneConnection pipelines many writes, a CANCEL and a
// failing write on one connection: every tag gets exactly one final
// response, the cancelled write still happens, and the writes are applied
// in the order the connection sent them.
func TestPipelinedWritesOnOneConnection(t *testing.T) {
	r := startReplica(t, testConfig(t, t.TempDir()))
	rc := rawDial(t, r.Addr())
	rc.hello()
	const n = 200
	var b []byte
	var err error
	for i := 1; i <= n; i++ {
		b, err = wire.AppendRequest(b, &wire.Request{Tag: uint32(i), Verb: wire.VerbSet,
			Path: fmt.Sprintf("/p/%d", i), Rev: fs.Clobber, Body: []byte(fmt.Sprint("v", i))}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if i == n/2 {
			b, err = wire.AppendRequest(b, &wire.Request{Tag: 1000, Verb: wire.VerbCancel, Other: uint32(i)}, 0)
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	// Creating an existing file fails in the tree, after consensus.
	b, err = wire.AppendRequest(b, &wire.Request{Tag: 1001, Verb: wire.VerbSet, Path: "/p/1", Rev: 0, Body: []byte("x")}, 0)
	if err != nil {
		t.Fatal(err)
	}
	rc.write(b)
	seen := map[uint32]*wire.Response{}
	for len(seen) < n+2 {
		resp := rc.response()
		if seen[resp.Tag] != nil {
			t.Fatalf("two final responses for tag %d", resp.Tag)
		}
		seen[resp.Tag] = resp
	}
	if resp := seen[1000]; resp == nil || resp.Err != nil {
		t.Fatalf("CANCEL: got %+v, want an empty response", resp)
	}
	if resp := seen[1001]; resp == nil || fs.KindOf(resp.Error()) != fs.KindRevMismatch {
		t.Fatalf("create of an existing file: got %+v, want REV_MISMATCH", resp)
	}
	last := int64(0)
	for i := 1; i <= n; i++ {
		resp := seen[uint32(i)]
		if resp == nil {
			t.Fatalf("no response for tag %d", i)
		}
		if i == n/2 && resp.Err != nil {
			continue // cancelled: the response may be an error
		}
		if resp.Err != nil {
			t.Fatalf("SET tag %d: %v", i, resp.Err)
		}
		if resp.Rev <= last {
			t.Fatalf("SET tag %d applied at rev %d, after rev %d of an earlier SET on the connection", i, resp.Rev, last)
		}
		last = resp.Rev
	}
	// Every write happened, the cancelled one included.
	for i := 1; i <= n; i++ {
		body, _, err := r.Tree().View().Get(fmt.Sprintf("/p/%d", i))
		if err != nil || string(body) != fmt.Sprint("v", i) {
			t.Fatalf("/p/%d: got %q, %v", i, body, err)
		}
	}
	rc.expectRev(2000)
}

// TestWriteTimeoutWhileSyncStalls stalls the WAL's fdatasync: the loop
// keeps running (the syncer waits for the disk), answers the write TIMEOUT
// at the write timeout, and still answers reads; once the disk comes back
// the write, whose outcome was unknown, is applied.
func TestWriteTimeoutWhileSyncStalls(t *testing.T) {
	var stall atomic.Bool
	release := make(chan struct{})
	cfg := testConfig(t, t.TempDir())
	cfg.WriteTimeout = DefaultConfig().Tick * 20
	cfg.TestFaults = &TestFaults{WAL: &wal.Faults{FailSync: func() error {
		if stall.Load() {
			<-release
		}
		return nil
	}}}
	r := startReplica(t, cfg)
	released := false
	t.Cleanup(func() {
		if !released {
			close(release)
		}
	})
	ctx := testCtx(t)
	c := dialReplica(t, r)
	if _, err := c.Set(ctx, "/before", fs.Clobber, []byte("b")); err != nil {
		t.Fatal(err)
	}
	stall.Store(true)
	_, err := c.Set(ctx, "/stalled", fs.Clobber, []byte("s"))
	if fs.KindOf(err) != fs.KindTimeout {
		t.Fatalf("SET while the disk stalls: got %v, want TIMEOUT", err)
	}
	if body, _, err := c.Get(ctx, "/before", 0); err != nil || string(body) != "b" {
		t.Fatalf("GET while the disk stalls: %q, %v", body, err)
	}
	stall.Store(false)
	close(release)
	released = true
	if _, err := c.Set(ctx, "/after", fs.Clobber, []byte("a")); err != nil {
		t.Fatal(err)
	}
	if body, _, err := c.Get(ctx, "/stalled", 0); err != nil || string(body) != "s" {
		t.Fatalf("the timed-out write: got %q, %v; want it applied before the next write", body, err)
	}
}

// BenchmarkServerSet is the write path of one replica end to end: a wire
// client, the server's reading goroutine, the loop (consensus, WAL append
// and fdatasync, apply) and the answer. cpu-ns/op is the process's CPU
// (client included) per SET.
func BenchmarkServerSet(b *testing.B) {
	benchServerSet(b, 1)
}

// BenchmarkServerSetParallel is BenchmarkServerSet with 64 writers sharing
// one connection: batches of writes per fdatasync.
func BenchmarkServerSetParallel(b *testing.B) {
	benchServerSet(b, 64)
}

func benchServerSet(b *testing.B, writers int) {
	r := startReplica(b, testConfig(b, b.TempDir()))
	c := dialReplica(b, r)
	ctx := context.Background()
	body := bytes.Repeat([]byte("v"), 256)
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(max(writers/2, 1))
	start := cpuTime()
	b.ResetTimer()
	if writers == 1 {
		for i := 0; b.Loop(); i++ {
			if _, err := c.Set(ctx, fmt.Sprintf("/b/%d", i%1000), fs.Clobber, body); err != nil {
				b.Fatal(err)
			}
		}
	} else {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := c.Set(ctx, fmt.Sprintf("/b/%d", next.Add(1)%1000), fs.Clobber, body); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}

// BenchmarkClusterSetParallel is the write path through three replicas in
// this process: 48 writers over one connection to each replica, so two
// thirds of the writes are forwarded to the leader. It covers the peer
// links, the group commit on each replica and the answers. cpu-ns/op is
// the CPU of the three replicas and the clients per SET.
func BenchmarkClusterSetParallel(b *testing.B) {
	rs, _ := startCluster(b, 3, &staticDisc{}, nil)
	var cs []*wire.Client
	for _, r := range rs {
		cs = append(cs, dialReplica(b, r))
	}
	ctx := context.Background()
	body := bytes.Repeat([]byte("v"), 256)
	// The first write through each replica waits for it to know the
	// leader.
	for i, c := range cs {
		if _, err := c.Set(ctx, fmt.Sprintf("/b/warm%d", i), fs.Clobber, body); err != nil {
			b.Fatal(err)
		}
	}
	var next, conn atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(24)
	start := cpuTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c := cs[int(conn.Add(1))%len(cs)]
		for pb.Next() {
			if _, err := c.Set(ctx, fmt.Sprintf("/b/%d", next.Add(1)%10000), fs.Clobber, body); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}

// cpuTime is the process's CPU time (user and system) in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
