package securitytest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/doozerfs/doozerfs/fs"
	"github.com/doozerfs/doozerfs/replica"
	"github.com/doozerfs/doozerfs/wire"
)

// goodClient is a well-behaved client writing and reading in the
// background, timing every round trip.
type goodClient struct {
	c    *wire.Client
	mu   sync.Mutex
	lat  []time.Duration
	errs []error
	stop context.CancelFunc
	done chan struct{}
}

func startGoodClient(t *testing.T, r *replica.Replica, secret string) *goodClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	g := &goodClient{c: mustDial(t, r.Addr(), wire.Options{Secret: secret}), stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(g.done)
		for i := 0; ctx.Err() == nil; i++ {
			rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
			start := time.Now()
			err := setGet(rctx, g.c, fmt.Sprintf("/good/%d", i%16), fmt.Sprint("v", i))
			took := time.Since(start)
			rcancel()
			g.mu.Lock()
			if err != nil && ctx.Err() == nil {
				g.errs = append(g.errs, err)
			} else if err == nil {
				g.lat = append(g.lat, took)
			}
			g.mu.Unlock()
			time.Sleep(5 * time.Millisecond) // a steady, light load
		}
	}()
	t.Cleanup(g.end)
	return g
}

func (g *goodClient) end() {
	g.stop()
	<-g.done
}

// take returns the latencies and errors since the last take.
func (g *goodClient) take() ([]time.Duration, []error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	lat, errs := g.lat, g.errs
	g.lat, g.errs = nil, nil
	return lat, errs
}

func percentile(lat []time.Duration, p float64) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// heapWatch samples the heap in use (of this process: the replica and the
// hostile clients alike) until stopped, keeping the peak.
type heapWatch struct {
	peak atomic.Uint64
	stop chan struct{}
	done chan struct{}
}

func watchHeap() *heapWatch {
	h := &heapWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(h.done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > h.peak.Load() {
				h.peak.Store(ms.HeapInuse)
			}
			select {
			case <-tick.C:
			case <-h.stop:
				return
			}
		}
	}()
	return h
}

func (h *heapWatch) end() uint64 {
	close(h.stop)
	<-h.done
	return h.peak.Load()
}

func heapNow() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

const mib = 1 << 20

// Hand-made msgpack for requests the wire package would never encode.
func mpStr(s string) []byte { return append([]byte{0xa0 | byte(len(s))}, s...) }
func mpUint(v uint32) []byte {
	return binary.BigEndian.AppendUint32([]byte{0xce}, v)
}
func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// requestHead is a map of n+2 fields starting with the tag and the verb.
func requestHead(n int, tag uint32, verb wire.Verb) []byte {
	return cat([]byte{0x80 | byte(n+2)}, mpStr("t"), mpUint(tag), mpStr("v"), mpUint(uint32(verb)))
}

// hostilePayloads are requests built to cost the decoder the most for
// their size, each with the error kind it must get (on its own tag):
// nesting a frame deep, containers and strings that claim more elements or
// bytes than there are, a TXN of tens of thousands of operations, a path
// far over the limit, a body just over --max-body.
func hostilePayloads(maxFrame, maxBody int) []struct {
	name string
	p    []byte
	kind fs.Kind
} {
	type hp = struct {
		name string
		p    []byte
		kind fs.Kind
	}
	var out []hp
	// An unknown key whose value nests as deep as the frame allows.
	deep := cat(requestHead(1, 1, wire.VerbRev), mpStr("z"))
	deep = append(deep, bytes.Repeat([]byte{0x91}, maxFrame-len(deep)-1)...)
	out = append(out, hp{"a frame of nested arrays", append(deep, 0xc0), fs.KindBadRequest})
	// TXN's ops: an array32 claiming 2^32-1 operations.
	out = append(out, hp{"ops claiming 2^32-1 entries", cat(requestHead(1, 2, wire.VerbTxn), mpStr("o"), []byte{0xdd, 0xff, 0xff, 0xff, 0xff}, []byte{0x80}), fs.KindBadRequest})
	// SET's body: a bin32 claiming 4 GiB.
	out = append(out, hp{"a body claiming 4 GiB", cat(requestHead(3, 3, wire.VerbSet), mpStr("p"), mpStr("/x"), mpStr("r"), []byte{0xff}, mpStr("b"), []byte{0xc6, 0xff, 0xff, 0xff, 0xff, 1}), fs.KindBadRequest})
	// A TXN of as many operations as fit, each on a bad path, so that it
	// is refused after decoding (the most allocation per byte).
	op := cat([]byte{0x83}, mpStr("k"), []byte{byte(fs.OpSet)}, mpStr("p"), mpStr("x"), mpStr("r"), []byte{0xff})
	n := (maxFrame - 64) / len(op)
	txn := cat(requestHead(1, 4, wire.VerbTxn), mpStr("o"), binary.BigEndian.AppendUint32([]byte{0xdd}, uint32(n)))
	txn = append(txn, bytes.Repeat(op, n)...)
	out = append(out, hp{fmt.Sprintf("a TXN of %d operations", n), txn, fs.KindBadPath})
	// A path of 64 KiB.
	long := "/" + string(bytes.Repeat([]byte{'a'}, 64<<10))
	out = append(out, hp{"a 64 KiB path", cat(requestHead(1, 5, wire.VerbGet), mpStr("p"), binary.BigEndian.AppendUint32([]byte{0xdb}, uint32(len(long))), []byte(long)), fs.KindBadPath})
	// A body one byte over --max-body.
	set, err := wire.AppendRequest(nil, &wire.Request{Tag: 6, Verb: wire.VerbSet, Path: "/big", Rev: fs.Clobber, Body: make([]byte, maxBody+1)}, maxFrame)
	if err != nil {
		panic(err)
	}
	out = append(out, hp{"a body over --max-body", set[4:], fs.KindTooBig})
	return out
}

