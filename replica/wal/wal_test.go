package wal

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestManyRecordsAcrossSegmentsReplayExactlyAfterReopen(t *testing.T) {
	dir := t.TempDir()
	opts, _ := testOptions(4 << 10)
	w := mustOpen(t, dir, opts)
	var want []Record
	for i := range 300 {
		want = append(want, rec(i, i%700))
	}
	// Batches of varying size, one Sync each.
	for i := 0; i < len(want); {
		n := 1 + i%7
		n = min(n, len(want)-i)
		if err := w.Append(want[i : i+n]...); err != nil {
			t.Fatalf("Append: %v", err)
		}
		if err := w.Sync(); err != nil {
			t.Fatalf("Sync: %v", err)
		}
		i += n
	}
	checkRecords(t, replayAll(t, w, 1), 1, want)
	mustClose(t, w)

	if got := len(segmentPaths(t, dir)); got < 5 {
		t.Fatalf("got %d segments, want several (at least 5)", got)
	}
	w = mustOpen(t, dir, opts)
	defer w.Close()
	checkRecords(t, replayAll(t, w, 1), 1, want)
	if got, want := w.NextIndex(), uint64(301); got != want {
		t.Fatalf("NextIndex after reopen: got %d, want %d", got, want)
	}
}

func TestAppendAfterReopenContinuesTheIndexes(t *testing.T) {
	dir := t.TempDir()
	opts, _ := testOptions(2 << 10)
	var want []Record
	for round := range 4 {
		w := mustOpen(t, dir, opts)
		for i := range 10 {
			r := rec(round*10+i, 100)
			want = append(want, r)
			appendSynced(t, w, r)
		}
		mustClose(t, w)
	}
	w := mustOpen(t, dir, opts)
	defer w.Close()
	checkRecords(t, replayAll(t, w, 1), 1, want)
}

func TestReplayFromAnIndexSkipsEarlierRecords(t *testing.T) {
	opts, _ := testOptions(2 << 10)
	w := mustOpen(t, t.TempDir(), opts)
	defer w.Close()
	var want []Record
	for i := range 50 {
		want = append(want, rec(i, 90))
	}
	appendSynced(t, w, want...)
	checkRecords(t, replayAll(t, w, 37), 37, want[36:])
	checkRecords(t, replayAll(t, w, 51), 51, nil)
}

func TestReplayShowsOnlySyncedRecords(t *testing.T) {
	opts, _ := testOptions(64 << 10)
	w := mustOpen(t, t.TempDir(), opts)
	defer w.Close()
	appendSynced(t, w, rec(1, 10))
	if err := w.Append(rec(2, 10)); err != nil {
		t.Fatal(err)
	}
	checkRecords(t, replayAll(t, w, 1), 1, []Record{rec(1, 10)})
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	checkRecords(t, replayAll(t, w, 1), 1, []Record{rec(1, 10), rec(2, 10)})
}

