package mount

import (
	"context"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"time"

	"bazil.org/fuse"
	fusefs "bazil.org/fuse/fs"
	"bazil.org/fuse/fuseutil"
)

// dirHandle is an open directory: its listing, encoded at the first read
// (and again when a reader rewinds to 0).
type dirHandle struct {
	node fusefs.Node

	mu   sync.Mutex
	data []byte
}

var _ fusefs.Handle = (*dirHandle)(nil)

// dispatch answers req, addressed to node (nil for requests about no
// node), or returns the error to answer it with.
func (s *server) dispatch(ctx context.Context, req fuse.Request, node fusefs.Node) (err error) {
	if obs := s.fsys.opts.Observe; obs != nil {
		defer func(start time.Time) { obs(opName(req), err, time.Since(start)) }(time.Now())
	}
	switch r := req.(type) {
	case *fuse.LookupRequest:
		return s.lookup(ctx, r, node)
	case *fuse.GetattrRequest:
		return s.getattr(ctx, r, node)
	case *fuse.SetattrRequest:
		return s.setattr(ctx, r, node)
	case *fuse.OpenRequest:
		return s.open(ctx, r, node)
	case *fuse.CreateRequest:
		return s.create(ctx, r, node)
	case *fuse.ReadRequest:
		return s.read(ctx, r)
	case *fuse.WriteRequest:
		return s.write(ctx, r)
	case *fuse.FlushRequest:
		return s.flush(ctx, r)
	case *fuse.ReleaseRequest:
		return s.release(ctx, r)
	case *fuse.FsyncRequest:
		n, ok := node.(fusefs.NodeFsyncer)
		if !ok {
			return errno(syscall.ENOSYS)
		}
		return s.ok(r, n.Fsync(ctx, r), r.Respond)
	case *fuse.MkdirRequest:
		return s.mkdir(ctx, r, node)
	case *fuse.RemoveRequest:
		n, ok := node.(fusefs.NodeRemover)
		if !ok {
			return errno(syscall.EPERM)
		}
		return s.ok(r, n.Remove(ctx, r), r.Respond)
	case *fuse.RenameRequest:
		return s.rename(ctx, r, node)
	case *fuse.SymlinkRequest, *fuse.LinkRequest, *fuse.MknodRequest:
		return s.makeNode(ctx, req, node)
	case *fuse.ReadlinkRequest:
		return errno(syscall.EINVAL)
	case *fuse.GetxattrRequest:
		return s.getxattr(ctx, r, node)
	case *fuse.ListxattrRequest:
		return s.listxattr(ctx, r, node)
	case *fuse.SetxattrRequest:
		n, ok := node.(fusefs.NodeSetxattrer)
		if !ok {
			return errno(syscall.EOPNOTSUPP)
		}
		return s.ok(r, n.Setxattr(ctx, r), r.Respond)
	case *fuse.RemovexattrRequest:
		n, ok := node.(fusefs.NodeRemovexattrer)
		if !ok {
			return fuse.ErrNoXattr
		}
		return s.ok(r, n.Removexattr(ctx, r), r.Respond)
	case *fuse.ForgetRequest:
		s.forget(r.Hdr().Node, r.N)
		r.Respond()
	case *fuse.BatchForgetRequest:
		for _, it := range r.Forget {
			s.forget(it.NodeID, it.N)
		}
		r.Respond()
	case *fuse.InterruptRequest:
		s.interrupt(r.IntrID)
		r.Respond()
	case *fuse.StatfsRequest:
		resp := &fuse.StatfsResponse{}
		if err := s.fsys.Statfs(ctx, r, resp); err != nil {
			return err
		}
		r.Respond(resp)
	case *fuse.AccessRequest:
		r.Respond()
	case *fuse.PollRequest:
		return s.poll(ctx, r, node)
	case *fuse.DestroyRequest:
		r.Respond()
	case *fuse.NotifyReply:
		// Only NotifyRetrieve expects replies, and it is never used.
	case *fuse.LockRequest, *fuse.LockWaitRequest, *fuse.UnlockRequest, *fuse.QueryLockRequest, *fuse.FAllocateRequest:
		return errno(syscall.EOPNOTSUPP)
	default:
		// ENOSYS tells the kernel never to send this kind again
		// (RENAME2 flags, which bazil does not decode, among them).
		return errno(syscall.ENOSYS)
	}
	return nil
}

// opName is the name of req's op for Options.Observe: "lookup" for a
// *fuse.LookupRequest.
func opName(req fuse.Request) string {
	t := reflect.TypeOf(req)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return strings.ToLower(strings.TrimSuffix(t.Name(), "Request"))
}

// ok answers a request that has no reply body.
func (s *server) ok(req fuse.Request, err error, respond func()) error {
	if err != nil {
		return err
	}
	s.replied(req, "ok")
	respond()
	return nil
}

