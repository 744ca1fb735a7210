package wire

import (
	"bytes"
	"context"
	"net"
	"syscall"
	"testing"

	"github.com/doozerfs/doozerfs/fs"
)

var (
	benchGet     = Request{Tag: 12345, Verb: VerbGet, Path: "/svc/web/config.json", MinRev: 987654}
	benchSet     = Request{Tag: 12345, Verb: VerbSet, Path: "/bench/key-00042", Rev: fs.Clobber, Body: bytes.Repeat([]byte("v"), 256)}
	benchGetResp = Response{Tag: 12345, Rev: 987654, Body: bytes.Repeat([]byte("v"), 256),
		Stat: fs.Stat{Type: fs.TypeFile, Size: 256, Rev: 987000, Time: 1700000000123456789}}
	benchSetResp = Response{Tag: 12345, Rev: 987655}
)

func benchEncodeRequest(b *testing.B, req *Request) {
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = AppendRequest(buf[:0], req, 0)
	}
	b.SetBytes(int64(len(buf)))
}

func benchDecodeRequest(b *testing.B, req *Request) {
	frame := encodeRequest(b, req)
	var got Request
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		if err := DecodeRequest(frame, &got); err != nil {
			b.Fatal(err)
		}
	}
}

func benchEncodeResponse(b *testing.B, resp *Response) {
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = AppendResponse(buf[:0], resp, 0)
	}
	b.SetBytes(int64(len(buf)))
}

