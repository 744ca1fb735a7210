package wire

import (
	"context"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/doozerfs/doozerfs/fs"
)

// fakeStore is a small in-memory store with doozerfs's rules, just enough
// to test the client against; replica has the real one. Several fake
// servers may share one store, like replicas of one cluster.
type fakeStore struct {
	mu        sync.Mutex
	rev       int64
	oldest    int64 // events before this revision are out of the history window
	nodes     map[string]*fakeNode
	events    []fs.Event
	changed   chan struct{} // closed and replaced at every new revision
	leases    map[int64]time.Duration
	lastLease int64
}

type fakeNode struct {
	dir   bool
	body  []byte
	rev   int64
	lease int64
}

func newFakeStore() *fakeStore {
	return &fakeStore{
		nodes:   map[string]*fakeNode{"/": {dir: true}},
		changed: make(chan struct{}),
		leases:  make(map[int64]time.Duration),
	}
}

// current returns the store's revision and a channel closed at the next one.
func (s *fakeStore) current() (int64, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rev, s.changed
}

// waitRev waits until the store has reached rev.
func (s *fakeStore) waitRev(ctx context.Context, rev int64) error {
	for {
		cur, changed := s.current()
		if cur >= rev {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (s *fakeStore) node(p string) (fakeNode, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.nodes[p]
	if !ok {
		return fakeNode{}, s.rev, &fs.Error{Kind: fs.KindNoEnt, Path: p}
	}
	return *n, s.rev, nil
}

func (s *fakeStore) stat(p string, n fakeNode) fs.Stat {
	if !n.dir {
		return fs.Stat{Type: fs.TypeFile, Size: int64(len(n.body)), Rev: n.rev, Lease: n.lease}
	}
	kids := len(s.children(p))
	return fs.Stat{Type: fs.TypeDir, Size: int64(kids), Rev: n.rev, Children: kids}
}

// children lists the direct children of dir, sorted; s.mu is held.
func (s *fakeStore) children(dir string) []fs.DirEntry {
	var out []fs.DirEntry
	prefix := strings.TrimSuffix(dir, "/") + "/"
	for p, n := range s.nodes {
		if p != "/" && strings.HasPrefix(p, prefix) && !strings.Contains(p[len(prefix):], "/") {
			t := fs.TypeFile
			if n.dir {
				t = fs.TypeDir
			}
			out = append(out, fs.DirEntry{Name: p[len(prefix):], Type: t})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// apply applies ops all-or-nothing in one new revision.
func (s *fakeStore) apply(ops []fs.Op) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := make(map[string]*fakeNode, len(s.nodes))
	for p, n := range s.nodes {
		c := *n
		next[p] = &c
	}
	rev := s.rev + 1
	var evs []fs.Event
	for _, op := range ops {
		if strings.HasPrefix(op.Path, "/ctl") {
			return 0, &fs.Error{Kind: fs.KindPermission, Path: op.Path}
		}
		if !strings.HasPrefix(op.Path, "/") {
			return 0, &fs.Error{Kind: fs.KindBadPath, Path: op.Path}
		}
		ev, err := applyOp(next, op, rev)
		if err != nil {
			return 0, err
		}
		evs = append(evs, ev...)
	}
	if len(evs) == 0 {
		return s.rev, nil
	}
	s.nodes, s.rev = next, rev
	s.events = append(s.events, evs...)
	close(s.changed)
	s.changed = make(chan struct{})
	return rev, nil
}

func applyOp(nodes map[string]*fakeNode, op fs.Op, rev int64) ([]fs.Event, error) {
	n := nodes[op.Path]
	switch {
	case op.Rev == fs.Missing && n != nil,
		op.Rev > 0 && (n == nil || n.rev > op.Rev):
		return nil, &fs.Error{Kind: fs.KindRevMismatch, Path: op.Path}
	}
	switch op.Kind {
	case fs.OpSet:
		if n != nil && n.dir {
			return nil, &fs.Error{Kind: fs.KindIsDir, Path: op.Path}
		}
		evs := mkdirs(nodes, path.Dir(op.Path), rev)
		nodes[op.Path] = &fakeNode{body: op.Body, rev: rev, lease: op.Lease}
		return append(evs, fs.Event{Rev: rev, Path: op.Path, Kind: fs.EventSet, Body: op.Body, Lease: op.Lease}), nil
	case fs.OpDel:
		if n == nil {
			return nil, &fs.Error{Kind: fs.KindNoEnt, Path: op.Path}
		}
		delete(nodes, op.Path)
		return []fs.Event{{Rev: rev, Path: op.Path, Kind: fs.EventDel}}, nil
	case fs.OpMkdir:
		return mkdirs(nodes, op.Path, rev), nil
	}
	return nil, nil
}

func mkdirs(nodes map[string]*fakeNode, dir string, rev int64) []fs.Event {
	if n := nodes[dir]; n != nil {
		return nil
	}
	evs := mkdirs(nodes, path.Dir(dir), rev)
	nodes[dir] = &fakeNode{dir: true, rev: rev}
	return append(evs, fs.Event{Rev: rev, Path: dir, Kind: fs.EventMkdir})
}

// eventsFrom returns the events at revision from or later that match glob,
// and the store's revision.
func (s *fakeStore) eventsFrom(from int64, glob string) ([]fs.Event, int64, <-chan struct{}, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if from < s.oldest {
		return nil, s.rev, s.changed, &fs.Error{Kind: fs.KindTooLate, Detail: "history starts later"}
	}
	var out []fs.Event
	for _, ev := range s.events {
		if ev.Rev >= from && globMatch(glob, ev.Path) {
			out = append(out, ev)
		}
	}
	return out, s.rev, s.changed, nil
}

// walk returns the files matching glob, sorted by path.
func (s *fakeStore) walk(glob string) ([]File, int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []File{}
	for p, n := range s.nodes {
		if !n.dir && globMatch(glob, p) {
			out = append(out, File{Path: p, Stat: s.stat(p, *n), Body: n.body})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, s.rev
}

// globMatch matches SPEC §1 globs: ? and * within a component, ** across
// any number of whole components.
func globMatch(glob, p string) bool {
	return matchParts(strings.Split(glob, "/")[1:], strings.Split(p, "/")[1:])
}

func matchParts(g, p []string) bool {
	switch {
	case len(g) == 0:
		return len(p) == 0
	case g[0] == "**":
		for i := 0; i <= len(p); i++ {
			if matchParts(g[1:], p[i:]) {
				return true
			}
		}
		return false
	case len(p) == 0:
		return false
	}
	ok, _ := path.Match(g[0], p[0])
	return ok && matchParts(g[1:], p[1:])
}

func (s *fakeStore) grant(ttl time.Duration) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastLease++
	s.leases[s.lastLease] = ttl
	return s.lastLease
}

func (s *fakeStore) lease(id int64) (time.Duration, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ttl, ok := s.leases[id]
	if !ok {
		return 0, &fs.Error{Kind: fs.KindNoLease, Detail: "no such lease"}
	}
	return ttl, nil
}

func (s *fakeStore) revoke(id int64) (int64, error) {
	if _, err := s.lease(id); err != nil {
		return 0, err
	}
	s.mu.Lock()
	delete(s.leases, id)
	var ops []fs.Op
	for p, n := range s.nodes {
		if n.lease == id {
			ops = append(ops, fs.Op{Kind: fs.OpDel, Path: p, Rev: fs.Clobber})
		}
	}
	s.mu.Unlock()
	return s.apply(ops)
}
