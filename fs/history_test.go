package fs

import (
	"bytes"
	"fmt"
	"testing"
)

// historyTree makes a tree with History 5 and n revisions, each setting /r
// to its revision number.
func historyTree(t *testing.T, n int) *Tree {
	t.Helper()
	tr := New(Config{History: 5})
	for i := 1; i <= n; i++ {
		mustApply(t, tr, &Mutation{Kind: MutTxn, Time: int64(i * 10), Ops: []Op{set("/r", -1, fmt.Sprint(i))}})
	}
	return tr
}

func TestViewAtReadsEveryRevisionInTheWindow(t *testing.T) {
	tr := historyTree(t, 12)
	if tr.Oldest() != 8 || tr.Rev() != 12 {
		t.Fatalf("window [%d, %d], want [8, 12]", tr.Oldest(), tr.Rev())
	}
	for r := int64(8); r <= 12; r++ {
		v, err := tr.ViewAt(r)
		if err != nil {
			t.Fatalf("ViewAt(%d): %v", r, err)
		}
		body, st, _ := v.Get("/r")
		if v.Rev() != r || string(body) != fmt.Sprint(r) || st.Rev != r || st.Time != r*10 {
			t.Errorf("ViewAt(%d): rev %d body %q stat %+v", r, v.Rev(), body, st)
		}
	}
}

func TestViewAtOutsideTheWindowFails(t *testing.T) {
	tr := historyTree(t, 12)
	_, err := tr.ViewAt(7)
	wantErr(t, "ViewAt(7)", err, ErrTooLate)
	_, err = tr.ViewAt(0)
	wantErr(t, "ViewAt(0)", err, ErrTooLate)
	_, err = tr.ViewAt(13)
	wantErr(t, "ViewAt(13)", err, ErrBadRequest)
}

func TestANewTreeCanReadRevisionZero(t *testing.T) {
	tr := New(Config{})
	v, err := tr.ViewAt(0)
	if err != nil || tr.Oldest() != 0 {
		t.Fatalf("ViewAt(0) on a new tree: %v, oldest %d", err, tr.Oldest())
	}
	if ents, _ := v.GetDir("/"); len(ents) != 0 {
		t.Errorf("rev 0 is not empty: %v", ents)
	}
}

func TestEventsReturnsMatchingEventsFromARevision(t *testing.T) {
	tr := New(Config{})
	mustOps(t, tr, set("/a/x", 0, "1"), set("/b", 0, "2"), set("/a/y", 0, "3"), del("/b", -1))
	evs, err := tr.Events(2, mustGlob("/a/**"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := describeEvents(evs), "3 set /a/y \"3\" t0 L0\n"; got != want {
		t.Errorf("Events(2, /a/**) =\n%s\nwant\n%s", got, want)
	}
	all, _ := tr.Events(0, nil)
	if len(all) != 5 || all[0].Kind != EventMkdir || all[0].Path != "/a" {
		t.Errorf("Events(0, nil) =\n%s", describeEvents(all))
	}
	if evs, err := tr.Events(5, nil); err != nil || len(evs) != 0 {
		t.Errorf("Events(after the end) = %v, %v; want none", evs, err)
	}
}

func TestEventsBeforeTheWindowAreTooLate(t *testing.T) {
	tr := historyTree(t, 12)
	_, err := tr.Events(7, nil)
	wantErr(t, "Events(7)", err, ErrTooLate)
	evs, err := tr.Events(8, nil)
	if err != nil || len(evs) != 5 || evs[0].Rev != 8 {
		t.Errorf("Events(8) = %d events, %v; want revisions 8..12", len(evs), err)
	}
}

func TestHistoryOfOneKeepsOnlyTheCurrentRevision(t *testing.T) {
	tr := New(Config{History: 1})
	mustOps(t, tr, set("/a", 0, "1"), set("/a", -1, "2"))
	if tr.Oldest() != 2 {
		t.Errorf("Oldest() = %d, want 2", tr.Oldest())
	}
	evs, err := tr.Events(2, nil)
	if err != nil || len(evs) != 1 {
		t.Errorf("Events(2) = %v, %v", evs, err)
	}
}

func TestZeroConfigMeansTheDefaultHistory(t *testing.T) {
	if got := New(Config{}).cfg.History; got != DefaultHistory {
		t.Errorf("History = %d, want %d", got, DefaultHistory)
	}
	if DefaultConfig().History != 10000 {
		t.Errorf("DefaultConfig().History = %d", DefaultConfig().History)
	}
}

func TestHistoryMemoryIsBoundedByTheWindow(t *testing.T) {
	tr := New(Config{History: 10})
	for i := 0; i < 1000; i++ {
		mustOps(t, tr, set("/a", -1, "x"))
	}
	if n := len(tr.hist); n != 10 {
		t.Errorf("window holds %d revisions, want 10", n)
	}
	if c := cap(tr.hist); c > 40 {
		t.Errorf("window's backing array has room for %d revisions", c)
	}
}

func TestATreeReadFromASnapshotStartsItsWindowThere(t *testing.T) {
	src := historyTree(t, 12)
	var buf bytes.Buffer
	if err := src.WriteSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	tr, err := ReadSnapshot(&buf, Config{History: 5})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Oldest() != 12 || tr.Rev() != 12 {
		t.Fatalf("window [%d, %d], want [12, 12]", tr.Oldest(), tr.Rev())
	}
	_, err = tr.Events(12, nil)
	wantErr(t, "Events(12) after a snapshot", err, ErrTooLate)
	mustOps(t, tr, set("/r", 12, "13"))
	evs, err := tr.Events(13, nil)
	if err != nil || len(evs) != 1 {
		t.Errorf("Events(13) = %v, %v", evs, err)
	}
}
