package replica

import (
	"context"
	"time"

	"github.com/doozerfs/doozerfs/consensus"
	"github.com/doozerfs/doozerfs/fs"
)

// leaseClock keeps the deadlines of live leases. Every replica keeps one,
// but only the leader acts on it: when a lease's TTL passes without a
// renewal, the leader proposes MutLeaseExpire, and the expiry is applied
// everywhere through the log like any other change. A new leader restarts
// every deadline from the moment it took over, so a lease never expires
// early because of a leader change; it may live up to one TTL longer.
type leaseClock struct {
	ttl       map[int64]time.Duration
	deadline  map[int64]time.Time
	proposed  map[int64]time.Time // expiry proposed at this time
	wasLeader bool
}

func (l *leaseClock) init(t *fs.Tree, now time.Time) {
	l.ttl = make(map[int64]time.Duration)
	l.deadline = make(map[int64]time.Time)
	l.proposed = make(map[int64]time.Time)
	for _, ls := range t.Leases() {
		l.ttl[ls.ID] = time.Duration(ls.TTL)
		l.deadline[ls.ID] = now.Add(time.Duration(ls.TTL))
	}
}

// applied follows the lease mutations the log applies.
func (l *leaseClock) applied(t *fs.Tree, m *fs.Mutation, res fs.Result, err error, now time.Time) {
	if err != nil {
		return
	}
	if l.ttl == nil {
		// Open replays the WAL before the loop starts the clock; the
		// loop's init then restarts every deadline.
		l.init(t, now)
	}
	switch m.Kind {
	case fs.MutLeaseGrant:
		l.ttl[res.Lease] = time.Duration(m.TTL)
		l.deadline[res.Lease] = now.Add(time.Duration(m.TTL))
	case fs.MutLeaseRenew:
		if ttl, ok := l.ttl[m.Lease]; ok {
			l.deadline[m.Lease] = now.Add(ttl)
		}
	case fs.MutLeaseRevoke, fs.MutLeaseExpire:
		delete(l.ttl, m.Lease)
		delete(l.deadline, m.Lease)
		delete(l.proposed, m.Lease)
	}
}

// tick proposes the expiry of overdue leases when this replica leads.
func (l *leaseClock) tick(r *Replica, now time.Time) {
	leader := consensus.Role(r.role.Load()) == consensus.RoleLeader
	if leader && !l.wasLeader {
		for id, ttl := range l.ttl {
			l.deadline[id] = now.Add(ttl)
		}
		clear(l.proposed)
	}
	l.wasLeader = leader
	if !leader {
		return
	}
	for id, d := range l.deadline {
		if now.Before(d) {
			continue
		}
		if at, ok := l.proposed[id]; ok && now.Sub(at) < 2*time.Second {
			continue
		}
		m := &fs.Mutation{Kind: fs.MutLeaseExpire, Lease: id, System: true, Time: now.UnixNano()}
		data, err := m.MarshalBinary()
		if err != nil {
			continue
		}
		l.proposed[id] = now
		r.submit(&proposal{m: m, data: data, res: make(chan propResult, 1)})
	}
}

// LeaseGrant creates a lease with the given TTL.
func (r *Replica) LeaseGrant(ctx context.Context, ttl time.Duration) (int64, int64, error) {
	if ttl <= 0 {
		return 0, 0, &fs.Error{Kind: fs.KindBadRequest, Detail: "a lease needs a TTL above zero"}
	}
	res, err := r.propose(ctx, &fs.Mutation{Kind: fs.MutLeaseGrant, TTL: int64(ttl)})
	return res.Lease, res.Rev, err
}

// LeaseRenew restarts the lease's TTL and returns it.
func (r *Replica) LeaseRenew(ctx context.Context, id int64) (time.Duration, error) {
	if _, err := r.propose(ctx, &fs.Mutation{Kind: fs.MutLeaseRenew, Lease: id}); err != nil {
		return 0, err
	}
	for _, l := range r.tree.Leases() {
		if l.ID == id {
			return time.Duration(l.TTL), nil
		}
	}
	return 0, &fs.Error{Kind: fs.KindNoLease, Detail: "the lease ended right after its renewal"}
}

// LeaseRevoke ends the lease and deletes its files in one revision.
func (r *Replica) LeaseRevoke(ctx context.Context, id int64) (int64, error) {
	res, err := r.propose(ctx, &fs.Mutation{Kind: fs.MutLeaseRevoke, Lease: id})
	return res.Rev, err
}

// SessionLease returns this replica's session lease (TTL
// Config.SessionTTL), granting it on first use, and keeps it alive until
// the replica stops.
func (r *Replica) SessionLease(ctx context.Context) (int64, error) {
	r.sessMu.Lock()
	defer r.sessMu.Unlock()
	if r.sess != 0 && r.sessErr == nil {
		return r.sess, nil
	}
	id, _, err := r.LeaseGrant(ctx, r.cfg.SessionTTL)
	if err != nil {
		return 0, err
	}
	r.sess, r.sessErr = id, nil
	go r.keepSession(id)
	return id, nil
}

func (r *Replica) keepSession(id int64) {
	every := r.cfg.SessionTTL / 3
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-r.donec:
			return
		case <-r.stopc:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), every)
		_, err := r.LeaseRenew(ctx, id)
		cancel()
		if fs.KindOf(err) == fs.KindNoLease {
			r.sessMu.Lock()
			r.sessErr = err
			r.sessMu.Unlock()
			r.log.Warn("the session lease expired; ephemeral files of this host are gone", "lease", id)
			return
		}
	}
}
