package wal

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// BenchmarkAppendSync measures group commit: Append of a batch of 256-byte
// records, then one Sync. It reports syncs/s, records/s and the fdatasync
// latency percentiles seen through OnSync. The WAL lives in the system
// temporary directory: run it on the disk you care about (TMPDIR).
func BenchmarkAppendSync(b *testing.B) {
	for _, prealloc := range []bool{true, false} {
		for _, batch := range []int{1, 64} {
			name := fmt.Sprintf("batch=%d/prealloc=%v", batch, prealloc)
			b.Run(name, func(b *testing.B) { benchAppendSync(b, batch, prealloc) })
		}
	}
}

func benchAppendSync(b *testing.B, batch int, prealloc bool) {
	var took []time.Duration
	opts := Options{NoPreallocate: !prealloc, OnSync: func(si SyncInfo) { took = append(took, si.Took) }}
	w, err := Open(b.TempDir(), opts)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	recs := make([]Record, batch)
	for i := range recs {
		recs[i] = rec(i, 256)
	}
	b.SetBytes(int64(batch * 256))
	b.ResetTimer()
	for range b.N {
		if err := w.Append(recs...); err != nil {
			b.Fatal(err)
		}
		if err := w.Sync(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	secs := b.Elapsed().Seconds()
	b.ReportMetric(float64(b.N)/secs, "syncs/s")
	b.ReportMetric(float64(b.N*batch)/secs, "records/s")
	slices.Sort(took)
	if len(took) > 0 {
		b.ReportMetric(float64(took[len(took)/2].Microseconds()), "p50-sync-µs")
		b.ReportMetric(float64(took[len(took)*99/100].Microseconds()), "p99-sync-µs")
	}
}

// BenchmarkOpenAndReplay measures a restart: Open (which checks every
// record) and a Replay of 100,000 256-byte records.
func BenchmarkOpenAndReplay(b *testing.B) {
	const n = 100_000
	dir := b.TempDir()
	w, err := Open(dir, Options{})
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < n; i += 1000 {
		for j := range 1000 {
			if err := w.Append(rec(i+j, 256)); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Sync(); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		w, err := Open(dir, Options{})
		if err != nil {
			b.Fatal(err)
		}
		count := 0
		if err := w.Replay(0, func(uint64, Record) error { count++; return nil }); err != nil {
			b.Fatal(err)
		}
		if count != n {
			b.Fatalf("replayed %d records, want %d", count, n)
		}
		w.Close()
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "records/s")
}
