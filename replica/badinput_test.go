package replica

// Bad input on the wire (docs/protocol.md §1, §3, §5.7): random bytes,
// impossible lengths, empty frames, well-framed messages of the wrong
// shape, requests before HELLO, refused HELLOs, a tag reused while in
// flight, and a thousand idle connections. Each gets an error response or
// a closed connection as the protocol says, and the server goes on serving
// a well-behaved client throughout.

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/doozerfs/doozerfs/fs"
	"github.com/doozerfs/doozerfs/wire"
)

// rawConn is a client connection spoken to byte by byte.
type rawConn struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func rawDial(t *testing.T, addr string) *rawConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (rc *rawConn) write(b []byte) {
	rc.t.Helper()
	rc.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := rc.nc.Write(b); err != nil {
		rc.t.Fatalf("write: %v", err)
	}
}

// frame reads the next frame, waiting up to 10 s.
func (rc *rawConn) frame() ([]byte, error) {
	rc.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	return wire.ReadFrame(rc.br, nil, 0)
}

// response reads the next response.
func (rc *rawConn) response() *wire.Response {
	rc.t.Helper()
	p, err := rc.frame()
	if err != nil {
		rc.t.Fatalf("reading a response: %v", err)
	}
	resp := new(wire.Response)
	if err := wire.DecodeResponse(p, resp); err != nil {
		rc.t.Fatalf("undecodable response %x: %v", p, err)
	}
	return resp
}

// hello sends a client HELLO and checks that it is accepted.
func (rc *rawConn) hello() {
	rc.t.Helper()
	rc.write(wire.AppendHello(nil, &wire.Hello{Version: wire.ProtocolVersion, Kind: wire.ConnClient}))
	if reply := rc.helloReply(); reply.Err != nil {
		rc.t.Fatalf("HELLO refused: %v", reply.Err)
	}
}

func (rc *rawConn) helloReply() *wire.HelloReply {
	rc.t.Helper()
	p, err := rc.frame()
	if err != nil {
		rc.t.Fatalf("reading the HELLO reply: %v", err)
	}
	reply := new(wire.HelloReply)
	if err := wire.DecodeHelloReply(p, reply); err != nil {
		rc.t.Fatalf("undecodable HELLO reply %x: %v", p, err)
	}
	return reply
}

// request sends req.
func (rc *rawConn) request(req *wire.Request) {
	rc.t.Helper()
	b, err := wire.AppendRequest(nil, req, 0)
	if err != nil {
		rc.t.Fatal(err)
	}
	rc.write(b)
}

// frames reads every frame until the server closes the connection (within
// 10 s); it fails the test if the connection is not closed.
func (rc *rawConn) framesUntilClosed() [][]byte {
	rc.t.Helper()
	var frames [][]byte
	for {
		p, err := rc.frame()
		switch {
		case err == nil:
			frames = append(frames, p)
			continue
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
			return frames
		case fs.KindOf(err) == fs.KindBadRequest: // a zero-length frame: not from a server
			rc.t.Fatalf("the server sent an empty frame")
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			rc.t.Fatalf("the server did not close the connection (%d frames read)", len(frames))
		}
		rc.t.Fatalf("reading until the connection closes: %v", err)
	}
}

// expectError reads one response and checks its tag and error kind.
func (rc *rawConn) expectError(what string, tag uint32, kind fs.Kind) {
	rc.t.Helper()
	resp := rc.response()
	if resp.Tag != tag || resp.Err == nil || resp.Err.Kind != kind {
		rc.t.Errorf("%s: got tag %d, error %v; want tag %d, %v", what, resp.Tag, resp.Err, tag, kind)
	}
}

// expectRev checks that the connection still answers requests.
func (rc *rawConn) expectRev(tag uint32) {
	rc.t.Helper()
	rc.request(&wire.Request{Tag: tag, Verb: wire.VerbRev})
	resp := rc.response()
	if resp.Tag != tag || resp.Err != nil {
		rc.t.Fatalf("REV on tag %d: got tag %d, error %v", tag, resp.Tag, resp.Err)
	}
}

// liveClient is a well-behaved client that writes and reads in the
// background for a whole test, and on demand.
type liveClient struct {
	t    *testing.T
	dir  string // the files it writes
	c    *wire.Client
	ops  atomic.Int64
	stop context.CancelFunc
	done chan struct{}
}

