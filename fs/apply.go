package fs

import "strconv"

// Apply applies one mutation and reports what it did. It must be called from
// one goroutine at a time (the replica's apply loop), never concurrently with
// ApplyEvents. It never reads a clock: times come from m.Time.
//
// On error, an *Error, the state is unchanged and no revision is taken. A
// TXN that changes nothing, NOP, LEASE_GRANT and LEASE_RENEW succeed without
// a new revision (Result.Changed is false). Apply keeps the Ops' Body
// slices in the tree: the caller must not modify them afterwards. The
// Result's Events are shared with the history and must not be modified.
func (t *Tree) Apply(m *Mutation) (Result, error) {
	if m == nil {
		return Result{}, &Error{Kind: KindBadRequest, Detail: "nil mutation"}
	}
	switch m.Kind {
	case MutTxn:
		return t.applyTxn(m)
	case MutNop:
		return Result{Rev: t.Rev()}, nil
	case MutLeaseGrant:
		return t.grant(m)
	case MutLeaseRenew:
		return t.renew(m)
	case MutLeaseRevoke, MutLeaseExpire:
		return t.revoke(m)
	}
	return Result{}, Errorf(KindBadRequest, "", "unknown mutation kind %d", m.Kind)
}

// applyTxn applies the ops of a TXN in order, all or nothing.
func (t *Tree) applyTxn(m *Mutation) (Result, error) {
	if t.Rev() >= MaxRev {
		return Result{}, &Error{Kind: KindOther, Detail: "revisions exhausted"}
	}
	x := t.begin(m.Time, m.System)
	for i := range m.Ops {
		if err := x.op(&m.Ops[i]); err != nil {
			if e, ok := err.(*Error); ok && len(m.Ops) > 1 {
				e.Detail = joinDetail(opDetail(i, &m.Ops[i]), e.Detail)
			}
			return Result{}, err
		}
	}
	return t.commit(x), nil
}

// commit publishes the revision that x built, if it changed anything.
func (t *Tree) commit(x *txn) Result {
	if len(x.events) == 0 {
		t.mu.Lock()
		x.finishLocked()
		t.mu.Unlock()
		return Result{Rev: t.Rev()}
	}
	v := &View{rev: x.rev, root: x.root}
	t.mu.Lock()
	x.finishLocked()
	t.publishLocked(v, x.events, x.undo)
	t.mu.Unlock()
	return Result{Rev: v.rev, Changed: true, Events: x.events}
}

func opDetail(i int, o *Op) string {
	return "op " + strconv.Itoa(i) + " (" + o.Kind.String() + ")"
}

func joinDetail(a, b string) string {
	if b == "" {
		return a
	}
	return a + ": " + b
}
