package fs

import (
	"testing"
)

func TestAMirrorFedByEventsEqualsItsSourceAtEveryRevision(t *testing.T) {
	src, mirror := New(Config{}), New(Config{})
	id := grantLease(t, src, 1e9)
	muts := []*Mutation{
		{Kind: MutTxn, Time: 10, Ops: []Op{set("/a/b/c", 0, "1"), mkdir("/d", 0)}},
		{Kind: MutTxn, Time: 20, Ops: []Op{setLease("/svc/x", 0, "addr", id), set("/a/b/c", -1, "2")}},
		{Kind: MutTxn, Time: 30, Ops: []Op{del("/a/b/c", -1), del("/d", -1), set("/e", 0, "")}},
		{Kind: MutLeaseExpire, Time: 40, Lease: id},
	}
	for _, m := range muts {
		res := mustApply(t, src, m)
		if err := mirror.ApplyEvents(res.Rev, res.Events); err != nil {
			t.Fatalf("ApplyEvents(%d): %v", res.Rev, err)
		}
	}
	for r := int64(0); r <= src.Rev(); r++ {
		sv, _ := src.ViewAt(r)
		mv, err := mirror.ViewAt(r)
		if err != nil {
			t.Fatalf("mirror ViewAt(%d): %v", r, err)
		}
		if got, want := dump(t, mv), dump(t, sv); got != want {
			t.Errorf("mirror at %d:\n%s\nwant\n%s", r, got, want)
		}
	}
	srcEvs, _ := src.Events(1, nil)
	mirEvs, _ := mirror.Events(1, nil)
	if describeEvents(srcEvs) != describeEvents(mirEvs) {
		t.Errorf("mirror events differ:\n%s\nwant\n%s", describeEvents(mirEvs), describeEvents(srcEvs))
	}
}

func TestAMirrorMaySkipRevisions(t *testing.T) {
	m := New(Config{History: 100})
	if err := m.ApplyEvents(5, []Event{{Rev: 5, Kind: EventSet, Path: "/a", Body: []byte("x"), Time: 50}}); err != nil {
		t.Fatal(err)
	}
	if err := m.ApplyEvents(9, nil); err != nil {
		t.Fatal(err)
	}
	for r := int64(0); r <= 9; r++ {
		v, err := m.ViewAt(r)
		if err != nil {
			t.Fatalf("ViewAt(%d): %v", r, err)
		}
		_, err = v.Stat("/a")
		if has := err == nil; has != (r >= 5) || v.Rev() != r {
			t.Errorf("at %d: /a present %v, view rev %d", r, has, v.Rev())
		}
	}
}

func TestAMirrorSkippingMoreThanItsWindowKeepsTheWindowFull(t *testing.T) {
	m := New(Config{History: 3})
	if err := m.ApplyEvents(1000, nil); err != nil {
		t.Fatal(err)
	}
	if m.Oldest() != 998 || m.hist.n != 3 {
		t.Errorf("oldest %d with %d views, want 998 and 3", m.Oldest(), m.hist.n)
	}
}

func TestApplyEventsRejectsEventsThatDoNotFitAndChangesNothing(t *testing.T) {
	ev := func(k EventKind, p string) Event { return Event{Rev: 3, Kind: k, Path: p} }
	tests := []struct {
		name string
		rev  int64
		evs  []Event
		want error
	}{
		{"revision not after the current one", 2, nil, ErrBadRequest},
		{"event of another revision", 3, []Event{{Rev: 4, Kind: EventSet, Path: "/n"}}, ErrBadRequest},
		{"unknown kind", 3, []Event{ev(9, "/n")}, ErrBadRequest},
		{"bad path", 3, []Event{ev(EventSet, "n")}, ErrBadPath},
		{"set under a missing dir", 3, []Event{ev(EventSet, "/x/y")}, ErrNoEnt},
		{"set on a dir", 3, []Event{ev(EventSet, "/d")}, ErrIsDir},
		{"set below a file", 3, []Event{ev(EventSet, "/f/x")}, ErrNotDir},
		{"set on /", 3, []Event{ev(EventSet, "/")}, ErrIsDir},
		{"mkdir of an existing dir", 3, []Event{ev(EventMkdir, "/d")}, ErrRevMismatch},
		{"del of a missing path", 3, []Event{ev(EventDel, "/n")}, ErrNoEnt},
		{"del of a non-empty dir", 3, []Event{ev(EventDel, "/d")}, ErrNotEmpty},
		{"a bad event after a good one", 3, []Event{ev(EventSet, "/ok"), ev(EventDel, "/n")}, ErrNoEnt},
	}
	for _, tc := range tests {
		m := New(Config{})
		if err := m.ApplyEvents(2, []Event{
			{Rev: 2, Kind: EventSet, Path: "/f"}, {Rev: 2, Kind: EventMkdir, Path: "/d"}, {Rev: 2, Kind: EventSet, Path: "/d/g"},
		}); err != nil {
			t.Fatal(err)
		}
		before := dump(t, m.View())
		err := m.ApplyEvents(tc.rev, tc.evs)
		wantErr(t, tc.name, err, tc.want)
		if dump(t, m.View()) != before || m.Rev() != 2 {
			t.Errorf("%s: the mirror changed", tc.name)
		}
	}
}

func TestAMirrorTracksFileLeasesButNotTheLeaseTable(t *testing.T) {
	m := New(Config{})
	err := m.ApplyEvents(1, []Event{{Rev: 1, Kind: EventSet, Path: "/e", Lease: 7}})
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := m.View().Stat("/e"); st.Lease != 7 {
		t.Errorf("Stat.Lease = %d, want 7", st.Lease)
	}
	if len(m.LeaseFiles(7)) != 1 || len(m.Leases()) != 0 {
		t.Errorf("LeaseFiles(7) = %v, Leases() = %v", m.LeaseFiles(7), m.Leases())
	}
}

func TestApplyEventsRefusesARevisionBeyondMaxRev(t *testing.T) {
	m := New(Config{})
	wantErr(t, "ApplyEvents(MaxRev+1)", m.ApplyEvents(MaxRev+1, nil), ErrBadRequest)
	if err := m.ApplyEvents(MaxRev, nil); err != nil {
		t.Fatal(err)
	}
	_, err := m.Apply(tx(set("/a", 0, "")))
	wantErr(t, "Apply at MaxRev", err, ErrOther)
}