// TestHostileClients runs, all at once against one replica: clients that
// send the costliest malformed requests over and over, slow readers that
// open a WATCH on everything and never read, clients that open and drop
// connections in a loop, and a writer of big files that keeps
// the WATCHes busy. A well-behaved client meanwhile keeps getting answers
// in time, the heap stays bounded, and when it is over the slow readers
// have been closed and the replica holds only the good client's
// connection.
func TestHostileClients(t *testing.T) {
	t.Parallel()
	raiseFileLimit(t, 4096)
	cfg := config(t, "hostile")
	cfg.SendTimeout = time.Second
	cfg.HelloTimeout = 2 * time.Second
	// What the big writes below keep in memory is bounded by these (the
	// revisions readable, the log between snapshots) times their size:
	// the writes are allowed, so they are not what this test measures.
	cfg.History = 100
	cfg.SnapshotEvery = 100
	r := start(t, cfg)
	maxFrame := cfg.MaxBody + 64<<10
	good := startGoodClient(t, r, "")
	writer := mustDial(t, r.Addr(), wire.Options{})

	// Normal latency, before the attack.
	time.Sleep(time.Second) // let the good client make its round trips
	before, errs := good.take()
	if len(errs) > 0 {
		t.Fatalf("before the attack: %v", errs)
	}
	base := heapNow()
	heap := watchHeap()

	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var churned, malformed atomic.Int64
	fail := make(chan error, 100)
	report := func(err error) {
		select {
		case fail <- err:
		default:
		}
	}

	// The costliest malformed requests, on four connections.
	payloads := hostilePayloads(maxFrame, cfg.MaxBody)
	for range 4 {
		wg.Go(func() {
			rc := rawDial(t, r.Addr())
			defer rc.nc.Close()
			if _, err := rc.hello(wire.Hello{Kind: wire.ConnClient}); err != nil {
				report(err)
				return
			}
			for ctx.Err() == nil {
				for _, hp := range payloads {
					if err := rc.send(wire.AppendFrame(nil, hp.p)); err != nil {
						report(fmt.Errorf("%s: %v", hp.name, err))
						return
					}
					resp, err := rc.response()
					switch {
					case err != nil:
						report(fmt.Errorf("%s: %v", hp.name, err))
						return
					case resp.Err == nil || resp.Err.Kind != hp.kind:
						report(fmt.Errorf("%s: answered %+v, want %v", hp.name, resp.Err, hp.kind))
						return
					}
					malformed.Add(1)
				}
			}
		})
	}

	// Slow readers: a WATCH on everything, never read.
	var slow []*rawConn
	for range 8 {
		rc := smallBufDial(t, r.Addr())
		if _, err := rc.hello(wire.Hello{Kind: wire.ConnClient}); err != nil {
			t.Fatal(err)
		}
		if err := rc.request(&wire.Request{Tag: 1, Verb: wire.VerbWatch, Path: "/**"}); err != nil {
			t.Fatal(err)
		}
		slow = append(slow, rc)
	}

	// Big writes that the WATCHes must carry.
	wg.Go(func() {
		body := bytes.Repeat([]byte{'w'}, 64<<10)
		for i := 0; ctx.Err() == nil; i++ {
			if _, err := writer.Set(ctx, fmt.Sprintf("/big/%d", i%8), fs.Clobber, body); err != nil && ctx.Err() == nil {
				report(fmt.Errorf("big write: %v", err))
				return
			}
		}
	})

	// Connections opened and dropped in a loop: some say HELLO and ask
	// something, some say nothing, some send half a frame.
	for w := range 4 {
		wg.Go(func() {
			hello := wire.AppendHello(nil, &wire.Hello{Version: wire.ProtocolVersion, Kind: wire.ConnClient})
			req, _ := wire.AppendRequest(nil, &wire.Request{Tag: 1, Verb: wire.VerbRev}, 0)
			for i := 0; ctx.Err() == nil; i++ {
				nc, err := net.DialTimeout("tcp", r.Addr(), 5*time.Second)
				if err != nil {
					report(fmt.Errorf("churn dial: %v", err))
					return
				}
				switch (i + w) % 3 {
				case 0:
					nc.Write(append(append([]byte(nil), hello...), req...))
				case 1:
					nc.Write([]byte{0, 0, 1})
				}
				nc.Close()
				churned.Add(1)
			}
		})
	}

	wg.Wait()
	// The slow readers are closed once what the replica sends them has
	// stalled for SendTimeout; how soon their buffers fill depends on the
	// machine, so the writes go on (bounded) until then.
	deadline := time.Now().Add(20 * time.Second)
	for wireConns(t, r) > 2 && time.Now().Before(deadline) {
		if _, err := writer.Set(testCtx(t), "/big/more", fs.Clobber, bytes.Repeat([]byte{'m'}, 64<<10)); err != nil {
			t.Fatal(err)
		}
	}
	peak := heap.end()
	close(fail)
	for err := range fail {
		t.Error(err)
	}
	during, errs := good.take()
	for _, err := range errs {
		t.Errorf("the good client during the attack: %v", err)
	}
	p50b, p99b := percentile(before, .5), percentile(before, .99)
	p50, p99, worst := percentile(during, .5), percentile(during, .99), percentile(during, 1)
	t.Logf("good client: before %d round trips p50 %v p99 %v; during %d, p50 %v p99 %v max %v",
		len(before), p50b, p99b, len(during), p50, p99, worst)
	t.Logf("%d connections churned, %d malformed requests answered; heap %d MiB before, peak %d MiB",
		churned.Load(), malformed.Load(), base/mib, peak/mib)
	if len(during) < 20 {
		t.Errorf("the good client made only %d round trips in 6 s", len(during))
	}
	if worst > 2*time.Second {
		t.Errorf("a round trip of the good client took %v during the attack", worst)
	}
	// The bound: what the replica may hold is about 8 slow readers × (4
	// MiB queued + a frame) plus the hostile requests being decoded and
	// the big files' history; hundreds of MiB means something buffers
	// without a bound.
	if peak > base+256*mib {
		t.Errorf("heap peaked at %d MiB (from %d MiB)", peak/mib, base/mib)
	}
	// The slow readers were closed (SendTimeout), and the churned
	// connections are all gone.
	for i, rc := range slow {
		if !rc.closedWithin(10 * time.Second) {
			t.Errorf("slow reader %d is still open", i)
		}
	}
	waitFor(t, "only the good clients' connections left", 10*time.Second, func() bool { return wireConns(t, r) <= 2 })
	if err := setGet(testCtx(t), good.c, "/after", "attack"); err != nil {
		t.Fatal(err)
	}
}

