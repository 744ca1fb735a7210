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
