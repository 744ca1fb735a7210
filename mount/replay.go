package mount

import (
	"bytes"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/doozerfs/doozerfs/fs"
)

// The kernel fires inotify events only for operations that pass through
// its VFS, never for a change that arrives from another host. So for each
// revision that this mount did not commit, the follower performs a
// matching operation on its own mountpoint, which the handlers recognise
// (by thread id) and answer without touching the store:
//
//	a file created    open(O_CREAT|O_EXCL|O_WRONLY), ftruncate, close:
//	                  IN_CREATE, IN_OPEN, IN_MODIFY, IN_CLOSE_WRITE
//	a file changed    open(O_WRONLY), ftruncate(new size), close:
//	                  IN_OPEN, IN_MODIFY, IN_CLOSE_WRITE
//	a file deleted    unlink: IN_DELETE, IN_DELETE_SELF
//	a directory made  mkdir: IN_CREATE|IN_ISDIR
//	a directory gone  rmdir: IN_DELETE|IN_ISDIR, IN_DELETE_SELF
//	a rename          rename: IN_MOVED_FROM, IN_MOVED_TO (IN_MOVE_SELF)
//
// A rename is inferred from a revision that deletes one entry and creates
// another with the same content: a file with the same body, or a directory
// whose whole subtree (names and bodies) reappears under the new name.
// Lookups from the replay thread see the state before the replayed
// operation (fsys.override), so that, say, the unlink of a file already
// gone from the store finds it.

type replayKind uint8

const (
	rpCreate replayKind = iota + 1
	rpModify
	rpDelete
	rpRmdir
	rpMkdir
	rpRename
)

// A replayOp is one operation to perform through the mountpoint.
type replayOp struct {
	kind   replayKind
	rel    string // mount path
	to     string // rpRename: the new mount path
	typ    fs.NodeType
	size   int64
	before map[string]fs.NodeType // what the replay's lookups see before it
}

// An inference turns the events of one revision into replay operations.
type inference struct {
	pre, post *fs.View
	evs       []relEvent
	sp        func(string) string // mount path → store path
	byPath    map[string][]int    // indexes of the events of each path
	used      []bool              // events taken by a rename
	at        map[int]replayOp    // renames, at the index of their first event
}

// infer turns the events of one revision into replay operations, in the
// order of the events, with renames recognised.
func infer(pre, post *fs.View, evs []relEvent, sp func(string) string) []replayOp {
	x := &inference{pre: pre, post: post, evs: evs, sp: sp, byPath: make(map[string][]int),
		used: make([]bool, len(evs)), at: make(map[int]replayOp)}
	for i, ev := range evs {
		x.byPath[ev.rel] = append(x.byPath[ev.rel], i)
	}
	x.dirRenames()
	x.fileRenames()
	return x.ops()
}

// dirRenames finds directory renames, outermost first: each takes its
// children's events.
func (x *inference) dirRenames() {
	var dels []int
	for i, ev := range x.evs {
		if ev.Kind != fs.EventDel {
			continue
		}
		if st, err := x.pre.Stat(x.sp(ev.rel)); err == nil && st.Type == fs.TypeDir {
			dels = append(dels, i)
		}
	}
	slices.SortStableFunc(dels, func(a, b int) int {
		return strings.Count(x.evs[a].rel, "/") - strings.Count(x.evs[b].rel, "/")
	})
	for _, i := range dels {
		if !x.used[i] {
			x.dirRename(x.evs[i].rel)
		}
	}
}

// dirRename looks for the directory made in this revision with the same
// subtree as the deleted directory from.
func (x *inference) dirRename(from string) {
	for j, mk := range x.evs {
		if x.used[j] || mk.Kind != fs.EventMkdir || under(mk.rel, from) || under(from, mk.rel) {
			continue
		}
		idx, ok := x.sameSubtree(from, mk.rel)
		if !ok {
			continue
		}
		// An empty directory the rename replaced goes with it.
		if k, ok := x.eventAt(mk.rel, false); ok && k < j {
			idx = append(idx, k)
		}
		x.take(idx, renameOp(from, mk.rel, fs.TypeDir, x.pre, x.sp))
		return
	}
}

// fileRenames pairs a deleted file with a set of its body elsewhere.
func (x *inference) fileRenames() {
	for i, ev := range x.evs {
		if ev.Kind != fs.EventDel || x.used[i] {
			continue
		}
		body, st, err := x.pre.Get(x.sp(ev.rel))
		if err != nil || st.Type != fs.TypeFile {
			continue
		}
		for j, set := range x.evs {
			if !x.used[j] && set.Kind == fs.EventSet && set.rel != ev.rel && bytes.Equal(set.Body, body) {
				x.take([]int{i, j}, renameOp(ev.rel, set.rel, fs.TypeFile, x.pre, x.sp))
				break
			}
		}
	}
}

// take marks the events idx as the rename op's.
func (x *inference) take(idx []int, op replayOp) {
	first := len(x.evs)
	for _, k := range idx {
		x.used[k] = true
		first = min(first, k)
	}
	x.at[first] = op
}

