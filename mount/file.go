package mount

import (
	"context"
	"sync"
	"syscall"

	"bazil.org/fuse"
	fusefs "bazil.org/fuse/fs"

	"github.com/doozerfs/doozerfs/fs"
)

// fOpenNoFlush is FOPEN_NOFLUSH, which bazil does not name: the kernel
// sends no FLUSH when a read-only open of the file is closed.
const fOpenNoFlush fuse.OpenResponseFlags = 1 << 5

// fileNode is a file: a store file, or a local or pending one. See cache.go
// for how its handles share the kernel's page cache.
type fileNode struct {
	nodeBase

	mu         sync.Mutex
	handles    map[*handle]struct{} // open handles
	cacheRev   int64                // the revision whose body the page cache may hold (0: none)
	cacheSize  int64                // its size
	cacheOpen  int                  // open handles reading through the page cache
	attrsFaked bool                 // the kernel was told cacheSize while the store had moved on
	writers    int                  // open writers on this host (replays aside)
	waiting    int                  // writers waiting for page-cache readers to close
	changed    chan struct{}        // closed when cacheOpen drops (nil: nobody waits)
	emptyRev   int64                // the revision of an empty create this mount committed
	last       object               // what the file showed last (for a deleted file still open)
}

var (
	_ fusefs.Node              = (*fileNode)(nil)
	_ fusefs.NodeGetattrer     = (*fileNode)(nil)
	_ fusefs.NodeSetattrer     = (*fileNode)(nil)
	_ fusefs.NodeOpener        = (*fileNode)(nil)
	_ fusefs.NodeFsyncer       = (*fileNode)(nil)
	_ fusefs.NodeGetxattrer    = (*fileNode)(nil)
	_ fusefs.NodeListxattrer   = (*fileNode)(nil)
	_ fusefs.NodeSetxattrer    = (*fileNode)(nil)
	_ fusefs.NodeRemovexattrer = (*fileNode)(nil)
	_ fusefs.NodeForgetter     = (*fileNode)(nil)
)

func newFileNode(b nodeBase) *fileNode {
	return &fileNode{nodeBase: b, handles: make(map[*handle]struct{})}
}

// current returns what the file's path shows now (fs.TypeNone if it is
// no file now).
func (n *fileNode) current(ctx context.Context) object {
	var o object
	if info := infoFrom(ctx); info.objFor == node(n) && info.obj != nil {
		o = *info.obj
	} else {
		o = n.fsys.resolve(n.Path())
	}
	if o.typ != fs.TypeFile {
		return object{}
	}
	n.mu.Lock()
	n.last = o
	n.mu.Unlock()
	return o
}

