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
		return leafOf([]*node{n}), true
	}
	l, r, added := b.insert(n)
	if r == nil {
		return l, added
	}
	return internalOf([]*bnode{l, r}, nil, l.size+r.size), added
}

// insert is put below the root: when the result is too wide it comes back
// split in two, l and r.
func (b *bnode) insert(n *node) (l, r *bnode, added bool) {
	if b.leaf() {
		i := b.search(n.name)
		if i < len(b.items) && b.items[i].name == n.name {
			l = leafOf(b.items)
			l.items[i] = n
			return l, nil, false
		}
		var buf [maxItems + 1]*node
		items := append(buf[:0], b.items[:i]...)
		items = append(items, n)
		items = append(items, b.items[i:]...)
		l, r = splitLeaf(items)
		return l, r, true
	}
	i := b.route(n.name)
	kl, kr, added := b.kids[i].insert(n)
	var kbuf [maxItems + 1]*bnode
	var mbuf [maxItems + 1]string
	kids, mins := append(kbuf[:0], b.kids[:i]...), append(mbuf[:0], b.mins[:i]...)
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
		return internalOf(kids, mins, size), nil, added
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
		var buf [maxItems]*node
		items := append(buf[:0], b.items[:i]...)
		items = append(items, b.items[i+1:]...)
		return leafOf(items), true
	}
	i := b.route(name)
	k, removed := b.kids[i].remove(name)
	if !removed {
		return b, false
	}
	var kbuf [maxItems]*bnode
	kids := append(kbuf[:0], b.kids...)
	switch {
	case k.size == 0:
		var mbuf [maxItems]string
		mins := append(append(mbuf[:0], b.mins[:i]...), b.mins[i+1:]...)
		kids = append(kids[:i], kids[i+1:]...)
		return internalOf(kids, mins, b.size-1), true
	case k.width() < minItems && len(kids) > 1:
		kids[i] = k
		j := i // merge kids[j] with kids[j+1]
		if j == len(kids)-1 {
			j--
		}
		ml, mr := mergeNodes(kids[j], kids[j+1])
		kids[j] = ml
		if mr != nil {
			kids[j+1] = mr
		} else {
			kids = append(kids[:j+1], kids[j+2:]...)
		}
		return internalOf(kids, nil, b.size-1), true
	}
	kids[i] = k
	n := internalOf(kids, b.mins, b.size-1)
	n.mins[i] = k.first()
	return n, true
}

// mergeNodes joins two neighbouring nodes of the same height, a before b,
// and splits the result again if it is too wide (r is nil if it is not).
func mergeNodes(a, b *bnode) (l, r *bnode) {
	if a.leaf() {
		var buf [2 * maxItems]*node
		return splitLeaf(append(append(buf[:0], a.items...), b.items...))
	}
	var buf [2 * maxItems]*bnode
	return splitInternal(append(append(buf[:0], a.kids...), b.kids...))
}

// splitLeaf makes one leaf of (a copy of) items, or two halves if there are
// too many.
func splitLeaf(items []*node) (l, r *bnode) {
	if len(items) <= maxItems {
		return leafOf(items), nil
	}
	h := len(items) / 2
	return leafOf(items[:h]), leafOf(items[h:])
}

// splitInternal makes one internal node over (a copy of) kids, or two
// halves if there are too many.
func splitInternal(kids []*bnode) (l, r *bnode) {
	if len(kids) <= maxItems {
		return internalOf(kids, nil, -1), nil
	}
	h := len(kids) / 2
	return internalOf(kids[:h], nil, -1), internalOf(kids[h:], nil, -1)
}

// leafOf returns a new leaf holding a copy of items. The bnode and its
// items are one allocation (see bnodeAlloc).
func leafOf(items []*node) *bnode {
	b := newBnode(len(items), false)
	copy(b.items, items)
	b.size = len(items)
	return b
}

// internalOf returns a new internal node over a copy of kids, with a copy
// of mins (nil: computed from kids) and size (negative: computed). The
// bnode, its kids and its mins are one allocation.
func internalOf(kids []*bnode, mins []string, size int) *bnode {
	b := newBnode(len(kids), true)
	copy(b.kids, kids)
	if mins != nil {
		copy(b.mins, mins)
	} else {
		for i, k := range kids {
			if k.size > 0 {
				b.mins[i] = k.first()
			}
		}
	}
	if size < 0 {
		size = 0
		for _, k := range kids {
			size += k.size
		}
	}
	b.size = size
	return b
}

// newBnode allocates a bnode with n items (a leaf) or n kids and mins (an
// internal node) in a single object whose arrays are the smallest of 2, 4,
// 8, 16 or 32 entries that fits: one heap object per B-tree node instead
// of two or three, for Apply to allocate and the collector to mark.
func newBnode(n int, internal bool) *bnode {
	switch {
	case n <= 2 && internal:
		p := new(struct {
			b    bnode
			kids [2]*bnode
			mins [2]string
		})
		p.b.kids, p.b.mins = p.kids[:n:n], p.mins[:n:n]
		return &p.b
	case n <= 2:
		p := new(struct {
			b     bnode
			items [2]*node
		})
		p.b.items = p.items[:n:n]
		return &p.b
	case n <= 4 && internal:
		p := new(struct {
			b    bnode
			kids [4]*bnode
			mins [4]string
		})
		p.b.kids, p.b.mins = p.kids[:n:n], p.mins[:n:n]
		return &p.b
	case n <= 4:
		p := new(struct {
			b     bnode
			items [4]*node
		})
		p.b.items = p.items[:n:n]
		return &p.b
	case n <= 8 && internal:
		p := new(struct {
			b    bnode
			kids [8]*bnode
			mins [8]string
		})
		p.b.kids, p.b.mins = p.kids[:n:n], p.mins[:n:n]
		return &p.b
	case n <= 8:
		p := new(struct {
			b     bnode
			items [8]*node
		})
		p.b.items = p.items[:n:n]
		return &p.b
	case n <= 16 && internal:
		p := new(struct {
			b    bnode
			kids [16]*bnode
			mins [16]string
		})
		p.b.kids, p.b.mins = p.kids[:n:n], p.mins[:n:n]
		return &p.b
	case n <= 16:
		p := new(struct {
			b     bnode
			items [16]*node
		})
		p.b.items = p.items[:n:n]
		return &p.b
	case n <= 32 && internal:
		p := new(struct {
			b    bnode
			kids [32]*bnode
			mins [32]string
		})
		p.b.kids, p.b.mins = p.kids[:n:n], p.mins[:n:n]
		return &p.b
	case n <= 32:
		p := new(struct {
			b     bnode
			items [32]*node
		})
		p.b.items = p.items[:n:n]
		return &p.b
	case internal:
		return &bnode{kids: make([]*bnode, n), mins: make([]string, n)}
	}
	return &bnode{items: make([]*node, n)}
}

// buildSorted makes a tree of items, which must be sorted by name without
// duplicates. It takes ownership of nothing: items may be reused afterwards.
func buildSorted(items []*node) *bnode {
	if len(items) == 0 {
		return nil
	}
	level := make([]*bnode, 0, (len(items)+maxItems-1)/maxItems)
	for _, part := range chunks(len(items)) {
		level = append(level, leafOf(items[part[0]:part[1]]))
	}
	for len(level) > 1 {
		up := make([]*bnode, 0, (len(level)+maxItems-1)/maxItems)
		for _, part := range chunks(len(level)) {
			up = append(up, internalOf(level[part[0]:part[1]], nil, -1))
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
