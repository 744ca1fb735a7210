package fs

// A bnode is one node of an immutable B+tree that holds the children of a
// directory sorted by name. Every change returns a new tree that shares all
// untouched bnodes with the old one, so a write to a directory of n children
// copies O(log n) small nodes instead of the whole child set.
//
// Invariants: all leaves are at the same depth; a leaf holds 1..maxItems
// items in strictly increasing name order; an internal node holds
// 1..maxItems kids with mins[i] the smallest name below kids[i]; size is the
// number of items below. A bnode is never modified once it is reachable
// from a published node. The empty set is a nil *bnode.
type bnode struct {
	items []*node  // leaf: the children, sorted by name
	kids  []*bnode // internal: subtrees in name order (nil for a leaf)
	mins  []string // internal: mins[i] is the smallest name in kids[i]
	size  int      // number of items in this subtree
}

const (
	maxItems = 32 // most items in a leaf, or kids in an internal node
	minItems = 8  // a non-root node with fewer is merged with a neighbour
)

func (b *bnode) leaf() bool { return b.kids == nil }

// width is the number of entries of b itself: items or kids.
func (b *bnode) width() int {
	if b.leaf() {
		return len(b.items)
	}
	return len(b.kids)
}

// first returns the smallest name in the non-empty b.
func (b *bnode) first() string {
	if b.leaf() {
		return b.items[0].name
	}
	return b.mins[0]
}

// Len returns the number of items; a nil tree has none.
func (b *bnode) Len() int {
	if b == nil {
		return 0
	}
	return b.size
}

// find returns the item named name, or nil.
func (b *bnode) find(name string) *node {
	for b != nil {
		if b.leaf() {
			i := b.search(name)
			if i < len(b.items) && b.items[i].name == name {
				return b.items[i]
			}
			return nil
		}
		b = b.kids[b.route(name)]
	}
	return nil
}

