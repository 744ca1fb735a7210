package mount

import (
	"context"
	"slices"
	"syscall"
	"time"

	"bazil.org/fuse"
	fusefs "bazil.org/fuse/fs"

	"github.com/doozerfs/doozerfs/fs"
)

// Rename is one store transaction: for a file, SET(to, its rev or
// missing, body) and DEL(from, rev); for a directory, the whole subtree
// made under the new name and deleted under the old, bottom up. Every
// file's rev is a condition, so a concurrent change anywhere in it makes
// the rename fail with ESTALE and change nothing.
//
// Local files take part: a local file renamed to a replicated name is
// published (sed -i: one SET of the file it replaces); a store file renamed
// to a local name (vim's backup) is hidden on this host, not deleted (see
// overlay.go). bazil does not decode RENAME2, so the kernel answers
// renameat2 with RENAME_NOREPLACE or RENAME_EXCHANGE itself, with EINVAL.
func (d *dirNode) Rename(ctx context.Context, req *fuse.RenameRequest, newDir fusefs.Node) error {
	f := d.fsys
	nd, ok := newDir.(*dirNode)
	if !ok {
		return errno(syscall.EXDEV)
	}
	if f.isReplay(&req.Header) {
		f.mu.Lock()
		f.moveLocked(child(d.path, req.OldName), child(nd.path, req.NewName))
		f.mu.Unlock()
		return nil
	}
	if d == f.root && req.OldName == ctlName {
		return errno(syscall.EPERM)
	}
	if err := nd.checkName(req.NewName); err != nil {
		return err
	}
	if err := f.writable(); err != nil {
		return err
	}
	// A file created here and not committed yet (a pending file, or a
	// local one still being written) is committed first: a tool may
	// rename before it closes.
	f.mu.Lock()
	var creator *handle
	if e := f.overlayLocked(child(d.path, req.OldName)); e != nil {
		creator = e.creator
	}
	f.mu.Unlock()
	if creator != nil {
		if err := creator.commitIfUnsaved(ctx); err != nil {
			return err
		}
	}
	r, err := f.planRename(d, nd, req)
	if err != nil {
		return err
	}
	rev, err := f.doRename(ctx, r)
	if err == nil && creator != nil && r.published {
		creator.publishedAs(rev)
	}
	return err
}

// A renamePlan is what a rename will do, decided under fsys.mu.
type renamePlan struct {
	from, to  string
	ops       []fs.Op // the store transaction (nil: local only)
	demote    bool    // a store file renamed to a local name
	body      []byte  // its body
	hideRev   int64   // and its revision
	local     bool    // a local file renamed among local names
	published bool    // a local file renamed to a replicated name
}

func (f *fsys) planRename(d, nd *dirNode, req *fuse.RenameRequest) (renamePlan, error) {
	v := f.view()
	f.mu.Lock()
	defer f.mu.Unlock()
	r := renamePlan{from: child(d.path, req.OldName), to: child(nd.path, req.NewName)}
	if r.from == r.to {
		return renamePlan{}, nil
	}
	if under(r.to, r.from) {
		return r, errno(syscall.EINVAL)
	}
	src, dst := f.resolveLocked(v, r.from), f.resolveLocked(v, r.to)
	switch {
	case src.typ == fs.TypeNone:
		return r, errno(syscall.ENOENT)
	case src.typ == fs.TypeDir && dst.typ == fs.TypeFile:
		return r, errno(syscall.ENOTDIR)
	case src.typ == fs.TypeFile && dst.typ == fs.TypeDir:
		return r, errno(syscall.EISDIR)
	case src.typ == fs.TypeDir:
		if dst.typ == fs.TypeDir && (dst.st.Children > 0 || f.overlayBelowLocked(r.to)) {
			return r, errno(syscall.ENOTEMPTY)
		}
		ops, err := f.dirRenameOps(v, r.from, r.to, dst)
		r.ops = ops
		return r, err
	case src.ent != nil && !src.local:
		return r, errno(syscall.ESTALE) // a create whose commit failed
	}
	_, toName := parent(r.to)
	dstRev := dst.st.Rev
	if dst.ent != nil { // a local or pending file is replaced
		dstRev = 0
		if st, err := v.Stat(f.storePath(r.to)); err == nil {
			dstRev = st.Rev
		}
	}
	if e := f.overlayLocked(r.to); e != nil && e.kind == entHidden {
		dstRev = e.rev
	}
	toLocal := f.opts.Local(toName, false) || dst.local
	switch {
	case src.local && toLocal:
		r.local = true
	case src.local:
		r.ops = []fs.Op{{Kind: fs.OpSet, Path: f.storePath(r.to), Rev: dstRev, Body: src.body}}
		r.published = true
	case toLocal:
		r.demote, r.body, r.hideRev = true, src.body, src.st.Rev
	default:
		r.ops = []fs.Op{
			{Kind: fs.OpSet, Path: f.storePath(r.to), Rev: dstRev, Body: src.body, Lease: src.st.Lease},
			{Kind: fs.OpDel, Path: f.storePath(r.from), Rev: src.st.Rev},
		}
	}
	return r, nil
}

