package fs

import (
	"fmt"
	"runtime"
	"sort"
	"testing"
	"time"
)

// historyBenchTree builds a tree of files (256-byte bodies, 100 to a
// directory) and then fills the default 10,000-revision window with SETs
// over those files, as a busy replica holds it.
func historyBenchTree(b *testing.B, files int) (*Tree, []*Mutation) {
	b.Helper()
	tr := New(DefaultConfig())
	for i := 0; i < files; i += 100 {
		ops := make([]Op, 0, 100)
		for j := i; j < i+100 && j < files; j++ {
			ops = append(ops, Op{Kind: OpSet, Path: fmt.Sprintf("/h/d%03d/f%05d", j/100, j), Rev: Clobber, Body: make([]byte, 256)})
		}
		if _, err := tr.Apply(tx(ops...)); err != nil {
			b.Fatal(err)
		}
	}
	ms := make([]*Mutation, 4096)
	for i := range ms {
		j := (i * 7919) % files
		ms[i] = tx(Op{Kind: OpSet, Path: fmt.Sprintf("/h/d%03d/f%05d", j/100, j), Rev: Clobber, Body: make([]byte, 256)})
	}
	for i := 0; i < DefaultHistory; i++ {
		if _, err := tr.Apply(ms[i%len(ms)]); err != nil {
			b.Fatal(err)
		}
	}
	return tr, ms
}

// BenchmarkApplySetFullHistory is BenchmarkApplySet256 on a tree of 100,000
// files whose 10,000-revision window is full, so that the garbage
// collector marks a large tree and its history while Apply runs: ns/op
// includes the GC work Apply's allocations drive.
func BenchmarkApplySetFullHistory(b *testing.B) {
	tr, ms := historyBenchTree(b, 100_000)
	runtime.GC()
	benchApply(b, tr, ms)
}

// BenchmarkHistoryGCCost reports what the 10,000-revision window of a tree
// of 100,000 files costs the garbage collector: the heap objects and bytes
// it holds per revision (after a GC, the tree with its full window against
// the same tree with the window dropped by Reset), and the CPU time the
// collector spends on a full collection with the window and without it
// (median of 5).
func BenchmarkHistoryGCCost(b *testing.B) {
	for i := 0; i < b.N; i++ {
		tr, _ := historyBenchTree(b, 100_000)
		objs, bytes := heapNow()
		full := gcTime()
		if err := tr.Reset(tr); err != nil { // keep only the current revision
			b.Fatal(err)
		}
		objs0, bytes0 := heapNow()
		bare := gcTime()
		runtime.KeepAlive(tr)
		b.ReportMetric(float64(objs-objs0)/DefaultHistory, "objects/rev")
		b.ReportMetric(float64(bytes-bytes0)/DefaultHistory, "heap-bytes/rev")
		b.ReportMetric(float64(full.Microseconds()), "gc-cpu-µs-with-history")
		b.ReportMetric(float64(bare.Microseconds()), "gc-cpu-µs-without")
	}
}

// heapNow collects garbage and returns the live heap objects and bytes.
func heapNow() (objects, bytes int64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapObjects), int64(ms.HeapAlloc)
}

// gcTime returns the median CPU time the process spends in each of 5
// forced collections (runtime.GC returns when the cycle is over).
func gcTime() time.Duration {
	ds := make([]time.Duration, 5)
	for i := range ds {
		start := processCPU()
		runtime.GC()
		ds[i] = processCPU() - start
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)/2]
}

// cpuMeter reports, with b.ReportMetric, the process's CPU time per
// operation (user and system, the garbage collector's included) between
// its start and stop: on a shared machine, where wall time depends on
// what else runs, it says what each operation costs.
type cpuMeter struct{ start time.Duration }

func startCPU() cpuMeter { return cpuMeter{start: processCPU()} }

func (c cpuMeter) stop(b *testing.B) {
	if d := processCPU() - c.start; d > 0 && b.N > 0 {
		b.ReportMetric(float64(d.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}
