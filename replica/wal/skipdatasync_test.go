package wal

import "testing"

// Faults.SkipDatasync is the broken build the chaos harness must catch:
// Sync acknowledges records that a power loss then erases.
func TestSkipDatasyncAcknowledgesRecordsAPowerLossErases(t *testing.T) {
	dir := t.TempDir()
	opts, _ := testOptions(64 << 20)
	opts.NoPreallocate = true
	w := mustOpen(t, dir, opts)
	appendSynced(t, w, rec(1, 100))
	w.opts.Faults = &Faults{SkipDatasync: true}
	appendSynced(t, w, rec(2, 100), rec(3, 100)) // "acknowledged"
	if w.synced == w.off {
		t.Fatal("SkipDatasync moved the durable offset")
	}
	if err := w.SimulateCrash(); err != nil {
		t.Fatal(err)
	}
	w = mustOpen(t, dir, opts)
	defer w.Close()
	checkRecords(t, replayAll(t, w, 1), 1, []Record{rec(1, 100)})
}
