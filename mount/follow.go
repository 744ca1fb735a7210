package mount

import (
	"errors"
	"runtime"
	"time"

	"bazil.org/fuse"
	"golang.org/x/sys/unix"

	"github.com/doozerfs/doozerfs/fs"
)

// maxReplayBacklog is how far behind the store the follower may be and
// still replay changes for inotify. Further behind, it only invalidates
// (as the kernel's inotify drops events when its queue overflows).
const maxReplayBacklog = 1000

// follower is the one goroutine that follows the store's applied
// revisions. For each revision it: hands its events to .doozerfs/events
// readers; replays it through the mountpoint for inotify unless this mount
// committed it (replay.go); and then invalidates what the kernel caches of
// the paths it changed. It runs locked to one OS thread, so that the
// handlers recognise its replays by the request's thread id, and it never
// holds fsys.mu across a syscall or a kernel notification. Kernel
// notifications from it are safe: it is never inside a request handler.
type follower struct {
	f     *fsys
	glob  *fs.Glob
	last  int64 // the last revision followed; read by others only after done
	stopc chan struct{}
	done  chan struct{}
}

// startFollower starts following after revision from, and returns once the
// goroutine's thread id is known.
func startFollower(f *fsys, from int64) *follower {
	w := &follower{f: f, last: from, stopc: make(chan struct{}), done: make(chan struct{})}
	if f.opts.Root != "/" {
		w.glob, _ = fs.CompileGlob(f.opts.Root + "/**")
	}
	if f.inv.Load() < from {
		f.inv.Store(from)
	}
	ready := make(chan struct{})
	go w.run(ready)
	<-ready
	return w
}

// stop ends the goroutine and waits for it.
func (w *follower) stop() {
	select {
	case <-w.stopc:
	default:
		close(w.stopc)
	}
	<-w.done
}

func (w *follower) run(ready chan struct{}) {
	// The thread is never unlocked: it exits with the goroutine, so its
	// id is never seen again on another goroutine.
	runtime.LockOSThread()
	defer close(w.done)
	w.f.replayTid.Store(int32(unix.Gettid()))
	defer w.f.replayTid.Store(0)
	close(ready)
	for {
		_, c := w.f.store.Changed()
		w.catchUp()
		select {
		case <-c:
		case <-w.stopc:
			return
		}
	}
}

// catchUp follows every revision up to the current one.
func (w *follower) catchUp() {
	f := w.f
	tree := f.store.Tree()
	target := tree.Rev()
	if target <= w.last {
		return
	}
	evs, err := tree.Events(w.last+1, w.glob)
	if err != nil {
		f.opts.Logger.Warn("mount: fell behind the store's history; invalidating every cached entry", "from", w.last+1, "err", err)
		w.invalidateAll()
		f.commits.forgetBefore(target + 1)
		w.advance(target)
		return
	}
	for i := 0; i < len(evs) && evs[i].Rev <= target; {
		j := i
		for j < len(evs) && evs[j].Rev == evs[i].Rev {
			j++
		}
		w.follow(evs[i].Rev, evs[i:j], target)
		w.advance(evs[i].Rev)
		i = j
		select {
		case <-w.stopc:
			return
		default:
		}
	}
	w.advance(target)
}

func (w *follower) advance(rev int64) {
	w.last = rev
	if w.f.inv.Load() < rev {
		w.f.inv.Store(rev)
	}
}

// A relEvent is an event with its mount path.
type relEvent struct {
	fs.Event
	rel string
}

// follow handles revision rev, whose events (under the mount's root) are
// evs.
func (w *follower) follow(rev int64, evs []fs.Event, target int64) {
	f := w.f
	f.subs.publish(rev, evs, f.relPath)
	rels := make([]relEvent, 0, len(evs))
	paths := make([]string, 0, len(evs))
	for _, ev := range evs {
		if rel, ok := f.relPath(ev.Path); ok {
			rels = append(rels, relEvent{Event: ev, rel: rel})
			paths = append(paths, ev.Path)
		}
	}
	if len(rels) == 0 {
		return
	}
	own := f.commits.isOwn(rev, paths, time.Now().Add(f.opts.Timeout), w.stopc)
	tree := f.store.Tree()
	pre, err := tree.ViewAt(rev - 1)
	if err != nil {
		pre = nil
	}
	if !own && pre != nil && target-rev <= maxReplayBacklog {
		if post, err := tree.ViewAt(rev); err == nil {
			for _, op := range infer(pre, post, rels, f.storePath) {
				w.replay(op)
			}
		}
	}
	w.invalidate(rels, pre, own)
}