// search returns the index of the first item of a leaf whose name is ≥ name.
func (b *bnode) search(name string) int {
	lo, hi := 0, len(b.items)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if b.items[m].name < name {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// route returns the index of the kid of an internal node that holds name,
// or would hold it if it were added.
func (b *bnode) route(name string) int {
	lo, hi := 0, len(b.mins) // find the first min > name
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if b.mins[m] <= name {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return max(lo-1, 0)
}

// ascend calls fn for every item in name order until fn returns false; it
// reports whether it went through all of them.
func (b *bnode) ascend(fn func(*node) bool) bool {
	if b == nil {
		return true
	}
	if b.leaf() {
		for _, n := range b.items {
			if !fn(n) {
				return false
			}
		}
		return true
	}
	for _, k := range b.kids {
		if !k.ascend(fn) {
			return false
		}
	}
	return true
}

// put returns a tree in which n replaces the item of the same name, or is
// added if there is none; added tells which.
func (b *bnode) put(n *node) (t *bnode, added bool) {
	if b == nil {
		return &bnode{items: []*node{n}, size: 1}, true
	}
	l, r, added := b.insert(n)
	if r == nil {
		return l, added
	}
	return newInternal([]*bnode{l, r}), added
}

// insert is put below the root: when the result is too wide it comes back
// split in two, l and r.
func (b *bnode) insert(n *node) (l, r *bnode, added bool) {
	if b.leaf() {
		i := b.search(n.name)
		if i < len(b.items) && b.items[i].name == n.name {
			items := append([]*node(nil), b.items...)
			items[i] = n
			return &bnode{items: items, size: b.size}, nil, false
		}
		items := make([]*node, 0, len(b.items)+1)
		items = append(items, b.items[:i]...)
		items = append(items, n)
		items = append(items, b.items[i:]...)
		l, r = splitLeaf(items)
		return l, r, true
	}
	i := b.route(n.name)
	kl, kr, added := b.kids[i].insert(n)
	w := len(b.kids) + 1
	kids, mins := make([]*bnode, 0, w), make([]string, 0, w)
	kids, mins = append(kids, b.kids[:i]...), append(mins, b.mins[:i]...)
	kids, mins = append(kids, kl), append(mins, kl.first())
	if kr != nil {
		kids, mins = append(kids, kr), append(mins, kr.first())
	}
	kids, mins = append(kids, b.kids[i+1:]...), append(mins, b.mins[i+1:]...)
	size := b.size
	if added {
		size++
	}
	if len(kids) <= maxItems {
		return &bnode{kids: kids, mins: mins, size: size}, nil, added
	}
	l, r = splitInternal(kids)
	return l, r, added
}

// del returns a tree without the item named name; removed reports whether
// there was one. The result is nil when the tree becomes empty.
func (b *bnode) del(name string) (t *bnode, removed bool) {
	if b == nil {
		return nil, false
	}
	t, removed = b.remove(name)
	if !removed {
		return b, false
	}
	for t != nil && !t.leaf() && len(t.kids) == 1 {
		t = t.kids[0]
	}
	if t != nil && t.size == 0 {
		t = nil
	}
	return t, true
}

// remove is del below the root. The result may be empty or narrower than
// minItems; the parent repairs that.
func (b *bnode) remove(name string) (*bnode, bool) {
	if b.leaf() {
		i := b.search(name)
		if i == len(b.items) || b.items[i].name != name {
			return b, false
		}
		items := make([]*node, 0, len(b.items)-1)
		items = append(items, b.items[:i]...)
		items = append(items, b.items[i+1:]...)
		return &bnode{items: items, size: len(items)}, true
	}
	i := b.route(name)
	k, removed := b.kids[i].remove(name)
	if !removed {
		return b, false
	}
	kids := append([]*bnode(nil), b.kids...)
	switch {
	case k.size == 0:
		mins := make([]string, 0, len(b.mins)-1)
		mins = append(append(mins, b.mins[:i]...), b.mins[i+1:]...)
		kids = append(kids[:i], kids[i+1:]...)
		return &bnode{kids: kids, mins: mins, size: b.size - 1}, true
	case k.width() < minItems && len(kids) > 1:
		kids[i] = k
		j := i // merge kids[j] with kids[j+1]
		if j == len(kids)-1 {
			j--
		}
		return newInternal(spliceMerged(kids, j, mergeNodes(kids[j], kids[j+1]))), true
	}
	kids[i] = k
	mins := append([]string(nil), b.mins...)
	mins[i] = k.first()
	return &bnode{kids: kids, mins: mins, size: b.size - 1}, true
}

// spliceMerged replaces kids[i] and kids[i+1] with the one or two nodes of
// merged.
func spliceMerged(kids []*bnode, i int, merged []*bnode) []*bnode {
	out := make([]*bnode, 0, len(kids))
	out = append(out, kids[:i]...)
	out = append(out, merged...)
	return append(out, kids[i+2:]...)
}

// mergeNodes joins two neighbouring nodes of the same height, a before b,
// and splits the result again if it is too wide.
func mergeNodes(a, b *bnode) []*bnode {
	if a.leaf() {
		items := make([]*node, 0, len(a.items)+len(b.items))
		items = append(append(items, a.items...), b.items...)
		l, r := splitLeaf(items)
		return nonNil(l, r)
	}
	kids := make([]*bnode, 0, len(a.kids)+len(b.kids))
	kids = append(append(kids, a.kids...), b.kids...)
	l, r := splitInternal(kids)
	return nonNil(l, r)
}

func nonNil(l, r *bnode) []*bnode {
	if r == nil {
		return []*bnode{l}
	}
	return []*bnode{l, r}
}

// splitLeaf makes one leaf of items, or two halves if there are too many.
func splitLeaf(items []*node) (l, r *bnode) {
	if len(items) <= maxItems {
		return &bnode{items: items, size: len(items)}, nil
	}
	h := len(items) / 2
	a := append([]*node(nil), items[:h]...)
	b := append([]*node(nil), items[h:]...)
	return &bnode{items: a, size: len(a)}, &bnode{items: b, size: len(b)}
}

// splitInternal makes one internal node of kids, or two halves if there are
// too many.
func splitInternal(kids []*bnode) (l, r *bnode) {
	if len(kids) <= maxItems {
		return newInternal(kids), nil
	}
	h := len(kids) / 2
	a := append([]*bnode(nil), kids[:h]...)
	b := append([]*bnode(nil), kids[h:]...)
	return newInternal(a), newInternal(b)
}

// newInternal makes an internal node over kids, computing mins and size.
func newInternal(kids []*bnode) *bnode {
	b := &bnode{kids: kids, mins: make([]string, len(kids))}
	for i, k := range kids {
		b.size += k.size
		if k.size > 0 {
			b.mins[i] = k.first()
		}
	}
	return b
}

// buildSorted makes a tree of items, which must be sorted by name without
// duplicates. It takes ownership of nothing: items may be reused afterwards.
func buildSorted(items []*node) *bnode {
	if len(items) == 0 {
		return nil
	}
	level := make([]*bnode, 0, (len(items)+maxItems-1)/maxItems)
	for _, part := range chunks(len(items)) {
		leaf := append([]*node(nil), items[part[0]:part[1]]...)
		level = append(level, &bnode{items: leaf, size: len(leaf)})
	}
	for len(level) > 1 {
		up := make([]*bnode, 0, (len(level)+maxItems-1)/maxItems)
		for _, part := range chunks(len(level)) {
			up = append(up, newInternal(append([]*bnode(nil), level[part[0]:part[1]]...)))
		}
		level = up
	}
	return level[0]
}

// chunks cuts n entries into runs of at most maxItems and, except when n is
// small, at least minItems: [start, end) pairs.
func chunks(n int) [][2]int {
	count := (n + maxItems - 1) / maxItems
	out := make([][2]int, 0, count)
	for i := 0; i < count; i++ {
		out = append(out, [2]int{i * n / count, (i + 1) * n / count})
	}
	return out
}