// smallBufDial dials with a 4 KiB receive buffer, so that a reader that
// does not read stalls the replica's writes soon.
func smallBufDial(t *testing.T, addr string) *rawConn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		if err != nil {
			return err
		}
		return serr
	}}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

// TestSlowWatchReaderClosed is the regression test of a connection that
// outlived its usefulness: a WATCH whose reader stopped reading ended when
// a write to it timed out, but the connection stayed open, holding what
// had been queued for it (up to 4 MiB) until the reader went away, and
// every later request on it was read and then answered into the void. Now
// the first failed write closes it.
func TestSlowWatchReaderClosed(t *testing.T) {
	t.Parallel()
	cfg := config(t, "slow-reader")
	cfg.SendTimeout = 300 * time.Millisecond
	cfg.History, cfg.SnapshotEvery = 100, 100
	r := start(t, cfg)
	writer := mustDial(t, r.Addr(), wire.Options{})
	ctx := testCtx(t)
	slow := smallBufDial(t, r.Addr())
	if _, err := slow.hello(wire.Hello{Kind: wire.ConnClient}); err != nil {
		t.Fatal(err)
	}
	if err := slow.request(&wire.Request{Tag: 1, Verb: wire.VerbWatch, Path: "/**"}); err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte{'s'}, 64<<10)
	waitFor(t, "the WATCH to start", 10*time.Second, func() bool { return wireConns(t, r) == 2 })
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; wireConns(t, r) > 1; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("the slow reader's connection is still open after %d writes of %d KiB", i, len(body)>>10)
		}
		if _, err := writer.Set(ctx, fmt.Sprintf("/f/%d", i%4), fs.Clobber, body); err != nil {
			t.Fatal(err)
		}
	}
	if !slow.closedWithin(10 * time.Second) {
		t.Error("the replica let go of the connection, but the reader sees it open")
	}
}