func (s *server) interrupt(id fuse.RequestID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if fl := s.reqs[id]; fl != nil {
		fl.interrupted = true
		fl.cancel()
	}
}

// attr fills a with n's attributes.
func attrOf(ctx context.Context, n fusefs.Node, a *fuse.Attr) error {
	a.Nlink = 1
	return n.Attr(ctx, a)
}

// entry fills the lookup part of a reply with n, newly known to the
// kernel through it.
func (s *server) entry(ctx context.Context, n fusefs.Node, resp *fuse.LookupResponse) error {
	if err := attrOf(ctx, n, &resp.Attr); err != nil {
		return err
	}
	if resp.EntryValid == 0 {
		resp.EntryValid = s.fsys.opts.CacheTTL
	}
	resp.Node = s.save(n)
	return nil
}

func (s *server) lookup(ctx context.Context, r *fuse.LookupRequest, node fusefs.Node) error {
	resp := &fuse.LookupResponse{}
	var child fusefs.Node
	var err error
	switch n := node.(type) {
	case fusefs.NodeRequestLookuper:
		child, err = n.Lookup(ctx, r, resp)
	case fusefs.NodeStringLookuper:
		child, err = n.Lookup(ctx, r.Name)
	default:
		return errno(syscall.ENOENT)
	}
	if err != nil {
		return err
	}
	if err := s.entry(ctx, child, resp); err != nil {
		return err
	}
	s.replied(r, resp)
	r.Respond(resp)
	return nil
}

func (s *server) getattr(ctx context.Context, r *fuse.GetattrRequest, node fusefs.Node) error {
	resp := &fuse.GetattrResponse{}
	var err error
	if n, ok := node.(fusefs.NodeGetattrer); ok {
		resp.Attr.Nlink = 1
		err = n.Getattr(ctx, r, resp)
	} else {
		err = attrOf(ctx, node, &resp.Attr)
	}
	if err != nil {
		return err
	}
	s.replied(r, resp)
	r.Respond(resp)
	return nil
}

func (s *server) setattr(ctx context.Context, r *fuse.SetattrRequest, node fusefs.Node) error {
	resp := &fuse.SetattrResponse{}
	if n, ok := node.(fusefs.NodeSetattrer); ok {
		if err := n.Setattr(ctx, r, resp); err != nil {
			return err
		}
	} else if r.Valid.Size() || r.Valid.Mode() || r.Valid.Uid() || r.Valid.Gid() {
		return errno(syscall.EPERM)
	}
	if err := attrOf(ctx, node, &resp.Attr); err != nil {
		return err
	}
	s.replied(r, resp)
	r.Respond(resp)
	return nil
}

func (s *server) open(ctx context.Context, r *fuse.OpenRequest, node fusefs.Node) error {
	resp := &fuse.OpenResponse{}
	var h fusefs.Handle
	if n, ok := node.(fusefs.NodeOpener); ok {
		var err error
		if h, err = n.Open(ctx, r, resp); err != nil {
			return err
		}
	} else if _, ok := node.(fusefs.HandleReadDirAller); ok && r.Dir {
		h = &dirHandle{node: node}
	} else {
		h = node
	}
	resp.Handle = s.saveHandle(h)
	s.replied(r, resp)
	r.Respond(resp)
	return nil
}

func (s *server) create(ctx context.Context, r *fuse.CreateRequest, node fusefs.Node) error {
	n, ok := node.(fusefs.NodeCreater)
	if !ok {
		return errno(syscall.EPERM)
	}
	resp := &fuse.CreateResponse{}
	child, h, err := n.Create(ctx, r, resp)
	if err != nil {
		return err
	}
	if err := s.entry(ctx, child, &resp.LookupResponse); err != nil {
		return err
	}
	resp.Handle = s.saveHandle(h)
	s.replied(r, resp)
	r.Respond(resp)
	return nil
}

func (s *server) mkdir(ctx context.Context, r *fuse.MkdirRequest, node fusefs.Node) error {
	n, ok := node.(fusefs.NodeMkdirer)
	if !ok {
		return errno(syscall.EPERM)
	}
	child, err := n.Mkdir(ctx, r)
	if err != nil {
		return err
	}
	resp := &fuse.MkdirResponse{}
	if err := s.entry(ctx, child, &resp.LookupResponse); err != nil {
		return err
	}
	s.replied(r, resp)
	r.Respond(resp)
	return nil
}

func (s *server) rename(ctx context.Context, r *fuse.RenameRequest, node fusefs.Node) error {
	n, ok := node.(fusefs.NodeRenamer)
	if !ok {
		return errno(syscall.EPERM)
	}
	s.mu.Lock()
	nd := s.nodes[r.NewDir]
	s.mu.Unlock()
	if nd == nil {
		return errno(syscall.ESTALE)
	}
	return s.ok(r, n.Rename(ctx, r, nd.node), r.Respond)
}

