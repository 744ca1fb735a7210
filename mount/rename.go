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
	for range 2 {
		r, err := f.planRename(d, nd, req)
		if err != nil {
			return err
		}
		if r.flush != nil {
			// A file created here and not committed yet: publish it
			// first, then rename it like any other.
			if err := r.flush.commitIfUnsaved(ctx); err != nil {
				return err
			}
			continue
		}
		return f.doRename(ctx, r)
	}
	return errno(syscall.EBUSY)
}

// A renamePlan is what a rename will do, decided under fsys.mu.
type renamePlan struct {
	from, to string
	ops      []fs.Op // the store transaction (nil: local only)
	demote   bool    // a store file renamed to a local name
	body     []byte  // its body
	hideRev  int64   // and its revision
	local    bool    // a local file renamed among local names
	flush    *handle // a pending file to commit first
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
		r.flush = src.ent.creator
		if r.flush == nil {
			return r, errno(syscall.ESTALE)
		}
		return r, nil
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

// doRename commits the plan and then records the move.
func (f *fsys) doRename(ctx context.Context, r renamePlan) error {
	if r.from == r.to {
		return nil
	}
	if r.ops != nil {
		if _, err := f.txn(ctx, r.ops); err != nil {
			if fs.KindOf(err) == fs.KindTooBig {
				return &errnoError{errno: syscall.EXDEV, err: err}
			}
			return toErrno(err)
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
	return nil
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
