package fs

import (
	"bytes"
	"fmt"
	"runtime"
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
	if n := tr.hist.n; n != 10 {
		t.Errorf("window holds %d revisions, want 10", n)
	}
	if c := len(tr.hist.buf); c > 40 {
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

// bodyOf returns a body of n bytes that starts with the decimal i.
func bodyOf(i, n int) []byte {
	b := bytes.Repeat([]byte{'.'}, n)
	copy(b, fmt.Sprint(i))
	return b
}

func TestHistoryBytesMakesTheOldestRevisionsTooLate(t *testing.T) {
	// Each SET replacing /a's 1,024-byte body costs 64 + 160 + len("/a")
	// + 1,024 = 1,250 bytes: a bound of 5,000 holds four such revisions.
	tr := New(Config{History: 100, HistoryBytes: 5000})
	for i := 1; i <= 50; i++ {
		mustApply(t, tr, &Mutation{Kind: MutTxn, Time: int64(i), Ops: []Op{{Kind: OpSet, Path: "/a", Rev: Clobber, Body: bodyOf(i, 1024)}}})
		if got := tr.HistoryBytes(); got > 5000 {
			t.Fatalf("after rev %d the window costs %d bytes, over the bound", i, got)
		}
	}
	if tr.Oldest() != 47 || tr.HistoryBytes() != 4*1250 {
		t.Fatalf("oldest %d, cost %d; want 47 and %d", tr.Oldest(), tr.HistoryBytes(), 4*1250)
	}
	for r := int64(47); r <= 50; r++ {
		v, err := tr.ViewAt(r)
		if err != nil {
			t.Fatalf("ViewAt(%d): %v", r, err)
		}
		if body, st, _ := v.Get("/a"); !bytes.Equal(body, bodyOf(int(r), 1024)) || st.Rev != r {
			t.Errorf("ViewAt(%d): /a at rev %d, body %.8q", r, st.Rev, body)
		}
	}
	_, err := tr.ViewAt(46)
	wantErr(t, "ViewAt(46)", err, ErrTooLate)
	_, err = tr.Events(46, nil)
	wantErr(t, "Events(46)", err, ErrTooLate)
	if evs, err := tr.Events(47, nil); err != nil || len(evs) != 4 {
		t.Errorf("Events(47) = %d events, %v; want 4", len(evs), err)
	}
}

func TestHistoryBytesAndHistoryTheTighterWins(t *testing.T) {
	tr := New(Config{History: 3, HistoryBytes: 1 << 20})
	for i := 1; i <= 10; i++ {
		mustOps(t, tr, Op{Kind: OpSet, Path: "/a", Rev: Clobber, Body: bodyOf(i, 100)})
	}
	if tr.Oldest() != 8 {
		t.Errorf("oldest %d under a loose byte bound, want 8 (History 3)", tr.Oldest())
	}
	tr = New(Config{History: 0, HistoryBytes: 0}) // defaults: 10,000 revisions, no byte bound
	for i := 1; i <= 10; i++ {
		mustOps(t, tr, Op{Kind: OpSet, Path: "/a", Rev: Clobber, Body: bodyOf(i, 1<<16)})
	}
	if tr.Oldest() != 0 {
		t.Errorf("oldest %d without a byte bound, want 0", tr.Oldest())
	}
}

func TestHistoryBytesAlwaysKeepsTheCurrentRevision(t *testing.T) {
	tr := New(Config{HistoryBytes: 1}) // less than any revision costs
	for i := 1; i <= 5; i++ {
		mustOps(t, tr, set(fmt.Sprintf("/d/f%d", i), 0, "x"), set("/d/f1", -1, fmt.Sprint(i)))
		if tr.Oldest() != tr.Rev() {
			t.Fatalf("oldest %d at rev %d, want the current revision only", tr.Oldest(), tr.Rev())
		}
		if _, err := tr.ViewAt(tr.Rev()); err != nil {
			t.Fatalf("ViewAt(current): %v", err)
		}
		_, err := tr.ViewAt(tr.Rev() - 1)
		wantErr(t, "ViewAt(current-1)", err, ErrTooLate)
		if evs, err := tr.Events(tr.Rev(), nil); err != nil || len(evs) != 1 {
			t.Fatalf("Events(current) = %v, %v", evs, err)
		}
	}
}

func TestHistoryBytesCountsDeletedBodiesAndEventPaths(t *testing.T) {
	tr := New(Config{})
	mustOps(t, tr, set("/x/y", 0, "12345"))      // mkdir /x, set /x/y: nothing superseded
	mustOps(t, tr, del("/x/y", -1))              // deletes a 5-byte body
	mustOps(t, tr, set("/x/y", 0, "1234567890")) // re-creates it
	// rev 0 64; rev 1 64+160+2+160+4; rev 2 64+160+4+5; rev 3 64+160+4.
	want := int64(64 + (64 + 160 + 2 + 160 + 4) + (64 + 160 + 4 + 5) + (64 + 160 + 4))
	if got := tr.HistoryBytes(); got != want {
		t.Errorf("HistoryBytes() = %d, want %d", got, want)
	}
	mustApply(t, tr, tx(set("/x/y", -1, "a"), set("/x/y", -1, "bb"), del("/x/y", -1)))
	want += 64 + 3*(160+4) + 10 + 1 + 2 // a TXN's events each supersede the last body
	if got := tr.HistoryBytes(); got != want {
		t.Errorf("after a TXN HistoryBytes() = %d, want %d", got, want)
	}
}

func TestHistoryBytesIsTheSameOnAMirrorAndAfterASnapshot(t *testing.T) {
	cfg := Config{History: 1000, HistoryBytes: 20000}
	tr, mirror := New(cfg), New(cfg)
	for i := 1; i <= 200; i++ {
		res := mustApply(t, tr, tx(Op{Kind: OpSet, Path: fmt.Sprintf("/k%d", i%7), Rev: Clobber, Body: bodyOf(i, 10*(i%50))}))
		if err := mirror.ApplyEvents(res.Rev, res.Events); err != nil {
			t.Fatal(err)
		}
		if tr.Oldest() != mirror.Oldest() || tr.HistoryBytes() != mirror.HistoryBytes() {
			t.Fatalf("rev %d: tree window from %d (%d bytes), mirror from %d (%d bytes)",
				i, tr.Oldest(), tr.HistoryBytes(), mirror.Oldest(), mirror.HistoryBytes())
		}
	}
	var buf bytes.Buffer
	if err := tr.WriteSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	back, err := ReadSnapshot(&buf, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if back.Oldest() != 200 || back.HistoryBytes() != HistoryRecordBytes {
		t.Errorf("snapshot read back with window from %d costing %d", back.Oldest(), back.HistoryBytes())
	}
	if got, want := dump(t, back.View()), dump(t, tr.View()); got != want {
		t.Errorf("snapshot:\n%s\nwant\n%s", got, want)
	}
}

// TestHistoryBytesBoundsTheHeap is the regression test for issue 10: with
// the default 10,000-revision window, 1,000 SETs of 128 KiB to one file
// kept 125 MiB of superseded bodies alive. With a 1 MiB byte bound the
// heap the tree holds stays within the bound, the current body and a
// little for the records.
func TestHistoryBytesBoundsTheHeap(t *testing.T) {
	const bound = 1 << 20
	before := liveHeap()
	tr := New(Config{HistoryBytes: bound})
	for i := 0; i < 1000; i++ {
		mustOps(t, tr, Op{Kind: OpSet, Path: "/big", Rev: Clobber, Body: bodyOf(i, 128<<10)})
	}
	held := liveHeap() - before
	if held > bound+128<<10+1<<20 {
		t.Errorf("the tree holds %d bytes of heap, want at most the %d-byte bound, one body and 1 MiB", held, bound)
	}
	// Each revision costs 64 + 160 + len("/big") + 131,072 = 131,300
	// bytes: seven fit in 1 MiB, eight do not.
	if got := tr.Rev() - tr.Oldest() + 1; got != 7 {
		t.Errorf("%d revisions readable, want 7", got)
	}
	runtime.KeepAlive(tr)
}

// liveHeap collects garbage and returns the bytes of live heap.
func liveHeap() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}
