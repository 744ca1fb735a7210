package fs

// A View is the tree at one revision. It is immutable and safe for any number
// of goroutines; holding it keeps that revision's nodes alive.
//
// Bodies are never copied: a body returned by Get or passed to Walk's fn is
// shared with the tree and every other reader, and must not be modified.
type View struct {
	rev  int64
	root *node
}

// Rev returns the revision the view shows.
func (v *View) Rev() int64 { return v.rev }

// node resolves path to a node, or an *Error: BAD_PATH, NOENT or NOTDIR.
func (v *View) node(path string) (*node, error) {
	if err := ValidPath(path); err != nil {
		return nil, err
	}
	n, k := lookup(v.root, path)
	if n == nil {
		return nil, &Error{Kind: k, Path: path}
	}
	return n, nil
}

// Get returns the body and Stat of the file at path. A directory is ISDIR;
// a missing path NOENT; a path through a file NOTDIR; an invalid one
// BAD_PATH. The body must not be modified.
func (v *View) Get(path string) ([]byte, Stat, error) {
	n, err := v.node(path)
	if err != nil {
		return nil, Stat{}, err
	}
	if n.dir {
		return nil, Stat{}, &Error{Kind: KindIsDir, Path: path}
	}
	return n.body, n.stat(), nil
}

// Stat describes the file or directory at path.
func (v *View) Stat(path string) (Stat, error) {
	n, err := v.node(path)
	if err != nil {
		return Stat{}, err
	}
	return n.stat(), nil
}

// GetDir lists the directory at path, sorted by name (byte order). A file
// is NOTDIR.
func (v *View) GetDir(path string) ([]DirEntry, error) {
	n, err := v.node(path)
	if err != nil {
		return nil, err
	}
	if !n.dir {
		return nil, &Error{Kind: KindNotDir, Path: path}
	}
	out := make([]DirEntry, 0, n.kids.Len())
	n.kids.ascend(func(c *node) bool {
		out = append(out, DirEntry{Name: c.name, Type: c.typ()})
		return true
	})
	return out, nil
}

// Walk calls fn for every file whose path matches g (nil: every file) in
// depth-first order, each directory's children in name order, until fn
// returns false. Directories are never passed to fn. The body must not be
// modified. Walk only descends into directories that can hold a match, and
// looks literal components up directly. It returns nil today (every glob is
// checked by CompileGlob); callers should still check the error.
func (v *View) Walk(g *Glob, fn func(path string, st Stat, body []byte) bool) error {
	if g == nil {
		g = matchAll
	}
	w := walker{g: g, fn: fn}
	w.dir("/", v.root, 0, g.start())
	return nil
}

// A walker is one run of View.Walk: a depth-first search driven by the set
// of glob states alive at each directory.
type walker struct {
	g       *Glob
	fn      func(string, Stat, []byte) bool
	bufs    [][]uint64 // bufs[d]: the state set of a child at depth d
	stopped bool
}

// dir visits the children of directory n at path, at depth d, with states
// the glob positions reached at n.
func (w *walker) dir(path string, n *node, d int, states []uint64) {
	name, only, dead := w.g.literalNext(states)
	switch {
	case dead:
	case only:
		if c := n.lookup(name); c != nil {
			w.visit(path, c, d, states)
		}
	default:
		n.kids.ascend(func(c *node) bool {
			w.visit(path, c, d, states)
			return !w.stopped
		})
	}
}

// visit handles the child c, at depth d, of the directory at dir.
func (w *walker) visit(dir string, c *node, d int, states []uint64) {
	for len(w.bufs) <= d {
		w.bufs = append(w.bufs, make([]uint64, w.g.words))
	}
	next := w.bufs[d]
	if !w.g.stepInto(next, states, c.name) {
		return
	}
	p := child(dir, c.name)
	if !c.dir {
		if w.g.accepts(next) && !w.fn(p, c.stat(), c.body) {
			w.stopped = true
		}
		return
	}
	w.dir(p, c, d+1, next)
}
