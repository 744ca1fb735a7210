package mount

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"sync"
	"syscall"

	"bazil.org/fuse"
	fusefs "bazil.org/fuse/fs"
)

// server reads the kernel's requests from the FUSE connection and answers
// them with the fsys's nodes and handles, which implement bazil's fusefs
// interfaces.
//
// It replaces bazil's fusefs.Server for one reason: that server starts a
// goroutine for every request, so each one costs a second thread wake-up
// on top of the kernel's, which was most of a cached open here (about
// 140 µs of it). This one answers on the reading goroutine itself the
// requests that never wait for anything (lookups, attributes, read-only
// opens and their reads and releases, forgets, interrupts, polls) and
// starts a goroutine only for the others (anything that may call the
// store, block on a lock held across a store call, or wait for events).
// The inline handlers must never block: see inline.
//
// Node ids are never reused (64 bits are plenty), so a notification can
// never reach the wrong node; a node's id lives from the reply that
// introduced it until the kernel forgets it.
type server struct {
	conn  *fuse.Conn
	fsys  *fsys
	debug func(any) // receives every request and reply, when set

	mu         sync.Mutex
	nodes      map[fuse.NodeID]*served
	ids        map[fusefs.Node]fuse.NodeID
	lastNode   fuse.NodeID
	handles    map[fuse.HandleID]fusefs.Handle
	lastHandle fuse.HandleID
	reqs       map[fuse.RequestID]*inflight

	wg sync.WaitGroup // request goroutines
}

// served is a node the kernel holds, with the number of lookups it has
// not yet forgotten.
type served struct {
	node fusefs.Node
	refs uint64
}

// inflight is a request being answered.
type inflight struct {
	cancel      context.CancelFunc
	interrupted bool
}

func newServer(conn *fuse.Conn, f *fsys) *server {
	s := &server{
		conn:    conn,
		fsys:    f,
		debug:   debugFUSE,
		nodes:   make(map[fuse.NodeID]*served),
		ids:     make(map[fusefs.Node]fuse.NodeID),
		handles: make(map[fuse.HandleID]fusefs.Handle),
		reqs:    make(map[fuse.RequestID]*inflight),
	}
	s.nodes[1] = &served{node: f.root, refs: 1}
	s.ids[f.root] = 1
	s.lastNode = 1
	return s
}

// serve answers requests until the connection ends (unmount).
func (s *server) serve() error {
	defer s.wg.Wait()
	for {
		req, err := s.conn.ReadRequest()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		ctx, fl := s.begin(req)
		if s.inline(req) {
			s.answer(ctx, fl, req)
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.answer(ctx, fl, req)
		}()
	}
}

// begin registers a request, before the next one is read, so that an
// INTERRUPT for it always finds it.
func (s *server) begin(req fuse.Request) (context.Context, *inflight) {
	ctx, cancel := context.WithCancel(context.Background())
	fl := &inflight{cancel: cancel}
	s.mu.Lock()
	s.reqs[req.Hdr().ID] = fl
	s.mu.Unlock()
	return withReqInfo(ctx, req), fl
}

// inline reports whether req is answered on the reading goroutine: only
// requests whose handlers take no lock that is held across a store call
// or a wait. The follower's replays never touch the store.
func (s *server) inline(req fuse.Request) bool {
	if s.fsys.isReplay(req.Hdr()) {
		return true
	}
	switch r := req.(type) {
	case *fuse.LookupRequest, *fuse.GetattrRequest, *fuse.ForgetRequest, *fuse.BatchForgetRequest,
		*fuse.InterruptRequest, *fuse.StatfsRequest, *fuse.GetxattrRequest, *fuse.ListxattrRequest,
		*fuse.AccessRequest, *fuse.PollRequest, *fuse.DestroyRequest:
		return true
	case *fuse.OpenRequest:
		return r.Dir || r.Flags.IsReadOnly() && r.Flags&fuse.OpenTruncate == 0
	case *fuse.ReadRequest:
		return s.readOnly(r.Handle)
	case *fuse.FlushRequest:
		return s.readOnly(r.Handle)
	case *fuse.ReleaseRequest:
		return s.readOnly(r.Handle)
	}
	return false
}

// readOnly reports whether the handle id serves reads that never block: a
// read-only file handle, a directory, or .doozerfs/rev.
func (s *server) readOnly(id fuse.HandleID) bool {
	switch h := s.handleOf(id).(type) {
	case *handle:
		return !h.write
	case *dirHandle, *revHandle:
		return true
	}
	return false
}

