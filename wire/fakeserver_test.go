package wire

import (
	"bytes"
	"context"
	"errors"
	"net"
	"sync"
	"testing"

	"github.com/doozerfs/doozerfs/fs"
)

// fakeServer serves the client protocol over loopback from a fakeStore,
// one goroutine per request, as a replica would. Tests kill it to make the
// client fail over.
type fakeServer struct {
	store  *fakeStore
	name   string
	policy Policy
	ln     net.Listener

	// hook, if set, runs in each request's goroutine before it is handled
	// and may block; CANCEL requests do not pass through it.
	hook func(ctx context.Context, req *Request)

	// cancelc, if set, receives the target tag of every CANCEL.
	cancelc chan uint32

	mu       sync.Mutex
	conns    map[*Conn]bool
	accepted int
	log      []Request // every request received, bodies dropped
	wg       sync.WaitGroup
}

var snapshotData = bytes.Repeat([]byte("doozerfs snapshot "), 6000)

func startFake(t testing.TB, store *fakeStore, name string) *fakeServer {
	t.Helper()
	f, err := newFake(store, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.kill)
	return f
}

func newFake(store *fakeStore, name string) (*fakeServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	return serveFake(store, name, ln), nil
}

// serveFake serves store on ln until killed.
func serveFake(store *fakeStore, name string, ln net.Listener) *fakeServer {
	f := &fakeServer{store: store, name: name, ln: ln, conns: make(map[*Conn]bool),
		policy: Policy{Cluster: "test", Name: name, ID: 1}}
	f.wg.Add(1)
	go f.acceptLoop()
	return f
}

// StartFakeReplica serves a fresh in-memory store on loopback for the
// package's examples; stop shuts it down.
func StartFakeReplica() (addr string, stop func()) {
	f, err := newFake(newFakeStore(), "example")
	if err != nil {
		panic(err)
	}
	return f.addr(), f.kill
}

func (f *fakeServer) addr() string { return f.ln.Addr().String() }

// kill closes the listener and every connection, and waits for the
// server's goroutines to end.
func (f *fakeServer) kill() {
	f.ln.Close()
	f.mu.Lock()
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

func (f *fakeServer) acceptLoop() {
	defer f.wg.Done()
	for {
		nc, err := f.ln.Accept()
		if err != nil {
			return
		}
		c := NewConn(nc, 0)
		f.mu.Lock()
		f.conns[c] = true
		f.accepted++
		f.mu.Unlock()
		f.wg.Add(1)
		go f.serveConn(c)
	}
}

// requests returns the requests received so far with verb v.
func (f *fakeServer) requests(v Verb) []Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Request
	for _, r := range f.log {
		if r.Verb == v {
			out = append(out, r)
		}
	}
	return out
}

func (f *fakeServer) connections() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.accepted
}

// serveConn runs HELLO, then reads requests until the connection ends.
func (f *fakeServer) serveConn(c *Conn) {
	ctx, cancel := context.WithCancel(context.Background())
	var reqs sync.WaitGroup
	defer func() {
		cancel()
		c.Close()
		reqs.Wait()
		f.mu.Lock()
		delete(f.conns, c)
		f.mu.Unlock()
		f.wg.Done()
	}()
	if _, _, err := Accept(c, &f.policy); err != nil {
		return
	}
	var mu sync.Mutex
	inflight := make(map[uint32]context.CancelFunc)
	for {
		req := new(Request)
		if err := c.ReadRequest(req); err != nil {
			if !errors.As(err, new(*fs.Error)) {
				return
			}
			c.WriteResponse(ErrorResponse(req.Tag, err))
			continue
		}
		f.mu.Lock()
		f.log = append(f.log, Request{Tag: req.Tag, Verb: req.Verb, Path: req.Path, Rev: req.Rev,
			MinRev: req.MinRev, Consistent: req.Consistent, Other: req.Other})
		f.mu.Unlock()
		if req.Verb == VerbCancel {
			if f.cancelc != nil {
				f.cancelc <- req.Other
			}
			mu.Lock()
			if stop := inflight[req.Other]; stop != nil {
				stop()
			}
			mu.Unlock()
			c.WriteResponse(&Response{Tag: req.Tag})
			continue
		}
		rctx, rcancel := context.WithCancel(ctx)
		mu.Lock()
		inflight[req.Tag] = rcancel
		mu.Unlock()
		reqs.Add(1)
		go func() {
			defer reqs.Done()
			f.handle(rctx, c, req)
			mu.Lock()
			delete(inflight, req.Tag)
			mu.Unlock()
			rcancel()
		}()
	}
}

// handle answers one request.
func (f *fakeServer) handle(ctx context.Context, c *Conn, req *Request) {
	if f.hook != nil {
		f.hook(ctx, req)
	}
	if req.Verb.IsRead() {
		if err := f.store.waitRev(ctx, req.MinRev); err != nil {
			c.WriteResponse(&Response{Tag: req.Tag})
			return
		}
	}
	var resp *Response
	switch req.Verb {
	case VerbWatch:
		f.watch(ctx, c, req)
		return
	case VerbSnapshot:
		f.snapshot(c, req)
		return
	case VerbWait:
		resp = f.wait(ctx, req)
	case VerbGet, VerbStat, VerbGetDir:
		resp = f.read(req)
	default:
		resp = f.other(req)
	}
	c.WriteResponse(resp)
}

