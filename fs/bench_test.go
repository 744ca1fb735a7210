package fs

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"sync"
	"testing"
)

func BenchmarkApplySet256(b *testing.B) {
	tr := New(DefaultConfig())
	ms := make([]*Mutation, 1000)
	for i := range ms {
		ms[i] = tx(Op{Kind: OpSet, Path: fmt.Sprintf("/bench/k%04d", i), Rev: Clobber, Body: bytes.Repeat([]byte{'v'}, 256)})
	}
	benchApply(b, tr, ms)
}

// benchApply applies ms to tr in turn, b.N times, reporting allocations
// and the CPU (GC included) per apply.
func benchApply(b *testing.B, tr *Tree, ms []*Mutation) {
	b.ReportAllocs()
	b.ResetTimer()
	cpu := startCPU()
	for i := 0; i < b.N; i++ {
		if _, err := tr.Apply(ms[i%len(ms)]); err != nil {
			b.Fatal(err)
		}
	}
	cpu.stop(b)
}

func BenchmarkGetCurrent(b *testing.B) {
	tr := New(DefaultConfig())
	paths := make([]string, 1000)
	for i := range paths {
		paths[i] = fmt.Sprintf("/svc/s%02d/k%04d", i%10, i)
		tr.Apply(tx(Op{Kind: OpSet, Path: paths[i], Rev: Clobber, Body: make([]byte, 256)}))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := tr.View().Get(paths[i%len(paths)]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetCurrentParallel(b *testing.B) {
	tr := New(DefaultConfig())
	paths := make([]string, 1000)
	for i := range paths {
		paths[i] = fmt.Sprintf("/svc/s%02d/k%04d", i%10, i)
		tr.Apply(tx(Op{Kind: OpSet, Path: paths[i], Rev: Clobber, Body: make([]byte, 256)}))
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for i := 0; pb.Next(); i++ {
			if _, _, err := tr.View().Get(paths[i%len(paths)]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// millionFiles builds, once, a tree of 1,000,000 files of 256 bytes in
// 1,000 directories, one SET per file (a million revisions, the default
// window of 10,000 kept), and reports the heap it holds.
var million struct {
	once sync.Once
	tree *Tree
	heap uint64
	snap []byte
}

func millionFiles(b *testing.B) *Tree {
	million.once.Do(func() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		tr := New(DefaultConfig())
		for i := 0; i < 1_000_000; i++ {
			body := make([]byte, 256)
			body[0] = byte(i)
			m := tx(Op{Kind: OpSet, Path: fmt.Sprintf("/d%03d/f%06d", i%1000, i), Rev: Missing, Body: body})
			if _, err := tr.Apply(m); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		million.tree, million.heap = tr, after.HeapAlloc-before.HeapAlloc
	})
	return million.tree
}

// BenchmarkMillionFilesHeap reports the heap held by a tree of 1,000,000
// files of 256 bytes (target: at most 1 GiB) and the time to build it.
func BenchmarkMillionFilesHeap(b *testing.B) {
	for i := 0; i < b.N; i++ {
		millionFiles(b)
	}
	b.ReportMetric(float64(million.heap), "heap-bytes")
	b.ReportMetric(float64(million.heap)/(1<<20), "heap-MiB")
	b.ReportMetric(float64(million.heap)/1e6, "bytes/file")
	if million.heap > 1<<30 {
		b.Errorf("1,000,000 files hold %d bytes of heap, over the 1 GiB target", million.heap)
	}
}

func BenchmarkMillionFilesSnapshotWrite(b *testing.B) {
	tr := millionFiles(b)
	b.ResetTimer()
	var n int64
	for i := 0; i < b.N; i++ {
		cw := &countWriter{}
		if err := tr.WriteSnapshot(cw); err != nil {
			b.Fatal(err)
		}
		n = cw.n
	}
	b.ReportMetric(float64(n), "snapshot-bytes")
}

func BenchmarkMillionFilesSnapshotRead(b *testing.B) {
	tr := millionFiles(b)
	if million.snap == nil {
		var buf bytes.Buffer
		if err := tr.WriteSnapshot(&buf); err != nil {
			b.Fatal(err)
		}
		million.snap = buf.Bytes()
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		back, err := ReadSnapshot(bytes.NewReader(million.snap), DefaultConfig())
		if err != nil {
			b.Fatal(err)
		}
		if st, _ := back.View().Stat("/d999"); st.Children != 1000 {
			b.Fatalf("read back %d children of /d999", st.Children)
		}
	}
}

type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

var _ io.Writer = (*countWriter)(nil)