// answer answers one request and ends it.
func (s *server) answer(ctx context.Context, fl *inflight, req fuse.Request) {
	hdr := req.Hdr()
	defer func() {
		fl.cancel()
		s.mu.Lock()
		delete(s.reqs, hdr.ID)
		s.mu.Unlock()
	}()
	defer func() {
		if p := recover(); p != nil {
			s.fsys.opts.Logger.Error("mount: a request handler panicked", "req", req.String(), "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			s.fail(req, errno(syscall.EIO))
		}
	}()
	if s.debug != nil {
		s.debug(req)
	}
	var node fusefs.Node
	if hdr.Node != 0 {
		s.mu.Lock()
		if sn := s.nodes[hdr.Node]; sn != nil {
			node = sn.node
		}
		s.mu.Unlock()
		if node == nil {
			s.fail(req, errno(syscall.ESTALE))
			return
		}
	}
	if err := s.dispatch(ctx, req, node); err != nil {
		if errors.Is(err, context.Canceled) {
			s.mu.Lock()
			intr := fl.interrupted
			s.mu.Unlock()
			if intr {
				err = errno(syscall.EINTR)
			}
		}
		s.fail(req, err)
	}
}

// fail answers req with err's errno.
func (s *server) fail(req fuse.Request, err error) {
	if s.debug != nil {
		s.debug(fmt.Sprintf("-> [%v] error %v", req.Hdr().ID, err))
	}
	req.RespondError(err)
}

// replied logs a reply for the debug log.
func (s *server) replied(req fuse.Request, resp any) {
	if s.debug != nil {
		s.debug(fmt.Sprintf("-> [%v] %v", req.Hdr().ID, resp))
	}
}

// save records that the kernel learnt node n through one more lookup
// reply, and returns its id.
func (s *server) save(n fusefs.Node) fuse.NodeID {
	s.mu.Lock()
	defer s.mu.Unlock()
	if nb, ok := n.(node); ok {
		s.fsys.revive(nb.base())
	}
	if id, ok := s.ids[n]; ok {
		s.nodes[id].refs++
		return id
	}
	s.lastNode++
	id := s.lastNode
	s.nodes[id] = &served{node: n, refs: 1}
	s.ids[n] = id
	return id
}

// forget drops n lookups of node id; at zero the kernel no longer holds it.
func (s *server) forget(id fuse.NodeID, n uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sn := s.nodes[id]
	if sn == nil || id == 1 {
		return
	}
	if n > sn.refs {
		n = sn.refs
	}
	sn.refs -= n
	if sn.refs > 0 {
		return
	}
	delete(s.nodes, id)
	delete(s.ids, sn.node)
	if f, ok := sn.node.(fusefs.NodeForgetter); ok {
		f.Forget()
	}
}

// saveHandle registers an open handle and returns its id.
func (s *server) saveHandle(h fusefs.Handle) fuse.HandleID {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastHandle++
	s.handles[s.lastHandle] = h
	return s.lastHandle
}

// handleOf returns the open handle of id, or nil.
func (s *server) handleOf(id fuse.HandleID) fusefs.Handle {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.handles[id]
}

// nodeID returns the id of n if the kernel holds it.
func (s *server) nodeID(n fusefs.Node) (fuse.NodeID, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.ids[n]
	return id, ok
}

// InvalidateNodeData drops the kernel's attributes and pages of n.
func (s *server) InvalidateNodeData(n fusefs.Node) error {
	id, ok := s.nodeID(n)
	if !ok {
		return fuse.ErrNotCached
	}
	return s.conn.InvalidateNode(id, 0, -1)
}

// InvalidateNodeAttr drops the kernel's attributes of n.
func (s *server) InvalidateNodeAttr(n fusefs.Node) error {
	id, ok := s.nodeID(n)
	if !ok {
		return fuse.ErrNotCached
	}
	return s.conn.InvalidateNode(id, 0, 0)
}

// InvalidateEntry drops the kernel's entry name in the directory dir.
func (s *server) InvalidateEntry(dir fusefs.Node, name string) error {
	id, ok := s.nodeID(dir)
	if !ok {
		return fuse.ErrNotCached
	}
	return s.conn.InvalidateEntry(id, name)
}

// NotifyPollWakeup wakes the kernel's pollers of a handle.
func (s *server) NotifyPollWakeup(w fuse.PollWakeup) error {
	return s.conn.NotifyPollWakeup(w)
}
