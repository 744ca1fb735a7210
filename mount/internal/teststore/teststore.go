// Package teststore is a mount.Store over an in-memory fs.Tree, for the
// mount's tests: it applies each transaction at once, stamping the time,
// and wakes followers. Two mounts over one Store stand in for two hosts.
//
// All methods are safe for concurrent use. Hooks run in the caller's
// goroutine, before the transaction is applied.
package teststore

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/doozerfs/doozerfs/fs"
)

// LeaseTTL is the TTL of the session lease, in nanoseconds.
const LeaseTTL = int64(10 * time.Second)

// Store is the test store.
type Store struct {
	tree     *fs.Tree
	readOnly atomic.Bool

	mu    sync.Mutex // serializes applies
	lease int64      // the session lease (0: not granted yet)
	hook  func(ctx context.Context, ops []fs.Op) error
	txns  int

	nmu sync.Mutex
	rev int64
	c   chan struct{} // closed and replaced at each new revision
}

// New returns an empty store.
func New() *Store {
	return &Store{tree: fs.New(fs.DefaultConfig()), c: make(chan struct{})}
}

// Tree returns the tree.
func (s *Store) Tree() *fs.Tree { return s.tree }

// Changed returns the current revision and a channel closed at the next.
func (s *Store) Changed() (int64, <-chan struct{}) {
	s.nmu.Lock()
	defer s.nmu.Unlock()
	return s.rev, s.c
}

// Rev returns the current revision.
func (s *Store) Rev() int64 { return s.tree.Rev() }

// Txn applies ops as one transaction, after the hook if one is set.
func (s *Store) Txn(ctx context.Context, ops []fs.Op) (int64, error) {
	s.mu.Lock()
	hook := s.hook
	s.txns++
	s.mu.Unlock()
	if hook != nil {
		if err := hook(ctx, ops); err != nil {
			return 0, err
		}
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if s.readOnly.Load() {
		return 0, &fs.Error{Kind: fs.KindReadOnly, Detail: "no quorum (test)"}
	}
	res, err := s.Apply(&fs.Mutation{Kind: fs.MutTxn, Ops: ops})
	return res.Rev, err
}

// Txns returns how many times Txn was called.
func (s *Store) Txns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.txns
}

// SetHook makes Txn call hook first; a non-nil error is returned instead
// of applying. Nil removes it.
func (s *Store) SetHook(hook func(ctx context.Context, ops []fs.Op) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hook = hook
}

// Apply applies m, stamped with the current time, and wakes followers.
func (s *Store) Apply(m *fs.Mutation) (fs.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applyLocked(m)
}

func (s *Store) applyLocked(m *fs.Mutation) (fs.Result, error) {
	m.Time = time.Now().UnixNano()
	res, err := s.tree.Apply(m)
	if err == nil && res.Changed {
		s.nmu.Lock()
		s.rev = res.Rev
		close(s.c)
		s.c = make(chan struct{})
		s.nmu.Unlock()
	}
	return res, err
}

// Set writes body at path unconditionally, as another host would, and
// returns the new revision. It panics on error.
func (s *Store) Set(path string, body []byte) int64 {
	return s.must(fs.Op{Kind: fs.OpSet, Path: path, Rev: fs.Clobber, Body: body})
}

// Del deletes path unconditionally.
func (s *Store) Del(path string) int64 {
	return s.must(fs.Op{Kind: fs.OpDel, Path: path, Rev: fs.Clobber})
}

// Mkdir makes the directory path.
func (s *Store) Mkdir(path string) int64 {
	return s.must(fs.Op{Kind: fs.OpMkdir, Path: path, Rev: fs.Clobber})
}

// TxnOps applies ops as one transaction, bypassing the hook and the
// read-only switch, and panics on error.
func (s *Store) TxnOps(ops ...fs.Op) int64 {
	res, err := s.Apply(&fs.Mutation{Kind: fs.MutTxn, Ops: ops})
	if err != nil {
		panic("teststore: " + err.Error())
	}
	return res.Rev
}

func (s *Store) must(op fs.Op) int64 { return s.TxnOps(op) }

// Get returns the body at path, or nil and false.
func (s *Store) Get(path string) ([]byte, bool) {
	b, _, err := s.tree.View().Get(path)
	return b, err == nil
}

// SetReadOnly makes Writable and Txn fail with READONLY (no quorum).
func (s *Store) SetReadOnly(ro bool) { s.readOnly.Store(ro) }

// Writable returns READONLY when SetReadOnly(true) was called.
func (s *Store) Writable() error {
	if s.readOnly.Load() {
		return &fs.Error{Kind: fs.KindReadOnly, Detail: "no quorum (test)"}
	}
	return nil
}

// SessionLease grants the session lease on first use.
func (s *Store) SessionLease(ctx context.Context) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lease != 0 {
		return s.lease, nil
	}
	res, err := s.applyLocked(&fs.Mutation{Kind: fs.MutLeaseGrant, TTL: LeaseTTL})
	if err != nil {
		return 0, err
	}
	s.lease = res.Lease
	return s.lease, nil
}

// ExpireSession expires the session lease, deleting its files, as the
// leader would after the host died.
func (s *Store) ExpireSession() (fs.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.lease
	s.lease = 0
	return s.applyLocked(&fs.Mutation{Kind: fs.MutLeaseExpire, Lease: id})
}

// WaitRev blocks until the store is at revision rev or later, or ctx ends.
func (s *Store) WaitRev(ctx context.Context, rev int64) error {
	for {
		cur, c := s.Changed()
		if cur >= rev {
			return nil
		}
		select {
		case <-c:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
