package mount

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"syscall"

	"bazil.org/fuse"
	fusefs "bazil.org/fuse/fs"
	"bazil.org/fuse/fuseutil"

	"github.com/doozerfs/doozerfs/fs"
)

// handle is one open file description of a file.
//
// A reader reads the body of the revision current at open, whole, however
// many READs it takes.
//
// A writer edits a private buffer that starts as the body at open (empty
// after O_TRUNC or a truncate to 0) and is committed as one conditional
// SET(path, base, buffer): at the first FLUSH or FSYNC after a write or a
// truncate through the handle, and whatever is still uncommitted at
// RELEASE. base is the file's revision at open (0 for a new file, which
// must then still be missing), and after each commit the revision it made.
// A flush with nothing written commits nothing, so the FLUSH that bash's
// dup2 sends before any WRITE does not publish an empty file. If the local
// tree shows the file changed since base, WRITE already fails with ESTALE
// (bash's builtin echo ignores errors from close).
type handle struct {
	node      *fileNode
	replay    bool // opened by the follower: every request is a no-op
	seq       uint64
	pid       uint32 // thread that opened it
	write     bool
	rdwr      bool
	append    bool
	excl      bool // created with O_EXCL
	local     bool // a local-only file: commits go to the overlay
	pageCache bool // reads go through the kernel page cache
	writer    bool // counted in node.writers

	// Guarded by node.mu.
	released bool

	touched  atomic.Bool // written or truncated: no longer the target of an O_TRUNC SETATTR
	poisoned atomic.Bool // a page-cache reader cut off by a writer (cache.go)

	mu       sync.Mutex
	body     []byte  // the body at open (shared, never modified)
	st       fs.Stat // the file at open
	base     int64   // the revision commits are conditional on
	lease    int64   // the lease the file is bound to
	buf      []byte  // the edited body, once bufValid
	bufValid bool
	dirty    bool  // written or truncated through the handle since the last commit
	unsaved  bool  // anything not committed yet: committed at release at the latest
	wrote    bool  // any WRITE since open
	created  bool  // this handle created the file, which is not in the store yet
	failed   error // a commit failed: later writes fail with this
}

var (
	_ fusefs.Handle         = (*handle)(nil)
	_ fusefs.HandleReader   = (*handle)(nil)
	_ fusefs.HandleWriter   = (*handle)(nil)
	_ fusefs.HandleFlusher  = (*handle)(nil)
	_ fusefs.HandleReleaser = (*handle)(nil)
)

var handleSeq atomic.Uint64

// openExisting starts h on the file o as it is now.
func (h *handle) openExisting(o object) {
	h.seq = handleSeq.Add(1)
	h.body, h.st = o.body, o.st
	h.base, h.lease = o.st.Rev, o.st.Lease
	switch {
	case o.local:
		h.local = true
	case o.ent != nil: // pending: not in the store yet
		h.base = 0
	}
}

// contentLocked is what a read of h sees: its buffer, or the body at open.
func (h *handle) contentLocked() []byte {
	if h.bufValid {
		return h.buf
	}
	return h.body
}

// attr fills a with the file as a page-cache reader h sees it; cached
// only while that is the current revision.
func (h *handle) attr(a *fuse.Attr) {
	f := h.node.fsys
	f.attrFor(object{typ: fs.TypeFile, st: h.st, body: h.body}, h.node.ino, a)
	if f.resolve(h.node.Path()).st.Rev != h.st.Rev {
		a.Valid = 0
	}
}

func (h *handle) materializeLocked() {
	if !h.bufValid {
		h.buf = append([]byte(nil), h.body...)
		h.bufValid = true
	}
}

// truncateLocked resizes the buffer. A truncate through the handle is a
// change like a write; the kernel's SETATTR for O_TRUNC is not (it comes
// before bash's pre-write FLUSH).
func (h *handle) truncateLocked(size int, byHandle bool) {
	h.materializeLocked()
	if size <= cap(h.buf) {
		old := len(h.buf)
		h.buf = h.buf[:size]
		if size > old {
			clear(h.buf[old:])
		}
	} else {
		h.buf = resize(h.buf, size)
	}
	h.unsaved = true
	h.touched.Store(true)
	if byHandle {
		h.dirty = true
	}
}

// truncate is truncateLocked for a handle not yet shared.
func (h *handle) truncate(size int, byHandle bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.truncateLocked(size, byHandle)
}

// setSize truncates the buffer for a SETATTR.
func (h *handle) setSize(size int, byHandle bool) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failed != nil {
		return h.failed
	}
	if err := h.checkLocked(); err != nil {
		return err
	}
	h.truncateLocked(size, byHandle)
	return nil
}

// checkLocked fails if the local tree already shows that a commit of h
// would conflict.
func (h *handle) checkLocked() error {
	if h.local {
		return nil
	}
	n := h.node
	f := n.fsys
	v := f.view()
	f.mu.Lock()
	rel, gone := n.path, n.gone
	f.mu.Unlock()
	if gone {
		return nil // unlinked while open: writes go nowhere, as on any file system
	}
	st, err := v.Stat(f.storePath(rel))
	exists := err == nil && st.Type == fs.TypeFile
	switch {
	case h.base == 0 && !exists:
		return nil
	case h.base == 0 && h.adoptLocked(st.Rev):
		return nil
	case h.base == 0, !exists, st.Rev > h.base:
		return h.conflict(nil)
	}
	return nil
}

// adoptLocked lets a handle opened on a file that was pending, or created
// empty, build on the empty create this mount committed for it since
// (touch f; echo x > f: the release of touch may be committed after echo
// opened f).
func (h *handle) adoptLocked(rev int64) bool {
	n := h.node
	n.mu.Lock()
	defer n.mu.Unlock()
	if rev != 0 && n.emptyRev == rev && !h.created {
		h.base = rev
		return true
	}
	return false
}

