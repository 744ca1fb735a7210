package wire

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/doozerfs/doozerfs/fs"
)

// Session is a lease kept alive in the background: files bound to it live
// as long as the session, and vanish about one TTL after the process that
// holds it dies. It is the base of Lock and Campaign, and of
// `doozerfs register`.
type Session struct {
	c      *Client
	id     int64
	ttl    time.Duration
	cancel context.CancelFunc
	done   chan struct{}

	mu  sync.Mutex
	err error
}

// NewSession grants a lease of the given TTL and renews it every third of
// the TTL until Close, or until the lease is lost (Done is closed then,
// and Err says why). ctx bounds only the grant.
//
// The lease is taken as lost when the cluster answers NO_LEASE, and also
// when no renewal has succeeded for a whole TTL (the cluster could not be
// reached, or this process was paused): the cluster may have expired it
// by then, and a lock or a leadership bound to it may have passed to
// another. A renewal's success is counted from when it was sent, so the
// session ends no later than the cluster could expire the lease.
func (c *Client) NewSession(ctx context.Context, ttl time.Duration) (*Session, error) {
	sent := time.Now()
	id, err := c.LeaseGrant(ctx, ttl)
	if err != nil {
		return nil, err
	}
	kctx, cancel := context.WithCancel(context.Background())
	s := &Session{c: c, id: id, ttl: ttl, cancel: cancel, done: make(chan struct{})}
	go s.keepAlive(kctx, sent)
	return s, nil
}

// ID returns the lease id, to bind files with Client.SetLease.
func (s *Session) ID() int64 { return s.id }

// TTL returns the lease's time to live.
func (s *Session) TTL() time.Duration { return s.ttl }

// Done is closed when the session has ended: Close, or the lease lost.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err returns why the session ended (nil while it lives, or after Close).
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *Session) keepAlive(ctx context.Context, lastOK time.Time) {
	defer close(s.done)
	every := max(s.ttl/3, 10*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	// lastOK is when the last renewal that succeeded was sent: the lease
	// lives at least until lastOK+ttl, and may end then.
	expire := time.NewTimer(time.Until(lastOK.Add(s.ttl)))
	defer expire.Stop()
	var lastErr error
	for {
		select {
		case <-ctx.Done():
			return
		case <-expire.C:
			s.lost(&fs.Error{Kind: fs.KindNoLease, Detail: fmt.Sprintf(
				"lease %d: no renewal succeeded for its whole TTL %v; it may have expired (last error: %v)", s.id, s.ttl, lastErr)})
			return
		case <-t.C:
		}
		sent := time.Now()
		rctx, cancel := context.WithDeadline(ctx, minTime(sent.Add(every), lastOK.Add(s.ttl)))
		_, err := s.c.LeaseRenew(rctx, s.id)
		cancel()
		switch {
		case err == nil:
			lastOK = sent
			expire.Reset(time.Until(lastOK.Add(s.ttl)))
		case fs.KindOf(err) == fs.KindNoLease:
			s.lost(err)
			return
		default:
			// No leader for a moment, a replica failing over: retried
			// at the next tick, until the TTL runs out.
			lastErr = err
		}
	}
}

func (s *Session) lost(err error) {
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// Close stops renewing and revokes the lease, deleting its files at once.
func (s *Session) Close(ctx context.Context) error {
	s.cancel()
	<-s.done
	err := s.c.LeaseRevoke(ctx, s.id)
	if fs.KindOf(err) == fs.KindNoLease {
		return nil
	}
	return err
}

// Lock is a held lock: an ephemeral file created with rev 0 (only if
// missing) and bound to a session.
type Lock struct {
	c    *Client
	Path string
	// Token is the lock file's revision. It grows with every acquisition
	// of the lock, so a resource that remembers the highest token it has
	// seen can refuse a holder whose lock was lost (a fencing token).
	Token int64
}

// Lock takes the lock at path, waiting for it as long as ctx allows. The
// lock file holds value and is bound to s, so it is released when s ends,
// by Unlock, Session.Close or the death of the process.
func (c *Client) Lock(ctx context.Context, path string, s *Session, value []byte) (*Lock, error) {
	for {
		select {
		case <-s.Done():
			return nil, sessionLost(s)
		default:
		}
		rev, err := c.SetLease(ctx, path, 0, value, s.ID())
		if err == nil {
			return &Lock{c: c, Path: path, Token: rev}, nil
		}
		if fs.KindOf(err) == fs.KindTimeout && ctx.Err() == nil {
			// The outcome is unknown: look again. If the create took
			// effect, the file is found bound to s below.
			continue
		}
		if !errors.Is(err, fs.ErrRevMismatch) {
			return nil, err
		}
		st, err := c.Stat(ctx, path, 0)
		if errors.Is(err, fs.ErrNoEnt) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if st.Lease == s.ID() {
			// Held by this session already (an earlier attempt whose
			// answer was lost took it): waiting for it to go would
			// wait for ever.
			return &Lock{c: c, Path: path, Token: st.Rev}, nil
		}
		// Held by someone else: wait for the file to go.
		if err := c.waitGone(ctx, path, st.Rev); err != nil {
			return nil, err
		}
	}
}

// waitGone waits until path, which had revision rev, is deleted or
// replaced.
func (c *Client) waitGone(ctx context.Context, path string, rev int64) error {
	from := max(rev+1, 1)
	for {
		ev, err := c.Wait(ctx, path, from)
		if errors.Is(err, fs.ErrTooLate) {
			return nil // the history moved on: look again
		}
		if err != nil {
			return err
		}
		if ev.Kind == fs.EventDel {
			return nil
		}
		from = ev.Rev + 1
	}
}

func sessionLost(s *Session) error {
	if err := s.Err(); err != nil {
		return err
	}
	return &fs.Error{Kind: fs.KindNoLease, Detail: "the session has ended"}
}

// Unlock releases the lock if this holder still has it.
func (l *Lock) Unlock(ctx context.Context) error {
	_, err := l.c.Del(ctx, l.Path, l.Token)
	if errors.Is(err, fs.ErrNoEnt) || errors.Is(err, fs.ErrRevMismatch) {
		return nil // already gone: lease expired, or revoked
	}
	return err
}

// Campaign runs for leader at path with value, the leader's identity
// (its address, say): it returns once this candidate leads, with the
// election's term in Token. Leadership lasts as long as s, or until
// Resign. It is Lock under another name: the lock file is the leader's
// record, and Leader reads it.
func (c *Client) Campaign(ctx context.Context, path string, s *Session, value []byte) (*Lock, error) {
	return c.Lock(ctx, path, s, value)
}

// Resign gives up leadership.
func (l *Lock) Resign(ctx context.Context) error { return l.Unlock(ctx) }

// Leader returns the value of the current leader at path and its term
// (the lock file's revision); NOENT when nobody leads.
func (c *Client) Leader(ctx context.Context, path string) ([]byte, int64, error) {
	body, st, err := c.Get(ctx, path, 0)
	if err != nil {
		return nil, 0, err
	}
	return body, st.Rev, nil
}