var liveClients atomic.Int64

func startLiveClient(t *testing.T, r *Replica) *liveClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	lc := &liveClient{t: t, dir: fmt.Sprintf("/live/%d", liveClients.Add(1)), c: dialReplica(t, r), stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(lc.done)
		for i := 0; ctx.Err() == nil; i++ {
			if err := lc.roundTrip(ctx, fmt.Sprintf("%s/bg%d", lc.dir, i%8), fmt.Sprint("bg ", i)); err != nil {
				if ctx.Err() == nil {
					t.Errorf("background client: %v", err)
				}
				return
			}
		}
	}()
	t.Cleanup(lc.end)
	return lc
}

// roundTrip writes body to path and reads it back.
func (lc *liveClient) roundTrip(ctx context.Context, path, body string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rev, err := lc.c.Set(ctx, path, fs.Clobber, []byte(body))
	if err != nil {
		return fmt.Errorf("set %s: %w", path, err)
	}
	got, st, err := lc.c.Get(ctx, path, 0)
	if err != nil {
		return fmt.Errorf("get %s: %w", path, err)
	}
	if string(got) != body || st.Rev < rev {
		return fmt.Errorf("get %s: %q at rev %d after writing %q at rev %d", path, got, st.Rev, body, rev)
	}
	lc.ops.Add(1)
	return nil
}

// check makes one write and read now, and fails the test if they fail.
func (lc *liveClient) check(what string) {
	lc.t.Helper()
	if err := lc.roundTrip(context.Background(), lc.dir+"/check", what); err != nil {
		lc.t.Fatalf("after %s: %v", what, err)
	}
}

// end stops the background loop.
func (lc *liveClient) end() {
	lc.stop()
	<-lc.done
}

func startBadInputReplica(t *testing.T) *Replica {
	cfg := testConfig(t, t.TempDir())
	cfg.HelloTimeout = time.Minute // the test's raw connections decide when to speak
	return startReplica(t, cfg)
}

// Hand-made msgpack, for messages the wire package would never encode.
func mpMap(n int) []byte      { return []byte{0x80 | byte(n)} }
func mpArr(n int) []byte      { return []byte{0x90 | byte(n)} }
func mpStr(s string) []byte   { return append([]byte{0xa0 | byte(len(s))}, s...) }
func mpUint(v uint8) []byte   { return []byte{0xcc, v} }
func mpNegOne() []byte        { return []byte{0xff} }
func mpFloat(f uint64) []byte { return binary.BigEndian.AppendUint64([]byte{0xcb}, f) }
func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// frameOf is payload with its length prefix.
func frameOf(payload []byte) []byte { return wire.AppendFrame(nil, payload) }

