package wal

import (
	"errors"
	"testing"
)

func TestAFailedWriteBreaksTheWALForEveryLaterCall(t *testing.T) {
	dir := t.TempDir()
	opts, logs := testOptions(64 << 10)
	opts.Faults = &Faults{FailAfterBytes: 1000}
	w := mustOpen(t, dir, opts)
	var err error
	for i := 0; err == nil && i < 100; i++ {
		if err = w.Append(rec(i, 100)); err == nil {
			err = w.Sync()
		}
	}
	if !errors.Is(err, ErrInjected) || !errors.Is(err, ErrBroken) {
		t.Fatalf("got %v, want the injected failure marked ErrBroken", err)
	}
	for _, c := range []struct {
		name string
		call func() error
	}{
		{"Append", func() error { return w.Append(rec(1, 1)) }},
		{"Sync", func() error { return w.Sync() }},
		{"Cut", func() error { return w.Cut() }},
		{"TruncateBefore", func() error { _, err := w.TruncateBefore(1); return err }},
		{"Close", func() error { return w.Close() }},
	} {
		if err := c.call(); !errors.Is(err, ErrBroken) {
			t.Errorf("%s after the failure: got %v, want ErrBroken", c.name, err)
		}
	}
	if len(logs.matching("broken")) != 1 {
		t.Fatalf("got log lines %q, want one saying the WAL broke", logs.all())
	}
}

func TestAFailedSyncBreaksTheWALAndItsRecordsAreNotPromised(t *testing.T) {
	dir := t.TempDir()
	opts, _ := testOptions(64 << 10)
	boom := errors.New("EIO from the disk")
	fail := false
	opts.Faults = &Faults{FailSync: func() error {
		if fail {
			return boom
		}
		return nil
	}}
	var infos []SyncInfo
	opts.OnSync = func(si SyncInfo) { infos = append(infos, si) }
	w := mustOpen(t, dir, opts)
	appendSynced(t, w, rec(1, 10))
	fail = true
	if err := w.Append(rec(2, 10)); err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(); !errors.Is(err, boom) || !errors.Is(err, ErrBroken) {
		t.Fatalf("Sync: got %v, want the sync error marked ErrBroken", err)
	}
	fail = false // even once the disk "recovers", the WAL stays broken
	if err := w.Sync(); !errors.Is(err, ErrBroken) {
		t.Fatalf("second Sync: got %v, want ErrBroken", err)
	}
	if len(infos) != 2 || !errors.Is(infos[1].Err, boom) {
		t.Fatalf("OnSync got %+v, want a success then the failure", infos)
	}
	if err := w.SimulateCrash(); err != nil {
		t.Fatal(err)
	}
	opts.Faults = nil
	w = mustOpen(t, dir, opts)
	defer w.Close()
	checkRecords(t, replayAll(t, w, 1), 1, []Record{rec(1, 10)})
}