// invalidate drops what the kernel caches of the paths a revision changed:
// a changed file's attributes and pages, a removed entry, and the
// attributes of directories whose children changed.
func (w *follower) invalidate(evs []relEvent, pre *fs.View, own bool) {
	f := w.f
	dirs := make(map[string]bool)
	for _, ev := range evs {
		if ev.rel == "/" {
			continue
		}
		dir, name := parent(ev.rel)
		switch ev.Kind {
		case fs.EventSet:
			if n, ok := f.registered(ev.rel).(*fileNode); ok {
				w.notify(f.srv.InvalidateNodeData(n))
			}
			if pre == nil || !existsIn(pre, f.storePath(ev.rel)) {
				dirs[dir] = true
			}
		case fs.EventMkdir:
			dirs[dir] = true
		case fs.EventDel:
			dirs[dir] = true
			if !own {
				w.forget(ev.rel)
			}
		}
		// The replay moved the kernel's entries as the change did (or
		// failed to); drop them anyway, so that a replay that went wrong
		// leaves nothing stale behind. A local change already went
		// through the kernel's VFS.
		if !own {
			if d := f.registered(dir); d != nil {
				w.notify(f.srv.InvalidateEntry(d, name))
			}
		}
	}
	for dir := range dirs {
		if d := f.registered(dir); d != nil {
			w.notify(f.srv.InvalidateNodeAttr(d))
		}
	}
}

// forget detaches the node of a path deleted elsewhere, unless the path
// shows something again (made since, here or elsewhere), and drops overlay
// entries that lived below a deleted directory.
func (w *follower) forget(rel string) {
	f := w.f
	v := f.view()
	f.mu.Lock()
	defer f.mu.Unlock()
	if e := f.overlay[rel]; e != nil && e.kind == entHidden {
		f.unhideLocked(e)
		delete(f.overlay, rel)
	}
	f.overlayDropBelowLocked(rel)
	if f.resolveLocked(v, rel).typ == fs.TypeNone {
		f.dropLocked(rel)
	}
}

// invalidateAll drops everything the kernel caches for this mount's nodes.
func (w *follower) invalidateAll() {
	f := w.f
	f.mu.Lock()
	nodes := make([]node, 0, len(f.nodes))
	for _, n := range f.nodes {
		nodes = append(nodes, n)
	}
	f.mu.Unlock()
	for _, n := range nodes {
		b := n.base()
		f.mu.Lock()
		rel := b.path
		f.mu.Unlock()
		if b.dir {
			w.notify(f.srv.InvalidateNodeAttr(n))
		} else {
			w.notify(f.srv.InvalidateNodeData(n))
		}
		if rel != "/" {
			dir, name := parent(rel)
			if d := f.registered(dir); d != nil {
				w.notify(f.srv.InvalidateEntry(d, name))
			}
		}
	}
}

// notify logs a failed kernel notification. ErrNotCached and ENOENT only
// say the kernel held nothing to drop.
func (w *follower) notify(err error) {
	if err == nil || isNotCached(err) {
		return
	}
	w.f.opts.Logger.Debug("mount: kernel notification failed", "err", err)
}

// isNotCached reports whether a notification failed only because the
// kernel held nothing to drop.
func isNotCached(err error) bool {
	return errors.Is(err, fuse.ErrNotCached) || errors.Is(err, unix.ENOENT)
}

// existsIn reports whether the store path p exists in view v.
func existsIn(v *fs.View, p string) bool {
	_, err := v.Stat(p)
	return err == nil
}