func TestReplayStopsWithTheCallbacksError(t *testing.T) {
	opts, _ := testOptions(64 << 10)
	w := mustOpen(t, t.TempDir(), opts)
	defer w.Close()
	appendSynced(t, w, rec(1, 10), rec(2, 10), rec(3, 10))
	stop := errors.New("stop here")
	var seen []uint64
	err := w.Replay(1, func(i uint64, _ Record) error {
		seen = append(seen, i)
		if i == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Fatalf("got %v, want the callback's error", err)
	}
	if fmt.Sprint(seen) != "[1 2]" {
		t.Fatalf("visited %v, want [1 2]", seen)
	}
}

func TestAppendRefusesReservedTypesAndOversizedRecordsAndAppendsNothing(t *testing.T) {
	opts, _ := testOptions(64 << 10)
	opts.MaxRecord = 100
	w := mustOpen(t, t.TempDir(), opts)
	defer w.Close()
	for _, tc := range []struct {
		name string
		r    Record
	}{
		{"type 0", Record{Type: 0}},
		{"internal type", Record{Type: MaxUserType + 1}},
		{"too big", Record{Type: 1, Data: make([]byte, 101)}},
	} {
		if err := w.Append(rec(1, 5), tc.r); err == nil {
			t.Errorf("%s: Append succeeded, want an error", tc.name)
		}
	}
	if got := w.NextIndex(); got != 1 {
		t.Fatalf("NextIndex: got %d, want 1 (nothing appended)", got)
	}
	// A refused Append does not break the WAL.
	appendSynced(t, w, rec(1, 100))
}

func TestARecordLargerThanASegmentGetsOneOfItsOwn(t *testing.T) {
	dir := t.TempDir()
	opts, _ := testOptions(1 << 10)
	w := mustOpen(t, dir, opts)
	want := []Record{rec(1, 10), rec(2, 5000), rec(3, 10)}
	appendSynced(t, w, want...)
	mustClose(t, w)
	w = mustOpen(t, dir, opts)
	defer w.Close()
	checkRecords(t, replayAll(t, w, 1), 1, want)
}

func TestCutStartsANewSegmentAtTheNextIndex(t *testing.T) {
	dir := t.TempDir()
	opts, _ := testOptions(64 << 10)
	w := mustOpen(t, dir, opts)
	defer w.Close()
	appendSynced(t, w, rec(1, 10), rec(2, 10))
	if err := w.Append(rec(3, 10)); err != nil {
		t.Fatal(err)
	}
	if err := w.Cut(); err != nil {
		t.Fatalf("Cut: %v", err)
	}
	if err := w.Cut(); err != nil { // empty active segment: nothing to do
		t.Fatalf("second Cut: %v", err)
	}
	paths := segmentPaths(t, dir)
	if len(paths) != 2 || !strings.HasSuffix(paths[1], segName(2, 4)) {
		t.Fatalf("segments after Cut: got %v, want a second one named %s", paths, segName(2, 4))
	}
	// The record appended before Cut was synced by it.
	checkRecords(t, replayAll(t, w, 1), 1, []Record{rec(1, 10), rec(2, 10), rec(3, 10)})
}

func TestCloseSyncsAppendedRecordsAndLaterCallsFail(t *testing.T) {
	dir := t.TempDir()
	opts, _ := testOptions(64 << 10)
	w := mustOpen(t, dir, opts)
	if err := w.Append(rec(1, 10)); err != nil {
		t.Fatal(err)
	}
	mustClose(t, w)
	if err := w.Append(rec(2, 10)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: got %v, want ErrClosed", err)
	}
	if err := w.Sync(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Sync after Close: got %v, want ErrClosed", err)
	}
	w = mustOpen(t, dir, opts)
	defer w.Close()
	checkRecords(t, replayAll(t, w, 1), 1, []Record{rec(1, 10)})
}

func TestSyncReportsEachFdatasyncToOnSync(t *testing.T) {
	opts, _ := testOptions(64 << 10)
	var infos []SyncInfo
	opts.OnSync = func(si SyncInfo) { infos = append(infos, si) }
	w := mustOpen(t, t.TempDir(), opts)
	defer w.Close()
	if err := w.Append(rec(1, 100), rec(2, 100)); err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(); err != nil { // nothing new: no fdatasync
		t.Fatal(err)
	}
	if len(infos) != 1 {
		t.Fatalf("got %d OnSync calls, want 1", len(infos))
	}
	if got, want := infos[0].Records, 2; got != want {
		t.Errorf("Records: got %d, want %d", got, want)
	}
	if got, want := infos[0].Bytes, 2*frameLen(100)+commitFrameSize; got != want {
		t.Errorf("Bytes: got %d, want %d", got, want)
	}
	if infos[0].Err != nil || infos[0].Took < 0 {
		t.Errorf("got %+v, want a successful sync with a duration", infos[0])
	}
}

func TestOpenRefusesOptionsOutOfRange(t *testing.T) {
	for _, o := range []Options{
		{SegmentSize: 100},
		{MaxRecord: -1},
		{MaxRecord: 2 << 30},
		{KeepSnapshots: -1},
	} {
		if _, err := Open(t.TempDir(), o); err == nil {
			t.Errorf("Open with %+v succeeded, want an error", o)
		}
	}
}

func TestConcurrentAppendersAndSyncersAreSerialised(t *testing.T) {
	dir := t.TempDir()
	opts, _ := testOptions(4 << 10)
	w := mustOpen(t, dir, opts)
	const writers, each = 4, 40
	errs := make(chan error, writers)
	for g := range writers {
		go func() {
			for i := range each {
				if err := w.Append(rec(g*1000+i, 50)); err != nil {
					errs <- err
					return
				}
				if err := w.Sync(); err != nil {
					errs <- err
					return
				}
				_ = w.NextIndex()
			}
			errs <- nil
		}()
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	mustClose(t, w)
	w = mustOpen(t, dir, opts)
	defer w.Close()
	if got := len(replayAll(t, w, 1)); got != writers*each {
		t.Fatalf("got %d records, want %d", got, writers*each)
	}
}
