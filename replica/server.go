package replica

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/doozerfs/doozerfs/fs"
	"github.com/doozerfs/doozerfs/replica/wal"
	"github.com/doozerfs/doozerfs/wire"
)

// server answers the wire protocol on the replica's listener.
type server struct {
	r      *Replica
	ln     net.Listener
	policy wire.Policy

	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	closing bool
	wg      sync.WaitGroup
}

func newServer(r *Replica, ln net.Listener) *server {
	return &server{
		r:  r,
		ln: ln,
		policy: wire.Policy{Cluster: r.cfg.Cluster, Secret: r.cfg.Secret, ROSecret: r.cfg.ROSecret,
			Name: r.cfg.Name, ID: r.id},
		conns: make(map[net.Conn]struct{}),
	}
}

func (s *server) serve() {
	s.wg.Add(1)
	defer s.wg.Done()
	var delay time.Duration
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors or similar: back off and go on.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.r.log.Warn("accept failed", "err", err, "retry_in", delay)
			select {
			case <-time.After(delay):
			case <-s.r.stopc:
				return
			}
			continue
		}
		delay = 0
		s.mu.Lock()
		if s.closing || len(s.conns) >= s.r.cfg.MaxConns {
			full := !s.closing
			s.mu.Unlock()
			if full {
				s.r.log.Warn("connection limit reached; closing a new connection", "limit", s.r.cfg.MaxConns, "remote", nc.RemoteAddr().String())
			}
			nc.Close()
			continue
		}
		s.conns[nc] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.handle(nc)
	}
}

// close stops accepting, closes every connection and waits for their
// goroutines.
func (s *server) close() {
	s.mu.Lock()
	s.closing = true
	for nc := range s.conns {
		nc.Close()
	}
	s.mu.Unlock()
	s.ln.Close()
	s.wg.Wait()
}

func (s *server) handle(raw net.Conn) {
	defer s.r.TrackConn("wire")()
	defer func() {
		// raw, not nc: the map holds the accepted connection, and nc may
		// be its TLS wrapping (deleting that would leak the entry, and
		// the connection limit would fill up with closed connections).
		raw.Close()
		s.mu.Lock()
		delete(s.conns, raw)
		s.mu.Unlock()
		s.wg.Done()
	}()
	// The handshake (TLS and HELLO) must end within HelloTimeout.
	raw.SetDeadline(time.Now().Add(s.r.cfg.HelloTimeout))
	nc := raw
	if s.r.cfg.TLS != nil {
		pc, isTLS, err := sniffTLS(raw)
		if err != nil {
			return
		}
		if !isTLS {
			s.refusePlain(pc)
			return
		}
		nc = tls.Server(pc, s.r.cfg.TLS)
	}
	// A write that fails (SendTimeout ran out: the other side stopped
	// reading) closes the connection, so that it holds nothing queued.
	nc = &sendGuard{Conn: nc, raw: raw}
	c := wire.NewConn(nc, s.r.cfg.maxFrame())
	c.SetWriteTimeout(s.r.cfg.SendTimeout)
	if nc.(*sendGuard).Conn == raw {
		// No TLS: the loop may write answers straight to the socket
		// (TryFlush); a failed write closes it, as sendGuard would.
		c.SetRawConn(raw)
	}
	hello, access, err := wire.Accept(c, &s.policy)
	if err != nil {
		return
	}
	nc.SetDeadline(time.Time{})
	switch hello.Kind {
	case wire.ConnClient:
		s.serveClient(c, nc, access)
	case wire.ConnGossip:
		if s.r.gossipTr != nil {
			s.r.gossipTr.HandleWireConn(c)
		}
	case wire.ConnPeer:
		c2 := wire.NewConn(nc, s.r.peerMaxFrame())
		_ = c
		s.r.servePeer(c2, nc)
	default:
		c.WriteResponse(wire.ErrorResponse(0, &fs.Error{Kind: fs.KindBadRequest,
			Detail: "this replica does not take " + string(hello.Kind) + " connections"}))
	}
}

// sendGuard closes its connection when a write fails: a write that timed
// out leaves the connection useless, and closing it ends the goroutines
// serving it and frees what they queued, instead of keeping them until
// the other side closes. It closes the TCP connection under any TLS, as
// a TLS close would first try to send an alert to a peer that is not
// reading.
type sendGuard struct {
	net.Conn
	raw net.Conn
}

