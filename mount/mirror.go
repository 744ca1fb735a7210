package mount

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/doozerfs/doozerfs/fs"
	"github.com/doozerfs/doozerfs/wire"
)

// Mirror is the Store of a host that runs no replica (doozerfs mount DIR
// --addr …): an in-memory copy of the cluster's tree, loaded from a
// SNAPSHOT and kept current by a WATCH of the mounted subtree, so that
// reads never cross the network. Writes go to the cluster through the
// wire.Client and return once the WATCH has brought them here.
//
// It runs two goroutines: the follower, the only one to change the tree
// (ApplyEvents), and a health check that asks the replica every
// HealthEvery whether it knows a leader (Writable). A third keeps the
// session lease alive once SessionLease was called. Close stops them.
type Mirror struct {
	c    *wire.Client
	opts MirrorOptions
	glob string

	tree atomic.Pointer[fs.Tree]

	nmu      sync.Mutex
	rev      int64         // the revision applied
	changedc chan struct{} // closed and replaced at each apply

	mu       sync.Mutex
	writeErr error // why writes cannot succeed now (nil: they may)
	lease    int64 // the session lease (0: none yet, or lost)

	checkc chan struct{} // asks the health check to look now; buffered 1

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var _ Store = (*Mirror)(nil)

// MirrorOptions configures a Mirror. The zero value follows the whole
// tree.
type MirrorOptions struct {
	// Root is the subtree to follow; it should be the mount's Root.
	// "" or "/" follows everything.
	Root string

	// LeaseTTL is the TTL of the session lease that ephemeral files are
	// bound to (0 means 10 s). It is renewed every third of it.
	LeaseTTL time.Duration

	// HealthEvery is how often the replica is asked whether it knows a
	// leader (0 means 2 s); Writable reports READONLY when it does not
	// or cannot be reached. While it does not, it is asked sooner: after
	// 50 ms, then twice as long each time, up to HealthEvery.
	HealthEvery time.Duration

	// History is the tree's history window in revisions (0: fs default).
	History int

	// Logger receives a line when the mirror reloads or loses the
	// cluster (nil: no logging).
	Logger *slog.Logger
}

func (o MirrorOptions) withDefaults() MirrorOptions {
	if o.Root == "" {
		o.Root = "/"
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = 10 * time.Second
	}
	if o.HealthEvery <= 0 {
		o.HealthEvery = 2 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// NewMirror loads the tree from the cluster c is connected to and starts
// following it. ctx bounds the initial load only. The caller keeps
// ownership of c and closes it after the Mirror.
func NewMirror(ctx context.Context, c *wire.Client, opts MirrorOptions) (*Mirror, error) {
	opts = opts.withDefaults()
	if err := fs.ValidPath(opts.Root); err != nil {
		return nil, fmt.Errorf("mirror: root: %w", err)
	}
	m := &Mirror{c: c, opts: opts, glob: "/**", changedc: make(chan struct{}), checkc: make(chan struct{}, 1)}
	if opts.Root != "/" {
		m.glob = opts.Root + "/**"
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	w, err := m.load(ctx)
	if err != nil {
		m.cancel()
		return nil, err
	}
	m.wg.Add(2)
	go m.follow(w)
	go m.health()
	return m, nil
}

// load reads a snapshot and starts watching from the revision after it.
func (m *Mirror) load(ctx context.Context) (*wire.Watch, error) {
	var buf bytes.Buffer
	if err := m.c.Snapshot(ctx, &buf, nil); err != nil {
		return nil, fmt.Errorf("mirror: snapshot: %w", err)
	}
	t, err := readSnapshotStream(buf.Bytes(), fs.Config{History: m.opts.History})
	if err != nil {
		return nil, fmt.Errorf("mirror: snapshot: %w", err)
	}
	w, err := m.c.Watch(m.ctx, m.glob, t.Rev()+1)
	if err != nil {
		return nil, fmt.Errorf("mirror: watch: %w", err)
	}
	m.tree.Store(t)
	m.advance(t.Rev())
	return w, nil
}

// follow applies the watched events until Close. When the stream cannot
// go on (TOO_LATE: this host was away longer than the cluster's history),
// or an event does not fit the tree, it loads a new snapshot; the mount
// then finds its revision gone from the history and drops its caches.
func (m *Mirror) follow(w *wire.Watch) {
	defer m.wg.Done()
	for {
		batch, err := w.NextBatch(m.ctx)
		switch {
		case m.ctx.Err() != nil:
			w.Close()
			return
		case err != nil && isTemporary(err):
			continue
		case err == nil:
			err = m.apply(batch)
		}
		if err != nil {
			m.opts.Logger.Warn("mirror: reloading the tree", "err", err)
			w.Close()
			if w = m.reload(); w == nil {
				return
			}
		}
	}
}

func isTemporary(err error) bool {
	k := fs.KindOf(err)
	return k == fs.KindUnavailable || k == fs.KindTimeout
}

// apply applies a batch of whole revisions.
func (m *Mirror) apply(batch []fs.Event) error {
	t := m.tree.Load()
	for i := 0; i < len(batch); {
		j := i
		for j < len(batch) && batch[j].Rev == batch[i].Rev {
			j++
		}
		if err := t.ApplyEvents(batch[i].Rev, batch[i:j]); err != nil {
			return err
		}
		m.advance(batch[i].Rev)
		i = j
	}
	return nil
}

// reload loads a new snapshot, retrying until it works or Close.
func (m *Mirror) reload() *wire.Watch {
	for delay := 100 * time.Millisecond; ; delay = min(2*delay, 5*time.Second) {
		ctx, cancel := context.WithTimeout(m.ctx, time.Minute)
		w, err := m.load(ctx)
		cancel()
		if err == nil {
			return w
		}
		m.opts.Logger.Warn("mirror: reload failed", "err", err)
		select {
		case <-m.ctx.Done():
			return nil
		case <-time.After(delay):
		}
	}
}

// advance records that revision rev is applied and wakes followers.
func (m *Mirror) advance(rev int64) {
	m.nmu.Lock()
	defer m.nmu.Unlock()
	if rev <= m.rev {
		return
	}
	m.rev = rev
	close(m.changedc)
	m.changedc = make(chan struct{})
}

// health asks the replica whether a leader is known: every HealthEvery
// while writes may succeed, and sooner while they cannot (after 50 ms,
// doubling up to HealthEvery), so that writes resume soon after a leader
// is elected or the replica comes back.
func (m *Mirror) health() {
	defer m.wg.Done()
	const firstRetry = 50 * time.Millisecond
	retry := firstRetry
	for {
		// A slow answer is not a lost cluster: the check may take longer
		// than its interval (a loaded machine) before writes are refused.
		ctx, cancel := context.WithTimeout(m.ctx, max(m.opts.HealthEvery, 2*time.Second))
		self, err := m.c.Self(ctx)
		cancel()
		switch {
		case m.ctx.Err() != nil:
			return
		case err != nil:
			err = &fs.Error{Kind: fs.KindReadOnly, Detail: "no replica reachable: " + err.Error()}
		case self.Leader == "":
			err = &fs.Error{Kind: fs.KindReadOnly, Detail: "replica " + self.Name + " knows no leader"}
		}
		m.mu.Lock()
		if (err == nil) != (m.writeErr == nil) {
			m.opts.Logger.Info("mirror: writable changed", "err", err)
		}
		m.writeErr = err
		m.mu.Unlock()
		next := m.opts.HealthEvery
		if err != nil {
			next = min(retry, next)
			retry *= 2
		} else {
			retry = firstRetry
		}
		select {
		case <-m.ctx.Done():
			return
		case <-time.After(next):
		case <-m.checkc:
			retry = firstRetry
		}
	}
}

// unreachable records that a commit found no replica: writes are refused
// with READONLY from now on, until the health check, asked to look again
// at once, finds a leader.
func (m *Mirror) unreachable(err error) {
	m.mu.Lock()
	if m.writeErr == nil {
		m.writeErr = &fs.Error{Kind: fs.KindReadOnly, Detail: "no replica reachable: " + err.Error()}
		m.opts.Logger.Info("mirror: writable changed", "err", m.writeErr)
	}
	m.mu.Unlock()
	select {
	case m.checkc <- struct{}{}:
	default:
	}
}

// Tree returns the mirrored tree.
func (m *Mirror) Tree() *fs.Tree { return m.tree.Load() }

// Changed returns the applied revision and a channel closed at the next.
func (m *Mirror) Changed() (int64, <-chan struct{}) {
	m.nmu.Lock()
	defer m.nmu.Unlock()
	return m.rev, m.changedc
}

// Txn commits ops in the cluster and waits until the watch has applied
// the revision here. When no replica can be reached (or the connection
// broke under the commit), writes are refused (Writable) from then until
// the health check, asked to look at once, finds a leader again.
func (m *Mirror) Txn(ctx context.Context, ops []fs.Op) (int64, error) {
	rev, err := m.c.Txn(ctx, ops)
	if err != nil {
		if isTemporary(err) { // no replica, or the connection broke
			m.unreachable(err)
		}
		return 0, err
	}
	for {
		cur, c := m.Changed()
		if cur >= rev {
			return rev, nil
		}
		select {
		case <-c:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// Writable reports what the last health check found.
func (m *Mirror) Writable() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.writeErr
}

// SessionLease returns this host's lease, granting it on first use and
// then renewing it every third of its TTL. If it is ever lost (the
// cluster could not be reached for a whole TTL), the next call grants a
// new one.
func (m *Mirror) SessionLease(ctx context.Context) (int64, error) {
	m.mu.Lock()
	id := m.lease
	m.mu.Unlock()
	if id != 0 {
		return id, nil
	}
	id, err := m.c.LeaseGrant(ctx, m.opts.LeaseTTL)
	if err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.lease != 0 { // another call won
		go m.c.LeaseRevoke(m.ctx, id)
		return m.lease, nil
	}
	m.lease = id
	m.wg.Add(1)
	go m.keepAlive(id)
	return id, nil
}

// keepAlive renews lease id until Close or until it is lost.
func (m *Mirror) keepAlive(id int64) {
	defer m.wg.Done()
	t := time.NewTicker(m.opts.LeaseTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(m.ctx, m.opts.LeaseTTL/3)
		_, err := m.c.LeaseRenew(ctx, id)
		cancel()
		if fs.KindOf(err) == fs.KindNoLease {
			m.opts.Logger.Warn("mirror: the session lease was lost; its ephemeral files are gone", "lease", id)
			m.mu.Lock()
			m.lease = 0
			m.mu.Unlock()
			return
		}
	}
}

// Close stops following and revokes the session lease, so that this
// host's ephemeral files vanish now rather than one TTL later.
func (m *Mirror) Close() error {
	m.cancel()
	m.wg.Wait()
	m.mu.Lock()
	id := m.lease
	m.lease = 0
	m.mu.Unlock()
	if id == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return m.c.LeaseRevoke(ctx, id)
}