// TestBadFramesKeepConnection sends, after HELLO, frames that the protocol
// answers with an error while keeping the connection open: a zero-length
// frame, messages of the wrong shape or with fields of the wrong type.
func TestBadFramesKeepConnection(t *testing.T) {
	r := startBadInputReplica(t)
	lc := startLiveClient(t, r)
	rc := rawDial(t, r.Addr())
	rc.hello()
	deep := cat(mpMap(3), mpStr("t"), mpUint(11), mpStr("v"), mpUint(uint8(wire.VerbRev)), mpStr("zz"))
	for range 40 {
		deep = append(deep, mpArr(1)...)
	}
	deep = append(deep, 0xc0)
	for _, tc := range []struct {
		name    string
		payload []byte // nil: a zero-length frame
		tag     uint32
		kind    fs.Kind
	}{
		{"zero-length frame", nil, 0, fs.KindBadRequest},
		{`"t" is a string`, cat(mpMap(2), mpStr("t"), mpStr("abc"), mpStr("v"), mpUint(uint8(wire.VerbRev))), 0, fs.KindBadRequest},
		{`"t" is a float`, cat(mpMap(2), mpStr("t"), mpFloat(0x3ff8000000000000), mpStr("v"), mpUint(uint8(wire.VerbRev))), 0, fs.KindBadRequest},
		{`"t" is 0`, cat(mpMap(2), mpStr("t"), mpUint(0), mpStr("v"), mpUint(uint8(wire.VerbRev))), 0, fs.KindBadRequest},
		{"an array, not a map", cat(mpArr(3), mpUint(1), mpUint(2), mpUint(3)), 0, fs.KindBadRequest},
		{"a lone nil", []byte{0xc0}, 0, fs.KindBadRequest},
		{"a map32 claiming 2^32-1 entries", cat([]byte{0xdf, 0xff, 0xff, 0xff, 0xff}, mpStr("t"), mpUint(3)), 0, fs.KindBadRequest},
		{`"p" is an int`, cat(mpMap(3), mpStr("t"), mpUint(5), mpStr("v"), mpUint(uint8(wire.VerbGet)), mpStr("p"), mpUint(7)), 5, fs.KindBadRequest},
		{`"v" is a string`, cat(mpMap(3), mpStr("t"), mpUint(6), mpStr("v"), mpStr("GET"), mpStr("p"), mpStr("/x")), 6, fs.KindBadRequest},
		{`"b" is an int`, cat(mpMap(5), mpStr("t"), mpUint(7), mpStr("v"), mpUint(uint8(wire.VerbSet)), mpStr("p"), mpStr("/x"), mpStr("r"), mpNegOne(), mpStr("b"), mpUint(12)), 7, fs.KindBadRequest},
		{`"c" is 1, not a bool`, cat(mpMap(4), mpStr("t"), mpUint(8), mpStr("v"), mpUint(uint8(wire.VerbGet)), mpStr("p"), mpStr("/x"), mpStr("c"), mpUint(1)), 8, fs.KindBadRequest},
		{`SET without "r"`, cat(mpMap(3), mpStr("t"), mpUint(9), mpStr("v"), mpUint(uint8(wire.VerbSet)), mpStr("p"), mpStr("/x")), 9, fs.KindBadRequest},
		{"bytes after the message", cat(mpMap(2), mpStr("t"), mpUint(10), mpStr("v"), mpUint(uint8(wire.VerbRev)), []byte{0xc0}), 10, fs.KindBadRequest},
		{"nested 40 deep", deep, 11, fs.KindBadRequest},
		{`"p" a str32 of 2^32-1 bytes`, cat(mpMap(3), mpStr("t"), mpUint(12), mpStr("v"), mpUint(uint8(wire.VerbGet)), mpStr("p"), []byte{0xdb, 0xff, 0xff, 0xff, 0xff, 'x'}), 12, fs.KindBadRequest},
		{"unknown verb", cat(mpMap(2), mpStr("t"), mpUint(13), mpStr("v"), mpUint(99)), 13, fs.KindUnknownVerb},
		{"no verb", cat(mpMap(1), mpStr("t"), mpUint(14)), 14, fs.KindUnknownVerb},
		{"CANCEL of tag 0", cat(mpMap(3), mpStr("t"), mpUint(15), mpStr("v"), mpUint(uint8(wire.VerbCancel)), mpStr("x"), mpUint(0)), 15, fs.KindBadRequest},
		{"bad path", cat(mpMap(3), mpStr("t"), mpUint(16), mpStr("v"), mpUint(uint8(wire.VerbGet)), mpStr("p"), mpStr("no/slash")), 16, fs.KindBadPath},
	} {
		if tc.payload == nil {
			rc.write([]byte{0, 0, 0, 0})
		} else {
			rc.write(frameOf(tc.payload))
		}
		rc.expectError(tc.name, tc.tag, tc.kind)
		rc.expectRev(100)
		lc.check(tc.name)
	}
}

