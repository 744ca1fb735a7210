package fs

import (
	"math"
	"sort"
	"strconv"
)

// Leases are state, timers are not: the replica's leader decides when a
// lease expires and proposes MutLeaseExpire; Apply only records grants and
// deletes what a revoke or an expiry names.

// grant creates a lease. It takes no revision.
func (t *Tree) grant(m *Mutation) (Result, error) {
	if m.TTL <= 0 {
		return Result{}, Errorf(KindBadRequest, "", "lease TTL %d is not positive", m.TTL)
	}
	if t.lastLease == math.MaxInt64 {
		return Result{}, &Error{Kind: KindOther, Detail: "lease ids exhausted"}
	}
	t.mu.Lock()
	t.lastLease++
	id := t.lastLease
	t.leases[id] = m.TTL
	t.mu.Unlock()
	return Result{Rev: t.Rev(), Lease: id}, nil
}

// renew checks that a lease exists. It takes no revision.
func (t *Tree) renew(m *Mutation) (Result, error) {
	if !t.leaseLive(m.Lease) {
		return Result{}, Errorf(KindNoLease, "", "lease %d is not live", m.Lease)
	}
	return Result{Rev: t.Rev(), Lease: m.Lease}, nil
}

// revoke deletes a lease and every file bound to it, in one revision if
// there are any (their del events sorted by path). An expiry is decided by
// the leader, so it may delete under /ctl even when not marked System; a
// client's revoke may not.
func (t *Tree) revoke(m *Mutation) (Result, error) {
	if !t.leaseLive(m.Lease) {
		return Result{}, Errorf(KindNoLease, "", "lease %d is not live", m.Lease)
	}
	if t.Rev() >= MaxRev {
		return Result{}, &Error{Kind: KindOther, Detail: "revisions exhausted"}
	}
	system := m.System || m.Kind == MutLeaseExpire
	paths := make([]string, 0, len(t.bound[m.Lease]))
	for p := range t.bound[m.Lease] {
		if !system && isCtl(p) {
			return Result{}, Errorf(KindPermission, p, "lease %d holds a file under /ctl", m.Lease)
		}
		paths = append(paths, p)
	}
	sort.Strings(paths)
	x := t.begin(m.Time, system)
	for _, p := range paths {
		at := x.locate(p)
		if at.cur == nil || at.cur.dir || at.cur.lease != m.Lease {
			panic("fs: lease " + itoa(m.Lease) + " binds " + p + ", which is not its file")
		}
		x.remove(at, p)
	}
	x.drop = m.Lease
	res := t.commit(x)
	res.Lease = m.Lease
	return res, nil
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