func (g *sendGuard) Write(p []byte) (int, error) {
	n, err := g.Conn.Write(p)
	if err != nil {
		g.raw.Close()
	}
	return n, err
}

// tlsRecordHandshake is the first byte of a TLS connection (the record
// type of the ClientHello). A plain-text HELLO starts with the high byte of
// its length, which is 0.
const tlsRecordHandshake = 0x16

// sniffTLS reads the first byte of nc and says whether the dialler speaks
// TLS; the returned connection reads that byte again.
func sniffTLS(nc net.Conn) (net.Conn, bool, error) {
	var b [1]byte
	if _, err := io.ReadFull(nc, b[:]); err != nil {
		return nil, false, err
	}
	return &prefixConn{Conn: nc, prefix: b[:]}, b[0] == tlsRecordHandshake, nil
}

// prefixConn is a net.Conn whose first reads return prefix.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (p *prefixConn) Read(b []byte) (int, error) {
	if len(p.prefix) > 0 {
		n := copy(b, p.prefix)
		p.prefix = p.prefix[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}

// refusePlain answers a plain-text HELLO on a TLS-only port with a refusal
// the dialler can read (instead of a TLS alert it would take for a broken
// frame), so that a client without TLS configured fails with a clear
// message.
func (s *server) refusePlain(nc net.Conn) {
	c := wire.NewConn(nc, s.r.cfg.maxFrame())
	if _, err := c.ReadFrame(); err != nil {
		return
	}
	s.r.log.Debug("plain-text connection refused on a TLS port", "remote", nc.RemoteAddr().String())
	nc.Write(wire.AppendHelloReply(nil, &wire.HelloReply{Version: wire.ProtocolVersion,
		Err: &fs.Error{Kind: fs.KindBadRequest, Detail: "this replica takes TLS connections only: connect with TLS (--tls-ca)"}}))
}

// clientConn is the state of one client connection.
type clientConn struct {
	s      *server
	c      *wire.Conn
	access wire.Access

	mu       sync.Mutex
	inflight map[uint32]inflight
	watches  int
	bytes    int        // requestSize of the requests in flight
	room     *sync.Cond // on mu: signalled when a request ends
	ended    bool       // the connection's last frame is written: answer nothing more

	flushMark bool // owned by the replica's loop: cc is in its flushq
}

// inflight is a request in flight on a connection: one that runs in a
// goroutine of its own (stop ends it), or a write the loop answers (p).
type inflight struct {
	stop context.CancelFunc
	p    *proposal
}

// serveClient reads requests until the connection ends; each request runs
// in its own goroutine, so many are in flight at once.
func (s *server) serveClient(c *wire.Conn, nc net.Conn, access wire.Access) {
	ctx, cancel := context.WithCancel(context.Background())
	cc := &clientConn{s: s, c: c, access: access, inflight: make(map[uint32]inflight)}
	cc.room = sync.NewCond(&cc.mu)
	var reqs sync.WaitGroup
	defer func() {
		cancel()
		cc.mu.Lock()
		cc.ended = true
		cc.mu.Unlock()
		c.Close()
		reqs.Wait()
	}()
	// lastWord sends a connection error (tag 0) before the close: it stops
	// the requests in flight and waits for them (a while), so that none is
	// writing and the error goes out now as the last frame, instead of
	// queued behind a WATCH's frame and dropped by the close.
	lastWord := func(resp *wire.Response) {
		cancel()
		done := make(chan struct{})
		go func() { reqs.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(lastWordWait):
		}
		// The writes the loop answers are answered no more: this is the
		// last frame.
		cc.mu.Lock()
		cc.ended = true
		cc.mu.Unlock()
		c.WriteResponse(resp)
	}
	var spare *wire.Request
	for {
		cc.mu.Lock()
		// Past MaxInflightBytes, read nothing more until requests end:
		// TCP's flow control then holds the client back, and what the
		// connection costs stays bounded (requests end within the write
		// timeout, or with the connection).
		for cc.bytes >= s.r.cfg.MaxInflightBytes {
			cc.room.Wait()
		}
		idle := len(cc.inflight) == 0
		cc.mu.Unlock()
		if idle {
			nc.SetReadDeadline(time.Now().Add(s.r.cfg.IdleTimeout))
		} else {
			nc.SetReadDeadline(time.Time{})
		}
		// Answers queued by inline go out before a read that would wait.
		if !c.FrameBuffered() {
			c.Flush()
		}
		// A request answered inline or handed to the loop is done with
		// when those return: its struct is reused. One that runs in a
		// goroutine keeps it.
		req := spare
		if req == nil {
			req = new(wire.Request)
		}
		spare = nil
		if err := c.ReadRequest(req); err != nil {
			var fe *fs.Error
			switch {
			case errors.As(err, &fe):
				c.WriteResponse(wire.ErrorResponse(req.Tag, fe))
				continue
			case errors.Is(err, wire.ErrFrameTooBig):
				lastWord(wire.ErrorResponse(0, &fs.Error{Kind: fs.KindTooBig, Detail: err.Error()}))
			}
			return
		}
		if req.Verb == wire.VerbCancel {
			cc.mu.Lock()
			f := cc.inflight[req.Other]
			cc.mu.Unlock()
			switch {
			case f.stop != nil:
				f.stop()
			case f.p != nil:
				// The write still happens (it is proposed); its
				// final response is the cancellation's error, as a
				// write running in a goroutine answers.
				cc.answer(f.p, propResult{err: context.Canceled})
			}
			c.QueueResponse(&wire.Response{Tag: req.Tag})
			continue
		}
		if err := cc.admit(req); err != nil {
			if err.Detail == dupTag {
				lastWord(wire.ErrorResponse(0, err))
				return
			}
			c.WriteResponse(wire.ErrorResponse(req.Tag, err))
			s.r.metrics.request(req.Verb, err)
			continue
		}
		if cc.inline(req) || cc.proposeWrite(ctx, req) {
			spare = req
			continue
		}
		rctx, rcancel := context.WithCancel(ctx)
		size := requestSize(req)
		cc.mu.Lock()
		cc.inflight[req.Tag] = inflight{stop: rcancel}
		cc.bytes += size
		cc.mu.Unlock()
		reqs.Add(1)
		go func() {
			defer reqs.Done()
			cc.run(rctx, req)
			rcancel()
			cc.mu.Lock()
			delete(cc.inflight, req.Tag)
			if req.Verb == wire.VerbWatch || req.Verb == wire.VerbWait {
				cc.watches--
			}
			cc.bytes -= size
			cc.room.Broadcast()
			cc.mu.Unlock()
		}()
	}
}

const dupTag = "a request with this tag is already in flight"

// requestSize is about what a request in flight holds: its bodies and
// paths, and a little for the rest.
func requestSize(req *wire.Request) int {
	n := 256 + len(req.Path) + len(req.Body)
	for i := range req.Ops {
		n += 64 + len(req.Ops[i].Path) + len(req.Ops[i].Body)
	}
	return n
}

// lastWordWait bounds how long a connection error waits for the requests
// in flight to end before it is written.
const lastWordWait = time.Second

// admit checks a request against the connection's limits and access.
func (cc *clientConn) admit(req *wire.Request) *fs.Error {
	cfg := &cc.s.r.cfg
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if _, dup := cc.inflight[req.Tag]; dup {
		return &fs.Error{Kind: fs.KindBadRequest, Detail: dupTag}
	}
	if len(cc.inflight) >= cfg.MaxInflight {
		return &fs.Error{Kind: fs.KindBadRequest, Detail: "too many requests in flight on this connection"}
	}
	if req.Verb == wire.VerbWatch || req.Verb == wire.VerbWait {
		if cc.watches >= cfg.MaxWatches {
			return &fs.Error{Kind: fs.KindBadRequest, Detail: "too many WATCH and WAIT requests open on this connection"}
		}
		cc.watches++
	}
	if !req.Verb.IsRead() && cc.access != wire.AccessWrite {
		return &fs.Error{Kind: fs.KindPermission, Detail: "this connection's secret is read-only"}
	}
	return nil
}

// run answers one request.
func (cc *clientConn) run(ctx context.Context, req *wire.Request) {
	r := cc.s.r
	switch req.Verb {
	case wire.VerbWatch:
		done := r.TrackWatch("wire")
		cc.watch(ctx, req)
		done()
		r.metrics.request(req.Verb, nil) // streams count as ok when they end
		return
	case wire.VerbSnapshot:
		cc.snapshot(ctx, req)
		r.metrics.request(req.Verb, nil)
		return
	}
	var resp *wire.Response
	if req.Verb.IsRead() {
		if err := cc.readBarrier(ctx, req); err != nil {
			cc.c.WriteResponse(wire.ErrorResponse(req.Tag, err))
			r.metrics.request(req.Verb, err)
			return
		}
		resp = cc.read(ctx, req)
	} else {
		resp = cc.write(ctx, req)
	}
	if resp.Err == nil && resp.Rev == 0 && req.Verb != wire.VerbLeaseRenew {
		resp.Rev = r.tree.Rev()
	}
	cc.c.WriteResponse(resp)
	r.metrics.request(req.Verb, resp.Error())
}

// inline answers, in the reading goroutine, a read that needs no waiting:
// GET, STAT, GETDIR and REV at the current revision, once its min-rev is
// applied. It saves a goroutine, a context and a write call per request:
// the answer is queued, and written when no whole request is waiting to be
// read, so pipelined reads share one write.
func (cc *clientConn) inline(req *wire.Request) bool {
	r := cc.s.r
	switch req.Verb {
	case wire.VerbGet, wire.VerbStat, wire.VerbGetDir, wire.VerbRev:
	default:
		return false
	}
	if req.Consistent || req.Rev > 0 || req.MinRev > r.tree.Rev() {
		return false
	}
	resp := cc.read(context.Background(), req)
	if resp.Err == nil && resp.Rev == 0 {
		resp.Rev = r.tree.Rev()
	}
	cc.c.QueueResponse(resp) // written by the flush before the next read that would wait
	r.metrics.request(req.Verb, resp.Error())
	return true
}

// proposeWrite proposes a SET, DEL, MKDIR or TXN from the reading
// goroutine and leaves the answer to the replica's loop, which writes it
// on the connection when the write is applied here (finish, answer): no
// goroutine, context or timer per write. The loop answers TIMEOUT at the
// write timeout; CANCEL and the connection's end stop the waiting, not the
// write.
func (cc *clientConn) proposeWrite(ctx context.Context, req *wire.Request) bool {
	r := cc.s.r
	var ops []fs.Op
	switch req.Verb {
	case wire.VerbSet:
		ops = []fs.Op{{Kind: fs.OpSet, Path: req.Path, Rev: req.Rev, Body: req.Body, Lease: req.Lease}}
	case wire.VerbDel:
		ops = []fs.Op{{Kind: fs.OpDel, Path: req.Path, Rev: req.Rev}}
	case wire.VerbMkdir:
		ops = []fs.Op{{Kind: fs.OpMkdir, Path: req.Path, Rev: req.Rev}}
	case wire.VerbTxn:
		ops = req.Ops
	default:
		return false
	}
	refuse := func(err error) bool {
		cc.c.QueueResponse(wire.ErrorResponse(req.Tag, err))
		r.metrics.request(req.Verb, err)
		return true
	}
	if err := checkWritePaths(req); err != nil {
		return refuse(err)
	}
	if err := r.checkOps(ops); err != nil {
		return refuse(err)
	}
	if r.closed.Load() {
		return refuse(errStopped)
	}
	now := time.Now()
	m := fs.Mutation{Kind: fs.MutTxn, Ops: ops, Time: now.UnixNano()}
	data, err := m.MarshalBinary()
	if err != nil {
		return refuse(&fs.Error{Kind: fs.KindBadRequest, Detail: err.Error()})
	}
	p := &proposal{data: data, start: now, deadline: now.Add(r.cfg.WriteTimeout),
		cc: cc, tag: req.Tag, verb: req.Verb, size: requestSize(req)}
	cc.mu.Lock()
	cc.inflight[req.Tag] = inflight{p: p}
	cc.bytes += p.size
	cc.mu.Unlock()
	if err := r.enqueue(ctx, p); err != nil {
		cc.answer(p, propResult{err: err})
	}
	return true
}

// answer queues the response to a write proposed by proposeWrite, once,
// and ends the request. The loop calls it (through finish, which then
// flushes), and so do CANCEL and a failed enqueue in the reading goroutine
// (whose flush before its next read writes it). It never waits.
func (cc *clientConn) answer(p *proposal, res propResult) {
	if !p.answered.CompareAndSwap(false, true) {
		return
	}
	r := cc.s.r
	var resp *wire.Response
	if res.err != nil {
		resp = wire.ErrorResponse(p.tag, res.err)
	} else {
		resp = &wire.Response{Tag: p.tag, Rev: res.res.Rev}
		if resp.Rev == 0 {
			resp.Rev = r.tree.Rev()
		}
	}
	cc.mu.Lock()
	// Out of inflight before the answer can reach the client, which may
	// then reuse the tag.
	delete(cc.inflight, p.tag)
	cc.bytes -= p.size
	cc.room.Broadcast()
	if !cc.ended {
		cc.c.QueueResponseNoWait(resp)
	}
	cc.mu.Unlock()
	r.metrics.request(p.verb, resp.Error())
}

// readBarrier waits for min-rev and, for a consistent read, the read index.
func (cc *clientConn) readBarrier(ctx context.Context, req *wire.Request) error {
	r := cc.s.r
	if req.Consistent {
		if err := r.waitConsistent(ctx); err != nil {
			return err
		}
	}
	return r.waitRev(ctx, req.MinRev)
}

// view returns the view a read is answered from.
func (cc *clientConn) view(ctx context.Context, rev int64) (*fs.View, error) {
	r := cc.s.r
	if rev <= 0 {
		return r.tree.View(), nil
	}
	if err := r.waitRev(ctx, rev); err != nil {
		return nil, err
	}
	return r.tree.ViewAt(rev)
}

func (cc *clientConn) read(ctx context.Context, req *wire.Request) *wire.Response {
	r := cc.s.r
	resp := &wire.Response{Tag: req.Tag}
	var err error
	switch req.Verb {
	case wire.VerbGet, wire.VerbStat, wire.VerbGetDir, wire.VerbWalk:
		var v *fs.View
		if v, err = cc.view(ctx, req.Rev); err != nil {
			break
		}
		resp.Rev = v.Rev()
		switch req.Verb {
		case wire.VerbGet:
			resp.Body, resp.Stat, err = v.Get(req.Path)
		case wire.VerbStat:
			resp.Stat, err = v.Stat(req.Path)
		case wire.VerbGetDir:
			resp.Entries, err = v.GetDir(req.Path)
			if err == nil && resp.Entries == nil {
				resp.Entries = []fs.DirEntry{}
			}
		case wire.VerbWalk:
			resp.Files, err = cc.walk(v, req.Path)
		}
	case wire.VerbRev:
		resp.Rev = r.tree.Rev()
	case wire.VerbWait:
		return cc.wait(ctx, req)
	case wire.VerbMembers:
		resp.Members = r.members()
	case wire.VerbSelf:
		resp.Self = r.self()
	}
	if err != nil {
		return wire.ErrorResponse(req.Tag, err)
	}
	return resp
}

// walk collects the files matching glob, up to what fits in one frame.
func (cc *clientConn) walk(v *fs.View, glob string) ([]wire.File, error) {
	g, err := fs.CompileGlob(glob)
	if err != nil {
		return nil, err
	}
	limit := cc.c.MaxFrame() - 1024
	size := 0
	files := []wire.File{}
	var over bool
	err = v.Walk(g, func(p string, st fs.Stat, body []byte) bool {
		size += len(p) + len(body) + 64
		if size > limit {
			over = true
			return false
		}
		files = append(files, wire.File{Path: p, Stat: st, Body: body})
		return true
	})
	if err != nil {
		return nil, err
	}
	if over {
		return nil, &fs.Error{Kind: fs.KindTooBig, Path: glob,
			Detail: "the files matching the glob do not fit in one response; walk a narrower glob"}
	}
	return files, nil
}

func (cc *clientConn) write(ctx context.Context, req *wire.Request) *wire.Response {
	r := cc.s.r
	resp := &wire.Response{Tag: req.Tag}
	if err := checkWritePaths(req); err != nil {
		return wire.ErrorResponse(req.Tag, err)
	}
	var err error
	switch req.Verb {
	case wire.VerbSet:
		resp.Rev, err = r.Txn(ctx, []fs.Op{{Kind: fs.OpSet, Path: req.Path, Rev: req.Rev, Body: req.Body, Lease: req.Lease}})
	case wire.VerbDel:
		resp.Rev, err = r.Txn(ctx, []fs.Op{{Kind: fs.OpDel, Path: req.Path, Rev: req.Rev}})
	case wire.VerbMkdir:
		resp.Rev, err = r.Txn(ctx, []fs.Op{{Kind: fs.OpMkdir, Path: req.Path, Rev: req.Rev}})
	case wire.VerbTxn:
		resp.Rev, err = r.Txn(ctx, req.Ops)
	case wire.VerbNop:
		resp.Rev, err = r.Nop(ctx)
	case wire.VerbLeaseGrant:
		resp.Lease, resp.Rev, err = r.LeaseGrant(ctx, req.TTL)
		resp.TTL = req.TTL
	case wire.VerbLeaseRenew:
		resp.TTL, err = r.LeaseRenew(ctx, req.Lease)
	case wire.VerbLeaseRevoke:
		resp.Rev, err = r.LeaseRevoke(ctx, req.Lease)
	case wire.VerbRemove:
		err = r.RemoveMember(ctx, req.Path)
	default:
		err = &fs.Error{Kind: fs.KindUnknownVerb, Detail: req.Verb.String()}
	}
	if err != nil {
		return wire.ErrorResponse(req.Tag, err)
	}
	return resp
}

// checkWritePaths refuses a write with a bad path before it is proposed:
// applying it would refuse it too, but only after consensus had carried,
// logged and kept it (a TXN of as many bad operations as fit in a frame
// cost the replica tens of MiB each).
func checkWritePaths(req *wire.Request) error {
	switch req.Verb {
	case wire.VerbSet, wire.VerbDel, wire.VerbMkdir:
		return fs.ValidPath(req.Path)
	case wire.VerbTxn:
		for i := range req.Ops {
			if err := fs.ValidPath(req.Ops[i].Path); err != nil {
				return err
			}
		}
	}
	return nil
}

// from resolves a WAIT or WATCH start revision: 0 means the next one.
func (r *Replica) from(rev int64) int64 {
	if rev <= 0 {
		return r.tree.Rev() + 1
	}
	return rev
}

func (cc *clientConn) wait(ctx context.Context, req *wire.Request) *wire.Response {
	r := cc.s.r
	g, err := fs.CompileGlob(req.Path)
	if err != nil {
		return wire.ErrorResponse(req.Tag, err)
	}
	from := r.from(req.Rev)
	for {
		cur, changed := r.revN.changed()
		if cur >= from {
			evs, err := r.tree.Events(from, g)
			if err != nil {
				return wire.ErrorResponse(req.Tag, err)
			}
			if len(evs) > 0 {
				return &wire.Response{Tag: req.Tag, Rev: evs[0].Rev, Events: evs[:1]}
			}
			from = cur + 1
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return &wire.Response{Tag: req.Tag}
		case <-r.donec:
			return wire.ErrorResponse(req.Tag, errStopped)
		}
	}
}

// watch streams the events matching the glob from the request's revision
// on, in batches that never split a revision, until cancelled.
func (cc *clientConn) watch(ctx context.Context, req *wire.Request) {
	r := cc.s.r
	c := cc.c
	g, err := fs.CompileGlob(req.Path)
	if err != nil {
		c.WriteResponse(wire.ErrorResponse(req.Tag, err))
		return
	}
	from := r.from(req.Rev)
	if from <= r.tree.Rev() {
		if _, err := r.tree.Events(from, g); err != nil {
			c.WriteResponse(wire.ErrorResponse(req.Tag, err))
			return
		}
	}
	if err := c.WriteResponse(&wire.Response{Tag: req.Tag, More: true, Rev: from - 1}); err != nil {
		return
	}
	limit := c.MaxFrame() / 2
	for {
		cur, changed := r.revN.changed()
		if cur >= from {
			evs, err := r.tree.Events(from, g)
			if err != nil { // fell out of the history window: the client resumes or gives up
				c.WriteResponse(wire.ErrorResponse(req.Tag, err))
				return
			}
			// The loop applies a batch before it announces it: the tree
			// may be past cur. Send up to cur only, or the next round
			// (from cur+1) would send those events again.
			for len(evs) > 0 && evs[len(evs)-1].Rev > cur {
				evs = evs[:len(evs)-1]
			}
			if len(evs) == 0 {
				if err := c.WriteResponse(&wire.Response{Tag: req.Tag, More: true, Rev: cur}); err != nil {
					return
				}
			}
			for len(evs) > 0 {
				n := batchEnd(evs, limit)
				last := evs[n-1].Rev
				rev := last
				if n == len(evs) {
					rev = cur
				}
				if err := c.WriteResponse(&wire.Response{Tag: req.Tag, More: true, Rev: rev, Events: evs[:n]}); err != nil {
					return
				}
				evs = evs[n:]
			}
			from = cur + 1
		}
		select {
		case <-changed:
		case <-ctx.Done():
			c.WriteResponse(&wire.Response{Tag: req.Tag})
			return
		case <-r.donec:
			c.WriteResponse(wire.ErrorResponse(req.Tag, errStopped))
			return
		}
	}
}

// batchEnd returns how many events of evs go in the next response: whole
// revisions, about limit bytes, at least one revision.
func batchEnd(evs []fs.Event, limit int) int {
	size, end := 0, 0
	for i, ev := range evs {
		if i > 0 && ev.Rev != evs[i-1].Rev {
			end = i
			if size > limit {
				return end
			}
		}
		size += len(ev.Path) + len(ev.Body) + 64
	}
	return len(evs)
}

// snapshotChunk is the most a SNAPSHOT response carries.
const snapshotChunk = 256 << 10

// snapshot streams a snapshot of the current state in the format that
// `doozerfs snapshot restore` reads. The state is captured at once and
// staged in a temporary file, because the format starts with its size.
func (cc *clientConn) snapshot(ctx context.Context, req *wire.Request) {
	r := cc.s.r
	c := cc.c
	rev, payload, size, cleanup, err := r.stageSnapshot()
	if err != nil {
		c.WriteResponse(wire.ErrorResponse(req.Tag, err))
		return
	}
	defer cleanup()
	total := size + 44 // header and trailer of the snapshot file format
	if err := c.WriteResponse(&wire.Response{Tag: req.Tag, More: true, Rev: rev, Size: total}); err != nil {
		return
	}
	// Index 1: a restored directory's log starts at 1 (the index of a
	// snapshot is where its replay starts, a fact of one data directory).
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(wal.WriteSnapshotFile(pw, 1, size, payload))
	}()
	defer pr.Close()
	buf := make([]byte, snapshotChunk)
	var sent int64
	for {
		n, err := io.ReadFull(pr, buf)
		if n > 0 {
			sent += int64(n)
			last := sent == total
			if werr := c.WriteResponse(&wire.Response{Tag: req.Tag, More: !last, Body: buf[:n]}); werr != nil || last {
				return
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil || ctx.Err() != nil {
			c.WriteResponse(wire.ErrorResponse(req.Tag, &fs.Error{Kind: fs.KindUnavailable, Detail: "snapshot stream failed"}))
			return
		}
	}
	if sent != total {
		c.WriteResponse(wire.ErrorResponse(req.Tag, &fs.Error{Kind: fs.KindOther, Detail: "snapshot stream was short"}))
	}
}

// stageSnapshot writes the replica snapshot payload of the current state
// to a temporary file in the data directory.
func (r *Replica) stageSnapshot() (rev int64, payload io.Reader, size int64, cleanup func(), err error) {
	capture := r.tree.Capture()
	rev = r.tree.Rev()
	hdr := &snapHeader{Slot: uint64(r.slotN.value()), Dedup: make(dedup)}
	f, err := os.CreateTemp(r.cfg.DataDir, "snapshot-stream-*.tmp")
	if err != nil {
		return 0, nil, 0, nil, err
	}
	cleanup = func() { f.Close(); os.Remove(f.Name()) }
	if err := hdr.write(f); err != nil {
		cleanup()
		return 0, nil, 0, nil, err
	}
	if err := capture(f); err != nil {
		cleanup()
		return 0, nil, 0, nil, err
	}
	size, err = f.Seek(0, io.SeekCurrent)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		cleanup()
		return 0, nil, 0, nil, err
	}
	return rev, f, size, cleanup, nil
}
