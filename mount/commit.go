package mount

import (
	"context"
	"sync"
	"time"

	"github.com/doozerfs/doozerfs/fs"
)

// commitTracker remembers which revisions this mount committed, so that the
// follower does not replay them for inotify (the kernel already fired
// their events when they passed through the VFS here).
//
// A commit's revision is known only when Store.Txn returns, which may be
// just after the follower sees the revision applied. So commits register
// the paths they touch before they start, and the follower, meeting a
// revision that touches one of those paths, waits for the commit to end.
type commitTracker struct {
	mu     sync.Mutex
	own    map[int64]bool       // revisions committed here, not yet followed
	flight map[*flight]struct{} // commits in progress
	c      chan struct{}        // closed and replaced when a commit ends
}

// A flight is one commit in progress.
type flight struct {
	paths map[string]bool // store paths
}

func (t *commitTracker) init() {
	t.own = make(map[int64]bool)
	t.flight = make(map[*flight]struct{})
	t.c = make(chan struct{})
}

func (t *commitTracker) begin(ops []fs.Op) *flight {
	fl := &flight{paths: make(map[string]bool, len(ops))}
	for _, o := range ops {
		fl.paths[o.Path] = true
	}
	t.mu.Lock()
	t.flight[fl] = struct{}{}
	t.mu.Unlock()
	return fl
}

func (t *commitTracker) end(fl *flight, rev int64, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.flight, fl)
	if ok {
		t.own[rev] = true
	}
	close(t.c)
	t.c = make(chan struct{})
}

// isOwn reports whether revision rev, whose events touch the store paths
// paths, was committed by this mount. It waits, at most until deadline or
// until stop is closed, while a commit in progress touches one of those
// paths.
func (t *commitTracker) isOwn(rev int64, paths []string, deadline time.Time, stop <-chan struct{}) bool {
	for {
		t.mu.Lock()
		if t.own[rev] {
			delete(t.own, rev)
			t.mu.Unlock()
			return true
		}
		busy := false
		for fl := range t.flight {
			for _, p := range paths {
				if fl.paths[p] {
					busy = true
				}
			}
		}
		c := t.c
		t.mu.Unlock()
		wait := time.Until(deadline)
		if !busy || wait <= 0 {
			return false
		}
		timer := time.NewTimer(wait)
		select {
		case <-c:
		case <-timer.C:
		case <-stop:
			timer.Stop()
			return false
		}
		timer.Stop()
	}
}

// forgetBefore drops the record of own revisions below rev (the follower
// skipped past them).
func (t *commitTracker) forgetBefore(rev int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for r := range t.own {
		if r < rev {
			delete(t.own, r)
		}
	}
}

// txn commits ops with the mount's deadline on top of ctx, and records the
// revision as this mount's own.
func (f *fsys) txn(ctx context.Context, ops []fs.Op) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, f.opts.Timeout)
	defer cancel()
	fl := f.commits.begin(ops)
	rev, err := f.store.Txn(ctx, ops)
	f.commits.end(fl, rev, err == nil)
	return rev, err
}