// object returns what the file's path shows now, or what it showed last if
// it is gone (the attributes of a deleted file that is still open).
func (n *fileNode) object(ctx context.Context) object {
	if o := n.current(ctx); o.typ == fs.TypeFile {
		return o
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.last
}

// Attr reports the file's attributes as committed: the kernel's size of a
// file is shared by every open of it, so a writer's uncommitted buffer
// never shows there (not even in the reply to its own truncate, which is
// not cached). While handles read through the page cache, the size is
// theirs (cache.go).
func (n *fileNode) Attr(ctx context.Context, a *fuse.Attr) error {
	o := n.object(ctx)
	n.fsys.attrFor(o, n.ino, a)
	if o.typ != fs.TypeFile {
		a.Mode = n.fsys.opts.FileMode
		a.Nlink = 0
		a.Valid = 0
	}
	if infoFrom(ctx).handle != nil {
		a.Valid = 0
	}
	n.mu.Lock()
	n.kernelSizeLocked(a)
	n.mu.Unlock()
	return nil
}

// Getattr is Attr, except that a GETATTR for a handle reading through the
// page cache (the kernel checking the size before a read) shows the
// revision that handle reads.
func (n *fileNode) Getattr(ctx context.Context, req *fuse.GetattrRequest, resp *fuse.GetattrResponse) error {
	if req.Flags&fuse.GetattrFh != 0 {
		if h := n.handleFor(req.Handle); h != nil && h.pageCache && !h.poisoned.Load() {
			h.attr(&resp.Attr)
			return nil
		}
	}
	return n.Attr(ctx, &resp.Attr)
}

// addHandle registers an open handle.
func (n *fileNode) addHandle(h *handle) {
	h.node = n
	n.mu.Lock()
	n.handles[h] = struct{}{}
	n.mu.Unlock()
	n.fsys.open.Add(1)
}

// handleFor returns the open handle of this file with kernel id id, from a
// request that names one but is addressed to the node (GETATTR, SETATTR,
// FSYNC).
func (n *fileNode) handleFor(id fuse.HandleID) *handle {
	h, ok := n.fsys.srv.handleOf(id).(*handle)
	if !ok || h.node != n {
		return nil
	}
	return h
}

// freshWriter finds the handle that a SETATTR(size) without a handle
// belongs to: bazil does not negotiate atomic O_TRUNC, so the kernel sends
// open(O_TRUNC) as OPEN, then this SETATTR from the same thread, before
// anything is written.
func (n *fileNode) freshWriter(pid uint32) *handle {
	n.mu.Lock()
	defer n.mu.Unlock()
	var best *handle
	for h := range n.handles {
		if h.write && !h.replay && !h.released && !h.touched.Load() && h.pid == pid && (best == nil || h.seq > best.seq) {
			best = h
		}
	}
	return best
}

// Setattr handles truncation (into a handle's buffer, or committed at
// once when no handle is open for it), and accepts chmod and chown to the
// current values and any times.
func (n *fileNode) Setattr(ctx context.Context, req *fuse.SetattrRequest, resp *fuse.SetattrResponse) error {
	f := n.fsys
	if f.isReplay(&req.Header) {
		return nil
	}
	if err := f.checkSetattr(req, false); err != nil {
		return err
	}
	if f.opts.ReadOnly {
		return errno(syscall.EROFS)
	}
	if !req.Valid.Size() {
		return nil
	}
	if err := f.writable(); err != nil {
		return err
	}
	if req.Size > uint64(f.opts.MaxBody) {
		return errno(syscall.EFBIG)
	}
	size := int(req.Size)
	var h *handle
	byHandle := req.Valid.Handle()
	if byHandle {
		h = n.handleFor(req.Handle)
	} else {
		h = n.freshWriter(req.Pid)
	}
	if h == nil {
		return n.truncateNow(ctx, size)
	}
	if h.replay {
		return nil
	}
	if err := h.setSize(size, byHandle); err != nil {
		return err
	}
	infoFrom(ctx).handle = h
	return nil
}

// truncateNow commits a truncate(2) made by path while no handle of the
// caller is open: one revision with the resized body.
func (n *fileNode) truncateNow(ctx context.Context, size int) error {
	f := n.fsys
	v := f.view()
	f.mu.Lock()
	rel := n.path
	o := f.resolveLocked(v, rel)
	f.mu.Unlock()
	if o.typ != fs.TypeFile {
		return errno(syscall.ENOENT)
	}
	body := resize(o.body, size)
	if o.local {
		f.setLocal(rel, body)
		return nil
	}
	if o.ent != nil { // pending: its creator's buffer holds the file
		if c := o.ent.creator; c != nil {
			return c.setSize(size, true)
		}
		return errno(syscall.ESTALE)
	}
	_, err := f.txn(ctx, []fs.Op{{Kind: fs.OpSet, Path: f.storePath(rel), Rev: o.st.Rev, Body: body, Lease: o.st.Lease}})
	return toErrno(err)
}

// resize returns a copy of b cut or zero-extended to size.
func resize(b []byte, size int) []byte {
	out := make([]byte, size)
	copy(out, b)
	return out
}

// Open opens the file. Writers get a buffer (handle.go) and direct I/O;
// readers get the revision current now, through the page cache when that
// is safe (see fileNode), and no FLUSH at close.
func (n *fileNode) Open(ctx context.Context, req *fuse.OpenRequest, resp *fuse.OpenResponse) (fusefs.Handle, error) {
	f := n.fsys
	if f.isReplay(&req.Header) {
		resp.Flags |= fuse.OpenDirectIO
		return &handle{node: n, replay: true, write: true}, nil
	}
	write := !req.Flags.IsReadOnly() || req.Flags&fuse.OpenTruncate != 0
	if write {
		if err := f.writable(); err != nil {
			return nil, err
		}
	}
	o := n.current(ctx)
	f.mu.Lock()
	gone := n.gone
	f.mu.Unlock()
	if o.typ != fs.TypeFile || gone {
		return nil, errno(syscall.ENOENT)
	}
	h := &handle{pid: req.Pid, write: write, append: req.Flags&fuse.OpenAppend != 0, rdwr: req.Flags.IsReadWrite()}
	if write {
		if err := n.admitWriter(ctx); err != nil {
			return nil, err
		}
		h.writer = true
		o = n.current(ctx) // what it is now, after the wait
		if o.typ != fs.TypeFile {
			n.mu.Lock()
			n.writerClosedLocked()
			n.mu.Unlock()
			return nil, errno(syscall.ENOENT)
		}
	}
	h.openExisting(o)
	if write {
		resp.Flags |= fuse.OpenDirectIO
	} else {
		n.mu.Lock()
		pageCache, keep := n.admitReaderLocked(o, h)
		n.mu.Unlock()
		switch {
		case !pageCache:
			resp.Flags |= fuse.OpenDirectIO
		case keep:
			resp.Flags |= fuse.OpenKeepCache
		}
		resp.Flags |= fOpenNoFlush
	}
	n.addHandle(h)
	return h, nil
}

// Fsync commits the handle's buffer if it was written since its last
// commit.
func (n *fileNode) Fsync(ctx context.Context, req *fuse.FsyncRequest) error {
	if n.fsys.isReplay(&req.Header) {
		return nil
	}
	h := n.handleFor(req.Handle)
	if h == nil || h.replay {
		return nil
	}
	return h.commitIfDirty(ctx)
}

func (n *fileNode) Getxattr(ctx context.Context, req *fuse.GetxattrRequest, resp *fuse.GetxattrResponse) error {
	return getxattr(n.object(ctx), req, resp)
}

func (n *fileNode) Listxattr(ctx context.Context, req *fuse.ListxattrRequest, resp *fuse.ListxattrResponse) error {
	listxattr(n.object(ctx), resp)
	return nil
}

// Setxattr binds the file to this host's session lease
// (user.doozerfs.ephemeral=1) or unbinds it (=0): one revision with the
// same body.
func (n *fileNode) Setxattr(ctx context.Context, req *fuse.SetxattrRequest) error {
	if req.Name != xattrEphemeral {
		return errno(syscall.EOPNOTSUPP)
	}
	on, err := parseEphemeral(req.Xattr)
	if err != nil {
		return err
	}
	return n.bindLease(ctx, on)
}

// Removexattr of the lease unbinds the file.
func (n *fileNode) Removexattr(ctx context.Context, req *fuse.RemovexattrRequest) error {
	if req.Name != xattrLease && req.Name != xattrEphemeral {
		return fuse.ErrNoXattr
	}
	return n.bindLease(ctx, false)
}

func (n *fileNode) bindLease(ctx context.Context, on bool) error {
	f := n.fsys
	if err := f.writable(); err != nil {
		return err
	}
	o := n.current(ctx)
	if o.typ != fs.TypeFile {
		return errno(syscall.ENOENT)
	}
	if o.ent != nil {
		return errno(syscall.EOPNOTSUPP) // local, or not committed yet
	}
	var lease int64
	if on {
		ctx, cancel := context.WithTimeout(ctx, f.opts.Timeout)
		defer cancel()
		id, err := f.store.SessionLease(ctx)
		if err != nil {
			return toErrno(err)
		}
		lease = id
	}
	if lease == o.st.Lease {
		return nil
	}
	_, err := f.txn(ctx, []fs.Op{{Kind: fs.OpSet, Path: f.storePath(n.Path()), Rev: o.st.Rev, Body: o.body, Lease: lease}})
	return toErrno(err)
}