// TestBadInputClosesConnection sends what the protocol answers by closing
// the connection: impossible lengths, anything but HELLO first, refused
// HELLOs, a tag reused while in flight.
func TestBadInputClosesConnection(t *testing.T) {
	r := startBadInputReplica(t)
	lc := startLiveClient(t, r)
	addr := r.Addr()

	// A length prefix over the frame limit after HELLO: TOO_BIG on tag 0,
	// then the connection closes (nothing more is read from it).
	for _, n := range []uint32{0xFFFFFFFF, uint32(r.cfg.maxFrame()) + 1} {
		rc := rawDial(t, addr)
		rc.hello()
		rc.write(binary.BigEndian.AppendUint32(nil, n))
		rc.expectError(fmt.Sprintf("length %#x", n), 0, fs.KindTooBig)
		if frames := rc.framesUntilClosed(); len(frames) != 0 {
			t.Errorf("length %#x: %d more frames after TOO_BIG", n, len(frames))
		}
		lc.check(fmt.Sprintf("length %#x", n))
	}

	// Before HELLO, the server only speaks HELLO replies: at most one, with
	// an error, then it closes.
	for _, tc := range []struct {
		name  string
		bytes []byte
	}{
		{"request before HELLO", func() []byte {
			b, _ := wire.AppendRequest(nil, &wire.Request{Tag: 1, Verb: wire.VerbGet, Path: "/live/check"}, 0)
			return b
		}()},
		{"zero-length frame before HELLO", []byte{0, 0, 0, 0}},
		{"length 0xFFFFFFFF before HELLO", []byte{0xff, 0xff, 0xff, 0xff, 1, 2, 3}},
		{"HELLO of version 2", wire.AppendHello(nil, &wire.Hello{Version: 2, Kind: wire.ConnClient})},
		{"HELLO of version 0", frameOf(cat(mpMap(2), mpStr("v"), mpUint(0), mpStr("k"), mpStr("client")))},
		{"HELLO of another cluster", wire.AppendHello(nil, &wire.Hello{Version: wire.ProtocolVersion, Kind: wire.ConnClient, Cluster: "another"})},
		{"HELLO of an unknown kind", wire.AppendHello(nil, &wire.Hello{Version: wire.ProtocolVersion, Kind: "telnet"})},
		{"HELLO with a string version", frameOf(cat(mpMap(2), mpStr("v"), mpStr("1"), mpStr("k"), mpStr("client")))},
		{"HELLO without a kind", frameOf(cat(mpMap(1), mpStr("v"), mpUint(1)))},
	} {
		rc := rawDial(t, addr)
		rc.write(tc.bytes)
		frames := rc.framesUntilClosed()
		if len(frames) > 1 {
			t.Errorf("%s: %d frames before the close", tc.name, len(frames))
		}
		want := strings.HasPrefix(tc.name, "HELLO") || tc.name == "request before HELLO"
		if want && len(frames) == 0 {
			t.Errorf("%s: closed without a HELLO reply", tc.name)
		}
		for _, p := range frames {
			var reply wire.HelloReply
			if err := wire.DecodeHelloReply(p, &reply); err != nil || reply.Err == nil || reply.Err.Kind != fs.KindBadRequest {
				t.Errorf("%s: reply %+v (%v); want a BAD_REQUEST refusal", tc.name, reply, err)
			} else if reply.Cluster != "" || reply.Name != "" {
				t.Errorf("%s: a refusal reveals the cluster %q or name %q", tc.name, reply.Cluster, reply.Name)
			}
		}
		lc.check(tc.name)
	}

	// The Go client reports a refused HELLO.
	if _, err := wire.Dial(context.Background(), []string{addr}, wire.Options{Cluster: "another"}); fs.KindOf(err) != fs.KindBadRequest {
		t.Errorf("dial with another cluster: %v; want BAD_REQUEST", err)
	}

	// A frame cut short by the client's close.
	rc := rawDial(t, addr)
	rc.hello()
	rc.write([]byte{0, 0, 1, 0, 0x82, 0xa1})
	rc.nc.(*net.TCPConn).CloseWrite()
	if frames := rc.framesUntilClosed(); len(frames) != 0 {
		t.Errorf("a frame cut short: %d frames in answer", len(frames))
	}
	lc.check("a frame cut short")
}

// TestConnectionErrorSentBeforeClose reuses the tag of a WATCH in flight,
// or announces a frame over the limit, while writes make the WATCH send
// events: the connection error (tag 0) must reach the client before the
// server closes the connection. Regression: the server queued the error
// behind the WATCH's frames and closed the connection at once, dropping it.
func TestConnectionErrorSentBeforeClose(t *testing.T) {
	r := startBadInputReplica(t)
	lc := startLiveClient(t, r)
	for range 3 { // more writers, more WATCH events
		startLiveClient(t, r)
	}
	for i := range 300 {
		rc := rawDial(t, r.Addr())
		rc.hello()
		rc.request(&wire.Request{Tag: 7, Verb: wire.VerbWatch, Path: "/**"})
		if resp := rc.response(); resp.Tag != 7 || resp.Err != nil || !resp.More {
			t.Fatalf("WATCH: first response %+v", resp)
		}
		want := fs.KindBadRequest
		if i%2 == 0 {
			rc.request(&wire.Request{Tag: 7, Verb: wire.VerbGet, Path: "/live/check"})
		} else {
			want = fs.KindTooBig
			rc.write([]byte{0xff, 0xff, 0xff, 0xff})
		}
		var got *wire.Response
		for _, p := range rc.framesUntilClosed() {
			var resp wire.Response
			if err := wire.DecodeResponse(p, &resp); err != nil {
				t.Fatalf("undecodable response: %v", err)
			}
			switch {
			case got != nil:
				t.Errorf("round %d: a response on tag %d after the connection error", i, resp.Tag)
			case resp.Tag == 0:
				got = &resp
			case resp.Tag != 7:
				t.Errorf("round %d: a response on tag %d", i, resp.Tag)
			}
		}
		if got == nil || got.Err == nil || got.Err.Kind != want {
			t.Fatalf("round %d: connection error %+v; want %v on tag 0 before the close", i, got, want)
		}
	}
	lc.check("connection errors")
}