// makeNode answers SYMLINK, LINK and MKNOD, which the nodes refuse.
func (s *server) makeNode(ctx context.Context, req fuse.Request, node fusefs.Node) error {
	var err error
	switch r := req.(type) {
	case *fuse.SymlinkRequest:
		if n, ok := node.(fusefs.NodeSymlinker); ok {
			_, err = n.Symlink(ctx, r)
		}
	case *fuse.LinkRequest:
		if n, ok := node.(fusefs.NodeLinker); ok {
			_, err = n.Link(ctx, r, nil)
		}
	case *fuse.MknodRequest:
		if n, ok := node.(fusefs.NodeMknoder); ok {
			_, err = n.Mknod(ctx, r)
		}
	}
	if err == nil {
		err = errno(syscall.EPERM)
	}
	return err
}

func (s *server) read(ctx context.Context, r *fuse.ReadRequest) error {
	resp := &fuse.ReadResponse{Data: make([]byte, 0, r.Size)}
	switch h := s.handleOf(r.Handle).(type) {
	case nil:
		return errno(syscall.EBADF)
	case *dirHandle:
		data, err := h.listing(ctx, r.Offset == 0)
		if err != nil {
			return err
		}
		fuseutil.HandleRead(r, resp, data)
	case fusefs.HandleReader:
		if err := h.Read(ctx, r, resp); err != nil {
			return err
		}
	default:
		return errno(syscall.EBADF)
	}
	s.replied(r, len(resp.Data))
	r.Respond(resp)
	return nil
}

// listing returns the encoded entries of the directory, read again when
// fresh is set (a read at offset 0: opendir, or rewinddir).
func (h *dirHandle) listing(ctx context.Context, fresh bool) ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.data != nil && !fresh {
		return h.data, nil
	}
	ents, err := h.node.(fusefs.HandleReadDirAller).ReadDirAll(ctx)
	if err != nil {
		return nil, err
	}
	data := []byte{}
	for _, e := range ents {
		data = fuse.AppendDirent(data, e)
	}
	h.data = data
	return data, nil
}

func (s *server) write(ctx context.Context, r *fuse.WriteRequest) error {
	h, ok := s.handleOf(r.Handle).(fusefs.HandleWriter)
	if !ok {
		return errno(syscall.EBADF)
	}
	resp := &fuse.WriteResponse{}
	if err := h.Write(ctx, r, resp); err != nil {
		return err
	}
	s.replied(r, resp)
	r.Respond(resp)
	return nil
}

func (s *server) flush(ctx context.Context, r *fuse.FlushRequest) error {
	var err error
	if h, ok := s.handleOf(r.Handle).(fusefs.HandleFlusher); ok {
		err = h.Flush(ctx, r)
	}
	return s.ok(r, err, r.Respond)
}

func (s *server) release(ctx context.Context, r *fuse.ReleaseRequest) error {
	s.mu.Lock()
	h := s.handles[r.Handle]
	delete(s.handles, r.Handle)
	s.mu.Unlock()
	var err error
	if h, ok := h.(fusefs.HandleReleaser); ok {
		err = h.Release(ctx, r)
	}
	return s.ok(r, err, r.Respond)
}

func (s *server) getxattr(ctx context.Context, r *fuse.GetxattrRequest, node fusefs.Node) error {
	n, ok := node.(fusefs.NodeGetxattrer)
	if !ok {
		return fuse.ErrNoXattr
	}
	resp := &fuse.GetxattrResponse{}
	if err := n.Getxattr(ctx, r, resp); err != nil {
		return err
	}
	if r.Size != 0 && uint64(len(resp.Xattr)) > uint64(r.Size) {
		return errno(syscall.ERANGE)
	}
	s.replied(r, resp)
	r.Respond(resp)
	return nil
}

func (s *server) listxattr(ctx context.Context, r *fuse.ListxattrRequest, node fusefs.Node) error {
	resp := &fuse.ListxattrResponse{}
	if n, ok := node.(fusefs.NodeListxattrer); ok {
		if err := n.Listxattr(ctx, r, resp); err != nil {
			return err
		}
	}
	if r.Size != 0 && uint64(len(resp.Xattr)) > uint64(r.Size) {
		return errno(syscall.ERANGE)
	}
	s.replied(r, resp)
	r.Respond(resp)
	return nil
}

func (s *server) poll(ctx context.Context, r *fuse.PollRequest, node fusefs.Node) error {
	resp := &fuse.PollResponse{}
	switch h := s.handleOf(r.Handle).(type) {
	case fusefs.HandlePoller:
		if err := h.Poll(ctx, r, resp); err != nil {
			return err
		}
	default:
		resp.REvents = fuse.DefaultPollMask
	}
	s.replied(r, resp)
	r.Respond(resp)
	return nil
}