// dirRenameOps builds the transaction that moves the directory from (and
// its subtree) to to, replacing the empty directory dst if there is one.
func (f *fsys) dirRenameOps(v *fs.View, from, to string, dst object) ([]fs.Op, error) {
	sf, st := f.storePath(from), f.storePath(to)
	src, err := v.Stat(sf)
	if err != nil {
		return nil, toErrno(err)
	}
	ops := []fs.Op{{Kind: fs.OpCheck, Path: sf, Rev: src.Rev}}
	if dst.typ == fs.TypeDir {
		ops = append(ops, fs.Op{Kind: fs.OpDel, Path: st, Rev: fs.Clobber})
	}
	ops = append(ops, fs.Op{Kind: fs.OpMkdir, Path: st, Rev: fs.Missing})
	var dels []fs.Op
	entries := 0
	var walk func(rel string) error
	walk = func(rel string) error {
		ents, err := v.GetDir(sf + rel)
		if err != nil {
			return toErrno(err)
		}
		for _, e := range ents {
			entries++
			if entries > f.opts.MaxRenameEntries {
				return errno(syscall.EXDEV)
			}
			cr := rel + "/" + e.Name
			if e.Type == fs.TypeDir {
				ops = append(ops, fs.Op{Kind: fs.OpMkdir, Path: st + cr, Rev: fs.Missing})
				dels = append(dels, fs.Op{Kind: fs.OpDel, Path: sf + cr, Rev: fs.Clobber})
				if err := walk(cr); err != nil {
					return err
				}
				continue
			}
			body, fst, err := v.Get(sf + cr)
			if err != nil {
				return toErrno(err)
			}
			ops = append(ops, fs.Op{Kind: fs.OpSet, Path: st + cr, Rev: fs.Missing, Body: body, Lease: fst.Lease})
			dels = append(dels, fs.Op{Kind: fs.OpDel, Path: sf + cr, Rev: fst.Rev})
		}
		return nil
	}
	if err := walk(""); err != nil {
		return nil, err
	}
	slices.Reverse(dels)
	ops = append(ops, dels...)
	return append(ops, fs.Op{Kind: fs.OpDel, Path: sf, Rev: fs.Clobber}), nil
}

// doRename commits the plan, records the move, and returns the revision
// made (0 if none).
func (f *fsys) doRename(ctx context.Context, r renamePlan) (int64, error) {
	if r.from == r.to {
		return 0, nil
	}
	var rev int64
	if r.ops != nil {
		var err error
		if rev, err = f.txn(ctx, r.ops); err != nil {
			if fs.KindOf(err) == fs.KindTooBig {
				return 0, &errnoError{errno: syscall.EXDEV, err: err}
			}
			return 0, toErrno(err)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if e := f.overlay[r.to]; e != nil {
		f.unhideLocked(e)
		delete(f.overlay, r.to)
	}
	f.moveLocked(r.from, r.to)
	switch {
	case r.demote:
		f.overlay[r.to] = &entry{kind: entLocal, body: r.body, time: time.Now()}
		f.hideLocked(r.from, r.hideRev)
	case r.ops != nil && f.overlay[r.to] != nil && f.overlay[r.to].kind == entLocal:
		delete(f.overlay, r.to) // published
	}
	return rev, nil
}

// publishedAs makes h, a writer of a local file that was just renamed to
// a replicated name as revision rev, a writer of that store file: what it
// writes from now on is committed there.
func (h *handle) publishedAs(rev int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.local = false
	h.base = rev
	h.body = h.contentLocked()
	h.st = fs.Stat{Type: fs.TypeFile, Size: int64(len(h.body)), Rev: rev}
}

// commitIfUnsaved commits whatever h has not committed yet.
func (h *handle) commitIfUnsaved(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.unsaved {
		return nil
	}
	return h.commitLocked(ctx)
}