// TestRandomBytes sends random bytes: before HELLO, after HELLO as a raw
// stream, and after HELLO as well-framed random payloads, for several
// seeds. The server answers with errors or closes, and stays up.
func TestRandomBytes(t *testing.T) {
	r := startBadInputReplica(t)
	lc := startLiveClient(t, r)
	for seed := uint64(1); seed <= 6; seed++ {
		rnd := rand.New(rand.NewPCG(seed, 0xd00d))
		junk := func(n int) []byte {
			b := make([]byte, n)
			for i := range b {
				b[i] = byte(rnd.Uint32())
			}
			return b
		}

		// Before HELLO: nothing back, or a HELLO reply refusing; closed.
		rc := rawDial(t, r.Addr())
		rc.write(junk(16 + rnd.IntN(4096)))
		rc.nc.(*net.TCPConn).CloseWrite()
		frames := rc.framesUntilClosed()
		for _, p := range frames {
			var reply wire.HelloReply
			if err := wire.DecodeHelloReply(p, &reply); err != nil || reply.Err == nil {
				t.Errorf("seed %d, before HELLO: reply %+v (%v); want a refusal", seed, reply, err)
			}
		}
		if len(frames) > 1 {
			t.Errorf("seed %d, before HELLO: %d frames", seed, len(frames))
		}
		lc.check(fmt.Sprintf("seed %d before HELLO", seed))

		// After HELLO, a raw stream: only error responses, then closed.
		rc = rawDial(t, r.Addr())
		rc.hello()
		rc.write(junk(16 + rnd.IntN(4096)))
		rc.nc.(*net.TCPConn).CloseWrite()
		for _, p := range rc.framesUntilClosed() {
			var resp wire.Response
			if err := wire.DecodeResponse(p, &resp); err != nil || resp.Err == nil {
				t.Errorf("seed %d, raw stream after HELLO: response %+v (%v); want an error", seed, resp, err)
			}
		}
		lc.check(fmt.Sprintf("seed %d raw stream", seed))

		// After HELLO, well-framed junk: one error response per frame, and
		// the connection stays open. Half the payloads start like a map,
		// to get further into the decoder.
		rc = rawDial(t, r.Addr())
		rc.hello()
		for i := range 60 {
			p := junk(1 + rnd.IntN(300))
			if i%2 == 0 {
				p[0] = 0x80 | byte(rnd.IntN(16))
			}
			rc.write(frameOf(p))
			resp := rc.response()
			if resp.Err == nil {
				t.Errorf("seed %d, frame %d (%x): answered without an error: %+v", seed, i, p, resp)
			}
		}
		rc.expectRev(1000)
		lc.check(fmt.Sprintf("seed %d framed junk", seed))
	}
}

// raiseFileLimit makes room for n more descriptors, or skips the test.
func raiseFileLimit(t *testing.T, n uint64) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("getrlimit: %v", err)
	}
	if lim.Cur >= n+1024 {
		return
	}
	old := lim
	lim.Cur = min(max(lim.Max, n+1024), n+1024)
	if lim.Cur < n+256 {
		t.Skipf("RLIMIT_NOFILE is %d (hard %d); %d connections need more", old.Cur, old.Max, n)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("cannot raise RLIMIT_NOFILE from %d to %d: %v", old.Cur, lim.Cur, err)
	}
	t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
}

// serverConns is how many connections the replica's server holds.
func serverConns(r *Replica) int {
	r.srv.mu.Lock()
	defer r.srv.mu.Unlock()
	return len(r.srv.conns)
}