// TestConnectionChurn opens and drops 3000 connections from 8 clients at
// once — after HELLO and a request, before HELLO, in the middle of a frame
// — while a well-behaved client keeps getting answers; the replica ends up
// holding only the good client's connection.
func TestConnectionChurn(t *testing.T) {
	t.Parallel()
	r := start(t, config(t, "churn"))
	good := startGoodClient(t, r, "")
	const n, workers = 3000, 8
	var next atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	start := time.Now()
	hello := wire.AppendHello(nil, &wire.Hello{Version: wire.ProtocolVersion, Kind: wire.ConnClient})
	req, _ := wire.AppendRequest(nil, &wire.Request{Tag: 1, Verb: wire.VerbRev}, 0)
	for range workers {
		wg.Go(func() {
			for i := next.Add(1); i <= n; i = next.Add(1) {
				nc, err := net.DialTimeout("tcp", r.Addr(), 5*time.Second)
				if err != nil {
					errc <- err
					return
				}
				switch i % 3 {
				case 0:
					nc.Write(append(append([]byte(nil), hello...), req...))
				case 1:
					nc.Write([]byte{0, 0, 1})
				}
				nc.Close()
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Errorf("churn: %v", err)
	}
	took := time.Since(start)
	lat, errs := good.take()
	for _, err := range errs {
		t.Errorf("the good client during the churn: %v", err)
	}
	t.Logf("%d connections in %v; good client: %d round trips, p99 %v, max %v", n, took.Round(time.Millisecond),
		len(lat), percentile(lat, .99), percentile(lat, 1))
	if worst := percentile(lat, 1); worst > 2*time.Second {
		t.Errorf("a round trip of the good client took %v during the churn", worst)
	}
	waitFor(t, "only the good client's connection left", 10*time.Second, func() bool { return wireConns(t, r) == 1 })
}

// TestPipelinedWritesBounded is the regression test of an unbounded
// backlog: the replica read every request a client pipelined and held it
// in flight (up to --max-inflight, 4096 of them), so one connection that
// sent big writes faster than they commit made it hold them all — a GiB
// and more with 1 MiB bodies. Now, past MaxInflightBytes on a connection,
// the replica stops reading it until requests end, and the client is held
// back by TCP. Every write is still answered.
func TestPipelinedWritesBounded(t *testing.T) {
	t.Parallel()
	cfg := config(t, "pipelined")
	cfg.History, cfg.SnapshotEvery = 20, 20 // what the applied writes keep is not what this measures
	cfg.MaxInflightBytes = 4 << 20
	r := start(t, cfg)
	rc := rawDial(t, r.Addr())
	if _, err := rc.hello(wire.Hello{Kind: wire.ConnClient}); err != nil {
		t.Fatal(err)
	}
	const n = 600
	// One frame, sent n times with the tag changed: the client sends as
	// fast as the replica reads.
	body := bytes.Repeat([]byte{'p'}, 256<<10)
	frame := wire.AppendFrame(nil, cat(requestHead(3, 0, wire.VerbSet), mpStr("p"), mpStr("/p/x"), mpStr("r"), []byte{0xff},
		mpStr("b"), binary.BigEndian.AppendUint32([]byte{0xc6}, uint32(len(body))), body))
	base := heapNow()
	heap := watchHeap()
	sent := make(chan error, 1)
	go func() {
		for i := range n {
			binary.BigEndian.PutUint32(frame[8:], uint32(i+1)) // the tag: length, map, "t", 0xce, then it
			rc.nc.SetWriteDeadline(time.Now().Add(time.Minute))
			if _, err := rc.nc.Write(frame); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	for i := range n {
		rc.nc.SetReadDeadline(time.Now().Add(time.Minute))
		p, err := wire.ReadFrame(rc.br, nil, 0)
		var resp wire.Response
		if err == nil {
			err = wire.DecodeResponse(p, &resp)
		}
		if err != nil || resp.Err != nil {
			t.Fatalf("answer %d: %v %v", i, err, resp.Err)
		}
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	peak := heap.end()
	t.Logf("%d pipelined writes of %d KiB: heap %d MiB before, peak %d MiB", n, len(body)>>10, base/mib, peak/mib)
	// Bounded: the bytes in flight (a few copies of each on their way
	// through consensus) and the writes between snapshots, whatever n is,
	// and the garbage the collector has not yet reclaimed: about 100-150
	// MiB. Without the bound the 150 MiB sent are read and held as fast as
	// they arrive: over 500 MiB of heap when this was written.
	if peak > base+256*mib {
		t.Errorf("heap peaked at %d MiB (from %d MiB)", peak/mib, base/mib)
	}
}
