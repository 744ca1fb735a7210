package wal

import (
	"errors"
	"testing"
)

func TestACrashLosesRecordsAcknowledgedBeforeSyncButNeverSyncedOnes(t *testing.T) {
	dir := t.TempDir()
	opts, _ := testOptions(4 << 10)
	w := mustOpen(t, dir, opts)
	synced := []Record{rec(1, 100), rec(2, 100)}
	appendSynced(t, w, synced...)
	// A replica that acknowledged these before Sync would lose them.
	if err := w.Append(rec(3, 100), rec(4, 100)); err != nil {
		t.Fatal(err)
	}
	if err := w.SimulateCrash(); err != nil {
		t.Fatalf("SimulateCrash: %v", err)
	}
	if err := w.Append(rec(5, 1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after the crash: got %v, want ErrClosed", err)
	}
	w = mustOpen(t, dir, opts)
	defer w.Close()
	checkRecords(t, replayAll(t, w, 1), 1, synced)
}

func TestACrashZeroesBytesWrittenButNotSynced(t *testing.T) {
	dir := t.TempDir()
	opts, _ := testOptions(64 << 20)
	opts.NoPreallocate = true
	w := mustOpen(t, dir, opts)
	appendSynced(t, w, rec(1, 100))
	// A batch over flushBytes is written to the file before Sync.
	big := make([]Record, 0, 20)
	for i := range 20 {
		big = append(big, rec(10+i, 64<<10))
	}
	if err := w.Append(big...); err != nil {
		t.Fatal(err)
	}
	if w.off == w.synced {
		t.Fatal("the test needs bytes written but not synced")
	}
	if err := w.SimulateCrash(); err != nil {
		t.Fatal(err)
	}
	w = mustOpen(t, dir, opts)
	defer w.Close()
	checkRecords(t, replayAll(t, w, 1), 1, []Record{rec(1, 100)})
}

func TestABatchSplitAcrossSegmentsSurvivesACrashAsAPrefix(t *testing.T) {
	dir := t.TempDir()
	opts, _ := testOptions(2 << 10)
	w := mustOpen(t, dir, opts)
	synced := []Record{rec(1, 100)}
	appendSynced(t, w, synced...)
	var batch []Record
	for i := range 40 {
		batch = append(batch, rec(100+i, 100))
	}
	if err := w.Append(batch...); err != nil {
		t.Fatal(err)
	}
	if len(segmentPaths(t, dir)) < 3 {
		t.Fatal("the batch did not span several segments")
	}
	if err := w.SimulateCrash(); err != nil {
		t.Fatal(err)
	}
	w = mustOpen(t, dir, opts)
	got := replayAll(t, w, 1)
	// The sealed segments were synced when the next was started, so a prefix
	// of the unacknowledged batch survives; everything acknowledged does.
	if len(got) < len(synced) || len(got) > len(synced)+len(batch) {
		t.Fatalf("got %d records, want between %d and %d", len(got), len(synced), len(synced)+len(batch))
	}
	checkRecords(t, got, 1, append(synced, batch...)[:len(got)])
	extra := rec(999, 10)
	appendSynced(t, w, extra)
	mustClose(t, w)
	w = mustOpen(t, dir, opts)
	defer w.Close()
	checkRecords(t, replayAll(t, w, 1), 1, append(append(synced, batch...)[:len(got)], extra))
}

func TestABatchSplitAcrossSegmentsReplaysWhole(t *testing.T) {
	dir := t.TempDir()
	opts, _ := testOptions(2 << 10)
	w := mustOpen(t, dir, opts)
	var batch []Record
	for i := range 40 {
		batch = append(batch, rec(i, 100))
	}
	if err := w.Append(batch...); err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	mustClose(t, w)
	w = mustOpen(t, dir, opts)
	defer w.Close()
	checkRecords(t, replayAll(t, w, 1), 1, batch)
}