// conflict is the error of a commit that lost: EEXIST for an exclusive
// create, ESTALE otherwise.
func (h *handle) conflict(err error) error {
	if h.excl && h.created {
		return &errnoError{errno: syscall.EEXIST, err: err}
	}
	return &errnoError{errno: syscall.ESTALE, err: err}
}

// Read serves reads from the revision opened (or the writer's buffer).
func (h *handle) Read(ctx context.Context, req *fuse.ReadRequest, resp *fuse.ReadResponse) error {
	if h.poisoned.Load() {
		return errno(syscall.ESTALE)
	}
	h.mu.Lock()
	data := h.contentLocked()
	h.mu.Unlock()
	fuseutil.HandleRead(req, resp, data)
	return nil
}

// Write edits the buffer. O_APPEND writes go to the end of the buffer,
// whatever offset the kernel computed from its cached size.
func (h *handle) Write(ctx context.Context, req *fuse.WriteRequest, resp *fuse.WriteResponse) error {
	if h.replay {
		resp.Size = len(req.Data)
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failed != nil {
		return h.failed
	}
	if err := h.checkLocked(); err != nil {
		return err
	}
	h.materializeLocked()
	off := int(req.Offset)
	if h.append {
		off = len(h.buf)
	}
	end := off + len(req.Data)
	if req.Offset < 0 || end > h.node.fsys.opts.MaxBody {
		return errno(syscall.EFBIG)
	}
	if end > len(h.buf) {
		h.truncateLocked(end, true)
	}
	copy(h.buf[off:], req.Data)
	h.dirty, h.unsaved, h.wrote = true, true, true
	h.touched.Store(true)
	resp.Size = len(req.Data)
	return nil
}

// Flush commits the buffer if it was written since the last commit.
func (h *handle) Flush(ctx context.Context, req *fuse.FlushRequest) error {
	if h.replay {
		return nil
	}
	return h.commitIfDirty(ctx)
}

func (h *handle) commitIfDirty(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.dirty {
		return nil
	}
	return h.commitLocked(ctx)
}

// Release commits what is left (a create or an O_TRUNC with nothing
// written after it). Its errors cannot reach the application; they are
// logged.
func (h *handle) Release(ctx context.Context, req *fuse.ReleaseRequest) error {
	n := h.node
	if !h.replay {
		h.mu.Lock()
		if h.unsaved && h.failed == nil {
			ctx, cancel := context.WithTimeout(context.Background(), n.fsys.opts.Timeout)
			if err := h.commitLocked(ctx); err != nil {
				n.fsys.opts.Logger.Warn("mount: commit at close failed", "path", n.Path(), "err", err)
			}
			cancel()
		}
		if h.created {
			n.fsys.endPending(h)
		}
		n.fsys.endCreator(h)
		h.mu.Unlock()
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.handles[h]; ok {
		n.fsys.open.Add(-1)
	}
	delete(n.handles, h)
	h.released = true
	if h.pageCache && !h.poisoned.Load() {
		n.readerClosedLocked()
	}
	if h.writer {
		n.writerClosedLocked()
	}
	return nil
}

// commitLocked publishes the buffer: one conditional SET.
func (h *handle) commitLocked(ctx context.Context) error {
	n := h.node
	f := n.fsys
	f.mu.Lock()
	rel, gone := n.path, n.gone
	f.mu.Unlock()
	body := h.contentLocked()
	if gone {
		h.clearLocked()
		return nil
	}
	if h.local {
		f.setLocal(rel, append([]byte(nil), body...))
		h.clearLocked()
		return nil
	}
	if len(body) > f.opts.MaxBody {
		h.clearLocked()
		return errno(syscall.EFBIG)
	}
	body = append([]byte(nil), body...) // the store keeps it
	if h.base == 0 {
		if st, err := f.view().Stat(f.storePath(rel)); err == nil {
			h.adoptLocked(st.Rev)
		}
	}
	empty := h.created && !h.wrote && len(body) == 0
	rev, err := f.txn(ctx, []fs.Op{{Kind: fs.OpSet, Path: f.storePath(rel), Rev: h.base, Body: body, Lease: h.lease}})
	if err != nil {
		if empty && fs.KindOf(err) == fs.KindRevMismatch {
			err = nil // someone created it meanwhile, which is all touch wanted
		} else if fs.KindOf(err) == fs.KindRevMismatch {
			err = h.conflict(err)
		} else {
			err = toErrno(err)
		}
		if err != nil && !errors.Is(err, context.Canceled) {
			h.failed = err
		}
		h.clearLocked()
		if h.created {
			f.endPending(h)
		}
		return err
	}
	h.base = rev
	if empty {
		n.mu.Lock()
		n.emptyRev = rev
		n.mu.Unlock()
	}
	if h.created {
		f.endPending(h)
	}
	h.clearLocked()
	return nil
}

func (h *handle) clearLocked() {
	h.dirty, h.unsaved = false, false
}

// endCreator forgets that h created its file, which it no longer writes.
func (f *fsys) endCreator(h *handle) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e := f.overlay[h.node.path]; e != nil && e.creator == h {
		e.creator = nil
	}
}

// endPending ends the pending create of h's file: it is committed now, or
// will never be.
func (f *fsys) endPending(h *handle) {
	h.created = false
	f.mu.Lock()
	defer f.mu.Unlock()
	rel := h.node.path
	if e := f.overlay[rel]; e != nil && e.kind == entPending && e.creator == h {
		delete(f.overlay, rel)
	}
}
