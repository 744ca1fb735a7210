package fs

import (
	"fmt"
	"testing"
)

// BenchmarkViewAtPast rebuilds a past revision of the tree of
// BenchmarkApplySetFullHistory, back revisions before the current one,
// with the last rebuilt view forgotten each time (its worst case), and
// reads a file there.
func BenchmarkViewAtPast(b *testing.B) {
	tr, ms := historyBenchTree(b, 100_000)
	for _, back := range []int64{1, 10, 100, 1000, DefaultHistory - 1} {
		b.Run(fmt.Sprintf("back=%d", back), func(b *testing.B) {
			b.ReportAllocs()
			cpu := startCPU()
			for i := 0; i < b.N; i++ {
				tr.past.Store(nil)
				v, err := tr.ViewAt(tr.Rev() - back)
				if err != nil {
					b.Fatal(err)
				}
				if _, _, err := v.Get(ms[0].Ops[0].Path); err != nil {
					b.Fatal(err)
				}
			}
			cpu.stop(b)
		})
	}
}
