package fs

import "strings"

// A node is a file or a directory at one revision. Nodes are immutable once
// reachable from a published View: a change copies the node and every
// ancestor up to the root (path copying), sharing everything else.
type node struct {
	name  string // the component naming this node in its parent; "" for /
	body  []byte // file: the body, owned by nobody (never modified)
	kids  *bnode // directory: the children by name (nil when empty)
	rev   int64  // file: rev of its last change; dir: see SPEC §1
	time  int64  // commit time of rev, Unix nanoseconds
	lease int64  // file: the lease it is bound to (0: none)
	dir   bool
}

func (n *node) typ() NodeType {
	if n.dir {
		return TypeDir
	}
	return TypeFile
}

func (n *node) stat() Stat {
	if n.dir {
		c := n.kids.Len()
		return Stat{Type: TypeDir, Size: int64(c), Rev: n.rev, Time: n.time, Children: c}
	}
	return Stat{Type: TypeFile, Size: int64(len(n.body)), Rev: n.rev, Time: n.time, Lease: n.lease}
}

// lookup returns the child of directory n named name, or nil.
func (n *node) lookup(name string) *node {
	return n.kids.find(name)
}

// withChild returns a copy of directory n in which c replaces the child of
// the same name or is added. Adding a child stamps the copy with rev and
// time; replacing one does not (a directory's rev counts membership only).
func (n *node) withChild(c *node, rev, time int64) *node {
	d := *n
	var added bool
	d.kids, added = n.kids.put(c)
	if added {
		d.rev, d.time = rev, time
	}
	return &d
}

// withoutChild returns a copy of directory n without the child named name,
// stamped with rev and time. The child must exist.
func (n *node) withoutChild(name string, rev, time int64) *node {
	d := *n
	d.kids, _ = n.kids.del(name)
	d.rev, d.time = rev, time
	return &d
}

// newDir returns an empty directory created at rev.
func newDir(name string, rev, time int64) *node {
	return &node{name: name, dir: true, rev: rev, time: time}
}

// lookup finds the node at the valid path p. It returns the node, or nil and
// the kind of the failure: KindNoEnt when a component is missing, KindNotDir
// when an ancestor is a file.
func lookup(root *node, p string) (*node, Kind) {
	n := root
	for rest := p[1:]; rest != ""; {
		var c string
		c, rest, _ = strings.Cut(rest, "/")
		if !n.dir {
			return nil, KindNotDir
		}
		if n = n.lookup(c); n == nil {
			return nil, KindNoEnt
		}
	}
	return n, 0
}

// chain returns the existing nodes along comps: chain[0] is root and
// chain[i] the node at comps[:i]. It stops early at the first missing
// component, or after a file that still has components below it (the
// caller checks the last node's type).
func chain(root *node, comps []string) []*node {
	return chainInto(make([]*node, 0, len(comps)+1), root, comps)
}

// chainInto is chain appending to dst[:0].
func chainInto(dst []*node, root *node, comps []string) []*node {
	out := append(dst[:0], root)
	n := root
	for _, c := range comps {
		if !n.dir {
			break
		}
		n = n.lookup(c)
		if n == nil {
			break
		}
		out = append(out, n)
	}
	return out
}

// rebuild returns the new root after the node at comps[:len(nodes)] of the
// chain nodes is replaced by x (nil: removed), copying each ancestor. The
// parent of x is stamped with rev and time when x is added or removed.
func rebuild(nodes []*node, comps []string, x *node, rev, time int64) *node {
	d := len(nodes) - 1 // x lives at comps[:d+1]; its parent is nodes[d]
	p := nodes[d]
	if x == nil {
		x = p.withoutChild(comps[d], rev, time)
	} else {
		x = p.withChild(x, rev, time)
	}
	for i := d - 1; i >= 0; i-- {
		x = nodes[i].withChild(x, rev, time)
	}
	return x
}