// waitConns waits (polling, bounded) until the server holds want
// connections.
func waitConns(t *testing.T, r *Replica, want func(int) bool, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for n := serverConns(r); !want(n); n = serverConns(r) {
		if time.Now().After(deadline) {
			t.Fatalf("the server holds %d connections; want %s", n, what)
		}
		time.Sleep(5 * time.Millisecond) // polling the server's count, not ordering steps
	}
}

// TestThousandIdleConnections holds 1,000 idle connections open at once,
// half of them without HELLO; the server stays up, a client gets prompt
// answers, and every idle connection is still served afterwards.
func TestThousandIdleConnections(t *testing.T) {
	const n = 1000
	raiseFileLimit(t, 2*n+64) // both ends are in this process
	r := startBadInputReplica(t)
	lc := startLiveClient(t, r)
	base := serverConns(r)
	conns := make([]*rawConn, n)
	var wg sync.WaitGroup
	var dialErr atomic.Pointer[error]
	for i := range conns {
		nc, err := net.DialTimeout("tcp", r.Addr(), 10*time.Second)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		rc := &rawConn{t: t, nc: nc, br: bufio.NewReader(nc)}
		conns[i] = rc
		t.Cleanup(func() { nc.Close() })
		if i%2 == 1 {
			wg.Go(func() {
				nc.SetDeadline(time.Now().Add(30 * time.Second))
				if _, err := nc.Write(wire.AppendHello(nil, &wire.Hello{Version: wire.ProtocolVersion, Kind: wire.ConnClient})); err != nil {
					dialErr.Store(&err)
					return
				}
				var reply wire.HelloReply
				p, err := wire.ReadFrame(rc.br, nil, 0)
				if err == nil {
					err = wire.DecodeHelloReply(p, &reply)
				}
				if err == nil && reply.Err != nil {
					err = reply.Err
				}
				if err != nil {
					dialErr.Store(&err)
				}
				nc.SetDeadline(time.Time{})
			})
		}
	}
	wg.Wait()
	if p := dialErr.Load(); p != nil {
		t.Fatalf("HELLO on an idle connection: %v", *p)
	}
	waitConns(t, r, func(c int) bool { return c >= base+n }, fmt.Sprintf("at least %d", base+n))

	// A client still gets answers promptly.
	var slowest time.Duration
	for i := range 20 {
		start := time.Now()
		lc.check(fmt.Sprint("idle connections ", i))
		slowest = max(slowest, time.Since(start))
	}
	if slowest > 2*time.Second {
		t.Errorf("a write and read took %v with %d idle connections", slowest, n)
	}
	t.Logf("with %d idle connections: slowest write+read %v, %d background round trips", n, slowest, lc.ops.Load())

	// Every idle connection was kept and is served: HELLO on those without,
	// a request on the others.
	for i, rc := range conns {
		if i%2 == 0 {
			rc.hello()
		} else {
			rc.expectRev(uint32(i))
		}
	}
	for _, rc := range conns {
		rc.nc.Close()
	}
	waitConns(t, r, func(c int) bool { return c <= base }, fmt.Sprintf("at most %d once the idle ones are closed", base))
	lc.check("closing the idle connections")
}

// TestConnectionLimits: a connection that never says HELLO is closed after
// HelloTimeout, and connections over MaxConns are closed at once; the
// client already connected is served throughout.
func TestConnectionLimits(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.HelloTimeout = 200 * time.Millisecond
	r := startReplica(t, cfg)
	lc := startLiveClient(t, r)
	silent := rawDial(t, r.Addr())
	if frames := silent.framesUntilClosed(); len(frames) != 0 {
		t.Errorf("a silent connection got %d frames", len(frames))
	}
	lc.check("the HELLO timeout")

	cfg = testConfig(t, t.TempDir())
	cfg.HelloTimeout = time.Minute // longer than framesUntilClosed waits
	cfg.MaxConns = 20
	r = startReplica(t, cfg)
	lc = startLiveClient(t, r)
	var held []*rawConn
	for range cfg.MaxConns - serverConns(r) {
		rc := rawDial(t, r.Addr())
		rc.hello()
		held = append(held, rc)
	}
	over := rawDial(t, r.Addr())
	if frames := over.framesUntilClosed(); len(frames) != 0 {
		t.Errorf("a connection over the limit got %d frames", len(frames))
	}
	lc.check("the connection limit")
	for i, rc := range held {
		rc.expectRev(uint32(i + 1))
	}
}