func benchDecodeResponse(b *testing.B, resp *Response) {
	frame := encodeResponse(b, resp)
	var got Response
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		if err := DecodeResponse(frame, &got); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeRequestGet(b *testing.B)      { benchEncodeRequest(b, &benchGet) }
func BenchmarkDecodeRequestGet(b *testing.B)      { benchDecodeRequest(b, &benchGet) }
func BenchmarkEncodeRequestSet256(b *testing.B)   { benchEncodeRequest(b, &benchSet) }
func BenchmarkDecodeRequestSet256(b *testing.B)   { benchDecodeRequest(b, &benchSet) }
func BenchmarkEncodeResponseGet256(b *testing.B)  { benchEncodeResponse(b, &benchGetResp) }
func BenchmarkDecodeResponseGet256(b *testing.B)  { benchDecodeResponse(b, &benchGetResp) }
func BenchmarkEncodeResponseSet(b *testing.B)     { benchEncodeResponse(b, &benchSetResp) }
func BenchmarkDecodeResponseSet(b *testing.B)     { benchDecodeResponse(b, &benchSetResp) }
func BenchmarkEncodeResponseWatch16(b *testing.B) { benchEncodeResponse(b, watchBatch(16)) }
func BenchmarkDecodeResponseWatch16(b *testing.B) { benchDecodeResponse(b, watchBatch(16)) }
func BenchmarkDecodeHello(b *testing.B)           { benchDecodeHello(b) }
func BenchmarkEncodeResponseWalk100(b *testing.B) { benchEncodeResponse(b, walkResult(100)) }
func BenchmarkDecodeResponseWalk100(b *testing.B) { benchDecodeResponse(b, walkResult(100)) }
func BenchmarkEncodeRequestTxn8Ops(b *testing.B)  { benchEncodeRequest(b, txnRequest(8)) }
func BenchmarkDecodeRequestTxn8Ops(b *testing.B)  { benchDecodeRequest(b, txnRequest(8)) }
func BenchmarkEncodeRequestCancel(b *testing.B) {
	benchEncodeRequest(b, &Request{Tag: 1, Verb: VerbCancel, Other: 2})
}
func BenchmarkDecodeRequestCancel(b *testing.B) {
	benchDecodeRequest(b, &Request{Tag: 1, Verb: VerbCancel, Other: 2})
}
func BenchmarkEncodeResponseError(b *testing.B)    { benchEncodeResponse(b, benchErrResp) }
func BenchmarkDecodeResponseError(b *testing.B)    { benchDecodeResponse(b, benchErrResp) }
func BenchmarkEncodeResponseMembers5(b *testing.B) { benchEncodeResponse(b, membersResult(5)) }

var benchErrResp = &Response{Tag: 9, Err: &fs.Error{Kind: fs.KindRevMismatch, Path: "/a/b"}, Rev: 100}

func watchBatch(n int) *Response {
	resp := &Response{Tag: 7, More: true, Rev: 1000}
	for i := range n {
		resp.Events = append(resp.Events, fs.Event{Rev: 1000, Path: "/svc/web/node-" + string(rune('a'+i)),
			Kind: fs.EventSet, Body: bytes.Repeat([]byte("x"), 64), Time: 1700000000123456789})
	}
	return resp
}

func walkResult(n int) *Response {
	resp := &Response{Tag: 7, Rev: 1000}
	for i := range n {
		resp.Files = append(resp.Files, File{Path: "/svc/web/node-" + string(rune('a'+i%26)),
			Stat: fs.Stat{Type: fs.TypeFile, Size: 32, Rev: 900}, Body: bytes.Repeat([]byte("x"), 32)})
	}
	return resp
}

func membersResult(n int) *Response {
	resp := &Response{Tag: 7, Rev: 1000}
	for i := range n {
		resp.Members = append(resp.Members, Member{Name: "r" + string(rune('0'+i)), ID: uint64(i + 1),
			Addr: "10.0.0.1:8046", Role: RoleVoter, State: StateAlive, Applied: 1000})
	}
	return resp
}

func txnRequest(n int) *Request {
	req := &Request{Tag: 3, Verb: VerbTxn}
	for i := range n {
		req.Ops = append(req.Ops, fs.Op{Kind: fs.OpSet, Path: "/txn/" + string(rune('a'+i)), Rev: fs.Clobber,
			Body: bytes.Repeat([]byte("x"), 32)})
	}
	return req
}

func benchDecodeHello(b *testing.B) {
	frame := AppendHello(nil, &Hello{Version: 1, Kind: ConnClient, Cluster: "prod", Token: "secret", Name: "cli"})[frameHeader:]
	var h Hello
	b.ReportAllocs()
	for b.Loop() {
		if err := DecodeHello(frame, &h); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkClientGetParallel measures the whole path, client and fake
// server, over loopback: many goroutines share one connection.
func BenchmarkClientGetParallel(b *testing.B) {
	benchClient(b, func(ctx context.Context, c *Client) error {
		_, _, err := c.Get(ctx, "/k", 0)
		return err
	})
}

// BenchmarkClientSetParallel is BenchmarkClientGetParallel for 256-byte SETs.
func BenchmarkClientSetParallel(b *testing.B) {
	body := bytes.Repeat([]byte("v"), 256)
	benchClient(b, func(ctx context.Context, c *Client) error {
		_, err := c.Set(ctx, "/k", fs.Clobber, body)
		return err
	})
}

func benchClient(b *testing.B, op func(context.Context, *Client) error) {
	f, err := newFake(newFakeStore(), "bench")
	if err != nil {
		b.Fatal(err)
	}
	defer f.kill()
	ctx := context.Background()
	c, err := Dial(ctx, []string{f.addr()}, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Set(ctx, "/k", fs.Clobber, []byte("value")); err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(16)
	b.ReportAllocs()
	b.ResetTimer()
	defer reportCPU(b)()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := op(ctx, c); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkWireGetRoundTrip measures the protocol's own cost: the Client,
// the codec and a minimal server that answers from its reading goroutine
// and flushes when its input runs dry, over loopback, 16 callers.
func BenchmarkWireGetRoundTrip(b *testing.B) {
	ctx := context.Background()
	c := inlineClient(b)
	b.SetParallelism(8)
	b.ReportAllocs()
	b.ResetTimer()
	defer reportCPU(b)()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, _, err := c.Get(ctx, "/k", 0); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// inlineClient dials a serveInline server on loopback; both go when the
// benchmark ends.
func inlineClient(b *testing.B) *Client {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go serveInline(ln)
	c, err := Dial(context.Background(), []string{ln.Addr().String()}, Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

// serveInline answers every request with a 256-byte GET answer.
func serveInline(ln net.Listener) {
	nc, err := ln.Accept()
	if err != nil {
		return
	}
	c := NewConn(nc, 0)
	defer c.Close()
	if _, _, err := Accept(c, &Policy{}); err != nil {
		return
	}
	resp := benchGetResp
	var req Request
	for {
		if err := c.ReadRequest(&req); err != nil {
			return
		}
		resp.Tag = req.Tag
		c.QueueResponse(&resp)
		if c.Buffered() == 0 {
			c.Flush()
		}
	}
}

// BenchmarkWireGetSequential is BenchmarkWireGetRoundTrip with one caller
// and one request in flight: the latency of a round trip, where a
// goroutine hand-off per request on either side shows.
func BenchmarkWireGetSequential(b *testing.B) {
	ctx := context.Background()
	c := inlineClient(b)
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		if _, _, err := c.Get(ctx, "/k", 0); err != nil {
			b.Fatal(err)
		}
	}
}

// reportCPU reports the process's CPU time (user and system, every
// goroutine and the kernel's share) per operation as cpu-ns/op: on a
// shared machine it varies less than the wall-clock ns/op.
func reportCPU(b *testing.B) func() {
	start := cpuTime()
	return func() {
		if b.N > 0 {
			b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
		}
	}
}

func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