// ops lists the renames and the rest of the events, in order, tracking what
// each path is as it goes.
func (x *inference) ops() []replayOp {
	state := make(map[string]fs.NodeType)
	typeOf := func(rel string) fs.NodeType {
		if t, ok := state[rel]; ok {
			return t
		}
		if st, err := x.pre.Stat(x.sp(rel)); err == nil {
			return st.Type
		}
		return fs.TypeNone
	}
	var ops []replayOp
	for i, ev := range x.evs {
		if op, ok := x.at[i]; ok {
			ops = append(ops, op)
			state[op.rel], state[op.to] = fs.TypeNone, op.typ
		}
		if x.used[i] {
			continue
		}
		was := typeOf(ev.rel)
		op := replayOp{rel: ev.rel, before: map[string]fs.NodeType{ev.rel: was}}
		switch {
		case ev.Kind == fs.EventSet && was == fs.TypeNone:
			op.kind, op.typ, op.size = rpCreate, fs.TypeFile, int64(len(ev.Body))
		case ev.Kind == fs.EventSet:
			op.kind, op.typ, op.size = rpModify, fs.TypeFile, int64(len(ev.Body))
		case ev.Kind == fs.EventMkdir:
			op.kind, op.typ = rpMkdir, fs.TypeDir
		case was == fs.TypeDir:
			op.kind = rpRmdir
		default:
			op.kind = rpDelete
		}
		state[ev.rel] = op.typ // TypeNone after a delete
		ops = append(ops, op)
	}
	return ops
}

// renameOp is the replay of renaming from to to.
func renameOp(from, to string, typ fs.NodeType, pre *fs.View, sp func(string) string) replayOp {
	old := fs.TypeNone
	if st, err := pre.Stat(sp(to)); err == nil {
		old = st.Type
	}
	return replayOp{
		kind:   rpRename,
		rel:    from,
		to:     to,
		typ:    typ,
		before: map[string]fs.NodeType{from: typ, to: old},
	}
}

// sameSubtree reports whether the directory from in pre has the same
// subtree (names, types and bodies) as the directory to in post, and every
// path of both was changed by this revision (deleted below from, created
// below to). It returns the indexes of those events.
func (x *inference) sameSubtree(from, to string) ([]int, bool) {
	a, okA := subtree(x.pre, x.sp(from))
	b, okB := subtree(x.post, x.sp(to))
	if !okA || !okB || len(a) != len(b) {
		return nil, false
	}
	var idx []int
	for rel, na := range a {
		nb, ok := b[rel]
		if !ok || na.dir != nb.dir || !bytes.Equal(na.body, nb.body) {
			return nil, false
		}
		del, ok := x.eventAt(from+rel, false)
		if !ok {
			return nil, false
		}
		mk, ok := x.eventAt(to+rel, true)
		if !ok {
			return nil, false
		}
		idx = append(idx, del, mk)
	}
	return idx, true
}

// eventAt returns the index of the first unused event at rel that creates
// (a set or mkdir) or deletes it.
func (x *inference) eventAt(rel string, creates bool) (int, bool) {
	for _, i := range x.byPath[rel] {
		if !x.used[i] && (x.evs[i].Kind != fs.EventDel) == creates {
			return i, true
		}
	}
	return 0, false
}

type subNode struct {
	dir  bool
	body []byte
}

// subtree lists the directory at the store path p and everything below it,
// keyed by the path relative to p ("" for p itself). It gives up past
// 100,000 entries.
func subtree(v *fs.View, p string) (map[string]subNode, bool) {
	out := map[string]subNode{"": {dir: true}}
	var walk func(dir, rel string) bool
	walk = func(dir, rel string) bool {
		ents, err := v.GetDir(dir)
		if err != nil {
			return false
		}
		for _, e := range ents {
			if len(out) > 100000 {
				return false
			}
			cp, cr := child(dir, e.Name), rel+"/"+e.Name
			if e.Type == fs.TypeDir {
				out[cr] = subNode{dir: true}
				if !walk(cp, cr) {
					return false
				}
				continue
			}
			body, _, err := v.Get(cp)
			if err != nil {
				return false
			}
			out[cr] = subNode{body: body}
		}
		return true
	}
	return out, walk(p, "")
}

// replay performs op through the mountpoint. Failures are expected when
// the kernel's view already moved on (a local process looked the new file
// up first, say); they only cost the inotify events.
func (w *follower) replay(op replayOp) {
	f := w.f
	f.mu.Lock()
	for p, t := range op.before {
		f.override[p] = t
	}
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		for p := range op.before {
			delete(f.override, p)
		}
		f.mu.Unlock()
	}()
	p := f.dir + op.rel
	if op.rel == "/" {
		return
	}
	var err error
	switch op.kind {
	case rpCreate:
		var fd int
		fd, err = unix.Open(p, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
		if err == unix.EEXIST {
			fd, err = unix.Open(p, unix.O_WRONLY|unix.O_CLOEXEC, 0)
		}
		if err == nil {
			err = unix.Ftruncate(fd, op.size)
			unix.Close(fd)
		}
	case rpModify:
		var fd int
		fd, err = unix.Open(p, unix.O_WRONLY|unix.O_CLOEXEC, 0)
		if err == nil {
			err = unix.Ftruncate(fd, op.size)
			unix.Close(fd)
		}
	case rpDelete:
		err = unix.Unlink(p)
	case rpRmdir:
		err = unix.Rmdir(p)
	case rpMkdir:
		err = unix.Mkdir(p, 0o755)
	case rpRename:
		err = unix.Rename(p, f.dir+op.to)
	}
	if err != nil {
		f.opts.Logger.Debug("mount: inotify replay failed", "op", op.kind, "path", op.rel, "err", err)
	}
}
