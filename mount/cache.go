package mount

import (
	"context"
	"time"

	"bazil.org/fuse"
)

// The kernel page cache, and one open = one revision.
//
// An inode has one page cache and one size (i_size) in the kernel, shared
// by every open of the file on this host, and a page-cache read never goes
// past i_size. A handle that reads through the page cache (cheap: its
// pages stay cached across opens with OpenKeepCache) therefore needs, for
// as long as it is open, a page cache that holds only its revision's body
// and an i_size equal to that body's length: a smaller one cuts its read
// short, a larger one shows zeros past its end (the partly filled last
// page). So:
//
//   - Readers of one revision at a time, cacheRev, may use the page cache;
//     a reader of another revision meanwhile reads with direct I/O (no
//     cache, no size limit), as does a reader opened before the follower
//     has invalidated the kernel's view of the file's revision.
//   - While page-cache readers are open, every size the kernel is told for
//     the file is theirs (uncached when the store has moved on); once the
//     last one closes, the kernel's attributes are invalidated before
//     another revision may use the page cache.
//   - Writers on this host use direct I/O, and the kernel grows i_size
//     after their WRITEs. So a writer's open waits (up to writerWait) for
//     the page-cache readers to close, and no reader starts using the page
//     cache while a writer is open. A reader still open after writerWait
//     is poisoned (its further reads fail with ESTALE, as its revision is
//     being replaced here) and the file's pages are dropped before the
//     writer's open returns.

// writerWait bounds how long a writer's open waits for page-cache readers.
const writerWait = time.Second

// admitReaderLocked decides whether a read-only handle of the file o may
// read through the page cache, and whether the pages already cached may be
// kept. Called with n.mu held.
func (n *fileNode) admitReaderLocked(o object, h *handle) (pageCache, keep bool) {
	rev := o.st.Rev
	switch {
	case o.ent != nil, n.fsys.inv.Load() < rev, n.writers > 0, n.waiting > 0, n.attrsFaked:
		return false, false
	case n.cacheOpen > 0 && n.cacheRev != rev:
		return false, false
	case n.cacheOpen > 0:
		keep = true
	default:
		keep = n.cacheRev == rev
		n.cacheRev, n.cacheSize = rev, int64(len(o.body))
	}
	n.cacheOpen++
	h.pageCache = true
	return true, keep
}

// kernelSizeLocked adjusts attributes about to be given to the kernel:
// while page-cache readers are open, the size is theirs. Called with n.mu
// held.
func (n *fileNode) kernelSizeLocked(a *fuse.Attr) {
	if n.cacheOpen > 0 && int64(a.Size) != n.cacheSize {
		a.Size = uint64(n.cacheSize)
		a.Blocks = (a.Size + 511) / 512
		a.Valid = 0
		n.attrsFaked = true
	}
}

// readerClosed is called when a page-cache reader is released. Called with
// n.mu held.
func (n *fileNode) readerClosedLocked() {
	n.cacheOpen--
	n.wakeLocked()
	if n.cacheOpen == 0 && n.attrsFaked {
		n.fsys.later(func() {
			n.fsys.notifyLater(n.fsys.srv.InvalidateNodeAttr(n))
			n.mu.Lock()
			if n.cacheOpen == 0 {
				n.attrsFaked = false
			}
			n.mu.Unlock()
		})
	}
}

// wakeLocked wakes writers waiting for readers.
func (n *fileNode) wakeLocked() {
	if n.changed != nil {
		close(n.changed)
		n.changed = nil
	}
}

// admitWriter registers a writer on this host, after the page-cache
// readers are gone (see above).
func (n *fileNode) admitWriter(ctx context.Context) error {
	n.mu.Lock()
	n.waiting++
	deadline := time.NewTimer(writerWait)
	defer deadline.Stop()
	for n.cacheOpen > 0 {
		if n.changed == nil {
			n.changed = make(chan struct{})
		}
		c := n.changed
		n.mu.Unlock()
		select {
		case <-c:
		case <-deadline.C:
			n.mu.Lock()
			n.poisonLocked()
			n.mu.Unlock()
			n.dropPages()
		case <-ctx.Done():
			n.mu.Lock()
			n.waiting--
			n.mu.Unlock()
			return ctx.Err()
		}
		n.mu.Lock()
	}
	n.waiting--
	n.writers++
	n.mu.Unlock()
	return nil
}

// poisonLocked stops every page-cache reader from reading further.
func (n *fileNode) poisonLocked() {
	for h := range n.handles {
		if h.pageCache && !h.poisoned.Load() {
			h.poisoned.Store(true)
			n.cacheOpen--
		}
	}
	n.fsys.opts.Logger.Info("mount: a writer replaces a file still open for reading; its readers get ESTALE", "path", n.Path())
}

// dropPages drops the file's cached pages and attributes, from outside the
// request handler, and waits (bounded) for the kernel to have done it.
func (n *fileNode) dropPages() {
	done := make(chan struct{})
	n.fsys.later(func() {
		n.fsys.notifyLater(n.fsys.srv.InvalidateNodeData(n))
		close(done)
	})
	select {
	case <-done:
	case <-time.After(writerWait):
	}
}

// writerClosed unregisters a writer.
func (n *fileNode) writerClosedLocked() {
	n.writers--
}

// later runs fn on a goroutine of its own: kernel notifications must not
// be sent from inside a request handler.
func (f *fsys) later(fn func()) {
	go fn()
}

// notifyLater logs a failed notification sent by later.
func (f *fsys) notifyLater(err error) {
	if err != nil && !isNotCached(err) {
		f.opts.Logger.Debug("mount: kernel notification failed", "err", err)
	}
}