func (f *fakeServer) read(req *Request) *Response {
	n, rev, err := f.store.node(req.Path)
	if err != nil {
		return &Response{Tag: req.Tag, Rev: rev, Err: AsError(err)}
	}
	f.store.mu.Lock()
	defer f.store.mu.Unlock()
	resp := &Response{Tag: req.Tag, Rev: rev}
	switch {
	case req.Verb == VerbGet && n.dir:
		resp.Err = &fs.Error{Kind: fs.KindIsDir, Path: req.Path}
	case req.Verb == VerbGet:
		resp.Body, resp.Stat = n.body, f.store.stat(req.Path, n)
	case req.Verb == VerbStat:
		resp.Stat = f.store.stat(req.Path, n)
	case !n.dir:
		resp.Err = &fs.Error{Kind: fs.KindNotDir, Path: req.Path}
	default:
		resp.Entries = f.store.children(req.Path)
		if resp.Entries == nil {
			resp.Entries = []fs.DirEntry{}
		}
	}
	return resp
}

// other answers the verbs that neither block nor stream.
func (f *fakeServer) other(req *Request) *Response {
	resp := &Response{Tag: req.Tag}
	var err error
	switch req.Verb {
	case VerbSet:
		resp.Rev, err = f.store.apply([]fs.Op{{Kind: fs.OpSet, Path: req.Path, Rev: req.Rev, Body: req.Body, Lease: req.Lease}})
	case VerbDel:
		resp.Rev, err = f.store.apply([]fs.Op{{Kind: fs.OpDel, Path: req.Path, Rev: req.Rev}})
	case VerbMkdir:
		resp.Rev, err = f.store.apply([]fs.Op{{Kind: fs.OpMkdir, Path: req.Path, Rev: req.Rev}})
	case VerbTxn:
		resp.Rev, err = f.store.apply(req.Ops)
	case VerbRev, VerbNop:
		resp.Rev, _ = f.store.current()
	case VerbWalk:
		resp.Files, resp.Rev = f.store.walk(req.Path)
	case VerbLeaseGrant:
		resp.Lease, resp.TTL = f.store.grant(req.TTL), req.TTL
	case VerbLeaseRenew:
		resp.TTL, err = f.store.lease(req.Lease)
	case VerbLeaseRevoke:
		resp.Rev, err = f.store.revoke(req.Lease)
	case VerbMembers:
		resp.Members = []Member{{Name: f.name, ID: 1, Addr: f.addr(), Role: RoleVoter, State: StateAlive, Leader: true}}
	case VerbSelf:
		resp.Self = &Self{Name: f.name, ID: 1, Addr: f.addr(), Cluster: "test", Role: RoleVoter, Leader: f.name, Version: "fake"}
	}
	if err != nil {
		return &Response{Tag: req.Tag, Err: AsError(err)}
	}
	return resp
}

func (f *fakeServer) wait(ctx context.Context, req *Request) *Response {
	from := req.Rev
	if from <= 0 {
		cur, _ := f.store.current()
		from = cur + 1
	}
	for {
		evs, rev, changed, err := f.store.eventsFrom(from, req.Path)
		switch {
		case err != nil:
			return ErrorResponse(req.Tag, err)
		case len(evs) > 0:
			return &Response{Tag: req.Tag, Rev: rev, Events: evs[:1]}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return &Response{Tag: req.Tag}
		}
	}
}

// watch confirms the watch, then sends every matching revision as one
// batch until the request is cancelled.
func (f *fakeServer) watch(ctx context.Context, c *Conn, req *Request) {
	from := req.Rev
	if from <= 0 {
		cur, _ := f.store.current()
		from = cur + 1
	}
	if _, _, _, err := f.store.eventsFrom(from, req.Path); err != nil {
		c.WriteResponse(ErrorResponse(req.Tag, err))
		return
	}
	c.WriteResponse(&Response{Tag: req.Tag, More: true, Rev: from - 1})
	for {
		evs, rev, changed, _ := f.store.eventsFrom(from, req.Path)
		if len(evs) > 0 {
			c.WriteResponse(&Response{Tag: req.Tag, More: true, Rev: rev, Events: evs})
		}
		from = rev + 1
		select {
		case <-changed:
		case <-ctx.Done():
			c.WriteResponse(&Response{Tag: req.Tag})
			return
		}
	}
}

func (f *fakeServer) snapshot(c *Conn, req *Request) {
	rev, _ := f.store.current()
	c.WriteResponse(&Response{Tag: req.Tag, More: true, Rev: rev, Size: int64(len(snapshotData))})
	const chunk = 32 << 10
	for off := 0; off < len(snapshotData); off += chunk {
		end := min(off+chunk, len(snapshotData))
		c.WriteResponse(&Response{Tag: req.Tag, More: end < len(snapshotData), Body: snapshotData[off:end]})
	}
}
