package fs

import (
	"fmt"
	"math/rand"
	"sort"
	"testing"
)

// checkBtree verifies the invariants of b and returns its height.
func checkBtree(t *testing.T, b *bnode, root bool) int {
	t.Helper()
	if b == nil {
		return 0
	}
	w := b.width()
	if w == 0 || w > maxItems {
		t.Fatalf("node of width %d", w)
	}
	if b.leaf() {
		if b.size != len(b.items) {
			t.Fatalf("leaf size %d with %d items", b.size, len(b.items))
		}
		for i := 1; i < len(b.items); i++ {
			if b.items[i-1].name >= b.items[i].name {
				t.Fatalf("leaf out of order: %q, %q", b.items[i-1].name, b.items[i].name)
			}
		}
		return 1
	}
	if !root && len(b.kids) < 2 {
		t.Fatalf("inner node with %d kids", len(b.kids))
	}
	size, height := 0, -1
	for i, k := range b.kids {
		h := checkBtree(t, k, false)
		if height >= 0 && h != height {
			t.Fatalf("leaves at different depths: %d and %d", height, h)
		}
		height = h
		size += k.size
		if b.mins[i] != k.first() {
			t.Fatalf("mins[%d] = %q, first is %q", i, b.mins[i], k.first())
		}
		if i > 0 && b.mins[i-1] >= b.mins[i] {
			t.Fatalf("kids out of order")
		}
	}
	if size != b.size {
		t.Fatalf("size %d, kids hold %d", b.size, size)
	}
	return height + 1
}

func btreeNames(b *bnode) []string {
	var out []string
	b.ascend(func(n *node) bool {
		out = append(out, n.name)
		return true
	})
	return out
}

func TestBtreeAgreesWithAMapUnderRandomPutsAndDeletes(t *testing.T) {
	for seed := int64(0); seed < 8; seed++ {
		rnd := rand.New(rand.NewSource(seed))
		var b *bnode
		want := map[string]int64{}
		keys := 50 + rnd.Intn(3000)
		old := []*bnode{}
		oldWant := []map[string]int64{}
		for i := 0; i < 20000; i++ {
			k := fmt.Sprintf("k%05d", rnd.Intn(keys))
			if rnd.Intn(3) == 0 {
				var removed bool
				b, removed = b.del(k)
				_, had := want[k]
				if removed != had {
					t.Fatalf("seed %d: del(%s) removed=%v, had=%v", seed, k, removed, had)
				}
				delete(want, k)
			} else {
				var added bool
				b, added = b.put(&node{name: k, rev: int64(i)})
				_, had := want[k]
				if added == had {
					t.Fatalf("seed %d: put(%s) added=%v, had=%v", seed, k, added, had)
				}
				want[k] = int64(i)
			}
			if i%1000 == 0 {
				checkBtree(t, b, true)
				old = append(old, b)
				c := map[string]int64{}
				for k, v := range want {
					c[k] = v
				}
				oldWant = append(oldWant, c)
			}
		}
		checkBtree(t, b, true)
		old, oldWant = append(old, b), append(oldWant, want)
		// Every tree kept along the way still holds exactly what it held.
		for j, ob := range old {
			w := oldWant[j]
			if ob.Len() != len(w) {
				t.Fatalf("seed %d: tree %d has %d items, want %d", seed, j, ob.Len(), len(w))
			}
			for k, rev := range w {
				if n := ob.find(k); n == nil || n.rev != rev {
					t.Fatalf("seed %d: tree %d: find(%s) = %v, want rev %d", seed, j, k, n, rev)
				}
			}
			names := btreeNames(ob)
			if !sort.StringsAreSorted(names) || len(names) != len(w) {
				t.Fatalf("seed %d: tree %d ascends out of order", seed, j)
			}
		}
		for k := range want {
			b, _ = b.del(k)
		}
		if b != nil {
			t.Fatalf("seed %d: tree not empty after deleting everything: %d", seed, b.Len())
		}
	}
}

func TestBuildSortedMakesAValidTreeOfEverySize(t *testing.T) {
	for _, n := range []int{0, 1, 2, 31, 32, 33, 64, 65, 1000, 1025, 40000} {
		items := make([]*node, n)
		for i := range items {
			items[i] = &node{name: fmt.Sprintf("%06d", i)}
		}
		b := buildSorted(items)
		checkBtree(t, b, true)
		if got := b.Len(); got != n {
			t.Fatalf("buildSorted(%d).Len() = %d", n, got)
		}
		// A built tree keeps working under changes.
		for i := 0; i < n; i += 2 {
			b, _ = b.del(items[i].name)
		}
		checkBtree(t, b, true)
		if got, want := b.Len(), n/2; got != want {
			t.Fatalf("after deletes: %d items, want %d", got, want)
		}
	}
}

func TestBtreeAscendStopsWhenToldTo(t *testing.T) {
	var b *bnode
	for i := 0; i < 500; i++ {
		b, _ = b.put(&node{name: fmt.Sprintf("%03d", i)})
	}
	var got []string
	complete := b.ascend(func(n *node) bool {
		got = append(got, n.name)
		return len(got) < 100
	})
	if complete || len(got) != 100 || got[99] != "099" {
		t.Fatalf("ascend went through %d items (complete=%v), want to stop at 100", len(got), complete)
	}
}
