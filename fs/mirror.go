package fs

// ApplyEvents moves a mirror tree to revision rev by replaying evs, the
// events of that revision on the source tree (a remote mount fed by WATCH,
// for example). Revisions between the current one and rev are taken to
// have changed nothing here (a filtered watch skips them); evs may be empty.
// Replaying every revision's events gives a tree equal to the source at
// each revision: the same bodies, file and directory revs and times, and
// files' leases. The lease table itself is not mirrored: Leases stays as it
// was, while Stat.Lease and LeaseFiles follow the events.
//
// rev must be above Rev() and every event must carry it. An event that does
// not fit the tree (a set under a missing directory, a del of a missing
// path, a mkdir of an existing one, ...) is an error and, like every error,
// leaves the tree unchanged. Like Apply, it must be called from the apply
// goroutine, and it keeps the events' bodies.
func (t *Tree) ApplyEvents(rev int64, evs []Event) error {
	cur := t.Rev()
	if rev <= cur || rev > MaxRev {
		return Errorf(KindBadRequest, "", "revision %d is not after the current %d, or beyond the last", rev, cur)
	}
	x := t.begin(0, true)
	x.rev = rev
	for i := range evs {
		if err := x.replay(&evs[i]); err != nil {
			if e, ok := err.(*Error); ok {
				e.Detail = joinDetail("event "+itoa(int64(i))+" ("+evs[i].Kind.String()+")", e.Detail)
			}
			return err
		}
	}
	v := &View{rev: rev, root: x.root}
	t.mu.Lock()
	x.finishLocked()
	t.publishLocked(v, x.events, x.undo)
	t.mu.Unlock()
	return nil
}

// replay applies one event of a mirror's revision.
func (x *txn) replay(ev *Event) error {
	if ev.Rev != x.rev {
		return Errorf(KindBadRequest, ev.Path, "event of revision %d replayed as %d", ev.Rev, x.rev)
	}
	if err := ValidPath(ev.Path); err != nil {
		return err
	}
	at := x.locate(ev.Path)
	x.time = ev.Time
	switch {
	case ev.Kind != EventSet && ev.Kind != EventDel && ev.Kind != EventMkdir:
		return Errorf(KindBadRequest, ev.Path, "unknown event kind %d", ev.Kind)
	case len(at.comps) == 0:
		return &Error{Kind: KindIsDir, Path: ev.Path, Detail: "/ is never changed"}
	case at.notDir:
		return &Error{Kind: KindNotDir, Path: ev.Path, Detail: "a parent is a file"}
	case at.cur == nil && len(at.nodes) < len(at.comps):
		return &Error{Kind: KindNoEnt, Path: ev.Path, Detail: "the parent is missing"}
	}
	switch ev.Kind {
	case EventSet:
		return x.replaySet(ev, at)
	case EventMkdir:
		if at.cur != nil {
			return &Error{Kind: KindRevMismatch, Path: ev.Path, Detail: "exists"}
		}
		x.emit(*ev, x.create(at, newDir(at.name(), x.rev, x.time)))
		return nil
	default:
		if at.cur == nil {
			return &Error{Kind: KindNoEnt, Path: ev.Path}
		}
		if at.cur.dir && at.cur.kids.Len() > 0 {
			return &Error{Kind: KindNotEmpty, Path: ev.Path}
		}
		x.remove(at, ev.Path)
		return nil
	}
}

func (x *txn) replaySet(ev *Event, at place) error {
	if at.cur != nil && at.cur.dir {
		return &Error{Kind: KindIsDir, Path: ev.Path}
	}
	from, u := x.putFile(at, ev.Body, ev.Lease)
	if from != ev.Lease {
		x.binds = append(x.binds, bind{path: ev.Path, from: from, to: ev.Lease})
	}
	x.emit(*ev, u)
	return nil
}
