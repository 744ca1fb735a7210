package mount

import (
	"context"
	"sort"
	"syscall"
	"time"

	"bazil.org/fuse"
	fusefs "bazil.org/fuse/fs"

	"github.com/doozerfs/doozerfs/fs"
)

// ctlName is the control directory at the mount's root, found by name but
// never listed.
const ctlName = ".doozerfs"

// dirNode is a store directory.
type dirNode struct {
	nodeBase
}

var (
	_ fusefs.Node                = (*dirNode)(nil)
	_ fusefs.NodeGetattrer       = (*dirNode)(nil)
	_ fusefs.NodeSetattrer       = (*dirNode)(nil)
	_ fusefs.NodeRequestLookuper = (*dirNode)(nil)
	_ fusefs.HandleReadDirAller  = (*dirNode)(nil)
	_ fusefs.NodeCreater         = (*dirNode)(nil)
	_ fusefs.NodeMkdirer         = (*dirNode)(nil)
	_ fusefs.NodeRemover         = (*dirNode)(nil)
	_ fusefs.NodeRenamer         = (*dirNode)(nil)
	_ fusefs.NodeMknoder         = (*dirNode)(nil)
	_ fusefs.NodeSymlinker       = (*dirNode)(nil)
	_ fusefs.NodeLinker          = (*dirNode)(nil)
	_ fusefs.NodeFsyncer         = (*dirNode)(nil)
	_ fusefs.NodeGetxattrer      = (*dirNode)(nil)
	_ fusefs.NodeListxattrer     = (*dirNode)(nil)
	_ fusefs.NodeSetxattrer      = (*dirNode)(nil)
	_ fusefs.NodeForgetter       = (*dirNode)(nil)
)

// object returns what the directory's path shows now.
func (d *dirNode) object(ctx context.Context) object {
	if info := infoFrom(ctx); info.objFor == node(d) && info.obj != nil {
		return *info.obj
	}
	return d.fsys.resolve(d.Path())
}

// Attr reports the directory's attributes. A directory deleted elsewhere
// while the kernel still holds it shows as empty, and is not cached.
func (d *dirNode) Attr(ctx context.Context, a *fuse.Attr) error {
	o := d.object(ctx)
	if o.typ != fs.TypeDir {
		o = object{typ: fs.TypeDir}
		d.fsys.attrFor(o, d.ino, a)
		a.Valid = 0
		return nil
	}
	d.fsys.attrFor(o, d.ino, a)
	return nil
}

// Getattr is Attr.
func (d *dirNode) Getattr(ctx context.Context, req *fuse.GetattrRequest, resp *fuse.GetattrResponse) error {
	return d.Attr(ctx, &resp.Attr)
}

// Setattr accepts chmod and chown to the current values and ignores times.
func (d *dirNode) Setattr(ctx context.Context, req *fuse.SetattrRequest, resp *fuse.SetattrResponse) error {
	if d.fsys.isReplay(&req.Header) {
		return nil
	}
	if req.Valid.Size() {
		return errno(syscall.EISDIR)
	}
	if err := d.fsys.checkSetattr(req, true); err != nil {
		return err
	}
	if d.fsys.opts.ReadOnly {
		return errno(syscall.EROFS)
	}
	return nil
}

// Lookup finds name in the directory: the overlay first, then the store.
// Lookups from the replay thread see what a replay needs (the state before
// the change it replays).
func (d *dirNode) Lookup(ctx context.Context, req *fuse.LookupRequest, resp *fuse.LookupResponse) (fusefs.Node, error) {
	f := d.fsys
	if d == f.root && req.Name == ctlName {
		resp.EntryValid = f.opts.CacheTTL
		return f.ctl, nil
	}
	v := f.view()
	f.mu.Lock()
	rel := child(d.path, req.Name)
	if f.isReplay(&req.Header) {
		if t, ok := f.override[rel]; ok {
			defer f.mu.Unlock()
			if t == fs.TypeNone {
				return nil, errno(syscall.ENOENT)
			}
			resp.EntryValid = f.opts.CacheTTL
			return f.nodeLocked(rel, t), nil
		}
	}
	o := f.resolveLocked(v, rel)
	if o.typ == fs.TypeNone {
		f.mu.Unlock()
		return nil, errno(syscall.ENOENT)
	}
	n := f.nodeLocked(rel, o.typ)
	f.mu.Unlock()
	info := infoFrom(ctx)
	info.obj, info.objFor = &o, n
	resp.EntryValid = f.opts.CacheTTL
	return n, nil
}

// ReadDirAll lists the directory: the store's entries, without hidden
// files and with this host's local and pending files.
func (d *dirNode) ReadDirAll(ctx context.Context) ([]fuse.Dirent, error) {
	f := d.fsys
	v := f.view()
	f.mu.Lock()
	rel := d.path
	ov := f.overlayNamesLocked(rel)
	f.mu.Unlock()
	ents, err := v.GetDir(f.storePath(rel))
	if err != nil && !(rel == "/" && fs.KindOf(err) == fs.KindNoEnt) {
		return nil, toErrno(err)
	}
	out := make([]fuse.Dirent, 0, len(ents)+len(ov))
	for _, e := range ents {
		if _, ok := ov[e.Name]; ok || rel == "/" && e.Name == ctlName {
			continue
		}
		typ := fuse.DT_File
		if e.Type == fs.TypeDir {
			typ = fuse.DT_Dir
		}
		out = append(out, fuse.Dirent{Inode: d.childIno(e.Name), Type: typ, Name: e.Name})
	}
	for name, e := range ov {
		if e.kind != entHidden {
			out = append(out, fuse.Dirent{Inode: d.childIno(name), Type: fuse.DT_File, Name: name})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// childIno returns the inode number a listing shows for name: that of the
// registered node, or the one a lookup would give.
func (d *dirNode) childIno(name string) uint64 {
	f := d.fsys
	f.mu.Lock()
	defer f.mu.Unlock()
	rel := child(d.path, name)
	if n, ok := f.nodes[rel]; ok && !n.base().gone {
		return n.base().ino
	}
	return f.inoForLocked(f.storePath(rel))
}

// checkName refuses names the store cannot hold and the control directory.
func (d *dirNode) checkName(name string) error {
	f := d.fsys
	if d == f.root && name == ctlName {
		return errno(syscall.EPERM)
	}
	if len(name) > fs.MaxComponent {
		return errno(syscall.ENAMETOOLONG)
	}
	if err := fs.ValidPath(f.storePath(child(d.Path(), name))); err != nil {
		return errno(syscall.EINVAL)
	}
	return nil
}

// freshNodeLocked returns a new node for rel: the kernel believes nothing
// is there, so any node registered for it is stale.
func (f *fsys) freshNodeLocked(rel string, typ fs.NodeType) node {
	if old, ok := f.nodes[rel]; ok {
		f.detachLocked(old.base())
	}
	return f.nodeLocked(rel, typ)
}

// Create makes a new file. It is not committed yet (see handle.go): a
// pending file commits with its first data, or empty at release. An
// exclusive create is refused at once if the name exists here, and its
// commit is a create-if-missing, so only one host can win; the loser's
// write or close fails with EEXIST.
func (d *dirNode) Create(ctx context.Context, req *fuse.CreateRequest, resp *fuse.CreateResponse) (fusefs.Node, fusefs.Handle, error) {
	f := d.fsys
	resp.EntryValid = f.opts.CacheTTL
	resp.Flags |= fuse.OpenDirectIO
	if f.isReplay(&req.Header) {
		f.mu.Lock()
		n := f.nodeLocked(child(d.path, req.Name), fs.TypeFile).(*fileNode)
		f.mu.Unlock()
		return n, &handle{node: n, replay: true}, nil
	}
	if err := d.checkName(req.Name); err != nil {
		return nil, nil, err
	}
	if !req.Mode.IsRegular() {
		return nil, nil, errno(syscall.EPERM)
	}
	if err := f.writable(); err != nil {
		return nil, nil, err
	}
	excl := req.Flags&fuse.OpenExclusive != 0
	h := &handle{seq: handleSeq.Add(1), pid: req.Pid, write: true, writer: true,
		append: req.Flags&fuse.OpenAppend != 0, excl: excl, rdwr: req.Flags.IsReadWrite()}
	v := f.view()
	f.mu.Lock()
	rel := child(d.path, req.Name)
	if o := f.resolveLocked(v, rel); o.typ != fs.TypeNone {
		f.mu.Unlock()
		return d.createExisting(ctx, rel, o, h, req)
	}
	f.startFileLocked(v, rel, h, req.Name)
	n := f.freshNodeLocked(rel, fs.TypeFile).(*fileNode)
	f.mu.Unlock()
	n.mu.Lock()
	n.writers++ // a new node: no reader to wait for
	n.mu.Unlock()
	n.addHandle(h)
	return n, h, nil
}

// startFileLocked starts the new file rel written by h (not shared yet):
// the recreation of a hidden file, a local file, or a pending one.
func (f *fsys) startFileLocked(v *fs.View, rel string, h *handle, name string) {
	h.bufValid = true
	e := f.overlayLocked(rel)
	switch {
	case e != nil && e.kind == entHidden:
		// The name of a file renamed to a local name is made again (vim
		// writing with backup by rename): the new body replaces the
		// hidden one in one revision.
		f.unhideLocked(e)
		delete(f.overlay, rel)
		st, err := v.Stat(f.storePath(rel))
		if err != nil || st.Type != fs.TypeFile || st.Rev != e.rev {
			h.failed = errno(syscall.ESTALE) // changed elsewhere meanwhile
		}
		h.base, h.lease = e.rev, st.Lease
		h.unsaved = true
		h.touched.Store(true)
	case f.opts.Local(name, h.excl):
		f.overlay[rel] = &entry{kind: entLocal, time: time.Now(), creator: h}
		h.local = true
	default:
		f.overlay[rel] = &entry{kind: entPending, time: time.Now(), creator: h}
		h.created = true
		h.unsaved = true
	}
}

// createExisting answers a create of a name that exists: it appeared
// between the kernel's lookup and this create, or the kernel's entry was
// dropped.
func (d *dirNode) createExisting(ctx context.Context, rel string, o object, h *handle, req *fuse.CreateRequest) (fusefs.Node, fusefs.Handle, error) {
	f := d.fsys
	switch {
	case o.typ == fs.TypeDir:
		return nil, nil, errno(syscall.EISDIR)
	case h.excl:
		return nil, nil, errno(syscall.EEXIST)
	}
	f.mu.Lock()
	n := f.nodeLocked(rel, fs.TypeFile).(*fileNode)
	f.mu.Unlock()
	if err := n.admitWriter(ctx); err != nil {
		return nil, nil, err
	}
	h.openExisting(n.current(ctx))
	if req.Flags&fuse.OpenTruncate != 0 {
		h.truncate(0, false)
	}
	n.addHandle(h)
	return n, h, nil
}

// Mkdir makes a directory in the store at once.
func (d *dirNode) Mkdir(ctx context.Context, req *fuse.MkdirRequest) (fusefs.Node, error) {
	f := d.fsys
	if f.isReplay(&req.Header) {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.nodeLocked(child(d.path, req.Name), fs.TypeDir), nil
	}
	if err := d.checkName(req.Name); err != nil {
		return nil, err
	}
	if err := f.writable(); err != nil {
		return nil, err
	}
	rel := child(d.Path(), req.Name)
	f.mu.Lock()
	e := f.overlayLocked(rel)
	f.mu.Unlock()
	if e != nil && e.kind != entHidden {
		return nil, errno(syscall.EEXIST)
	}
	if _, err := f.txn(ctx, []fs.Op{{Kind: fs.OpMkdir, Path: f.storePath(rel), Rev: fs.Missing}}); err != nil {
		return nil, errnoFor(err, syscall.EEXIST)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.freshNodeLocked(rel, fs.TypeDir), nil
}

// Remove is unlink and rmdir. A file is deleted on the condition that it
// is still the revision this host shows (ESTALE otherwise); a directory if
// it is empty everywhere (ENOTEMPTY otherwise).
func (d *dirNode) Remove(ctx context.Context, req *fuse.RemoveRequest) error {
	f := d.fsys
	if f.isReplay(&req.Header) {
		f.mu.Lock()
		f.dropLocked(child(d.path, req.Name))
		f.mu.Unlock()
		return nil
	}
	if d == f.root && req.Name == ctlName {
		return errno(syscall.EPERM)
	}
	if err := f.writable(); err != nil {
		return err
	}
	v := f.view()
	f.mu.Lock()
	rel := child(d.path, req.Name)
	if e := f.overlayLocked(rel); e != nil {
		defer f.mu.Unlock()
		switch {
		case e.kind == entHidden:
			return errno(syscall.ENOENT)
		case req.Dir:
			return errno(syscall.ENOTDIR)
		}
		delete(f.overlay, rel)
		f.dropLocked(rel)
		return nil
	}
	o := f.resolveLocked(v, rel)
	var err error
	switch {
	case o.typ == fs.TypeNone:
		err = errno(syscall.ENOENT)
	case req.Dir && o.typ != fs.TypeDir:
		err = errno(syscall.ENOTDIR)
	case !req.Dir && o.typ == fs.TypeDir:
		err = errno(syscall.EISDIR)
	case req.Dir && f.overlayBelowLocked(rel):
		err = errno(syscall.ENOTEMPTY)
	}
	f.mu.Unlock()
	if err != nil {
		return err
	}
	op := fs.Op{Kind: fs.OpDel, Path: f.storePath(rel), Rev: o.st.Rev}
	if o.typ == fs.TypeDir {
		op.Rev = fs.Clobber
	}
	if _, err := f.txn(ctx, []fs.Op{op}); err != nil {
		return toErrno(err)
	}
	f.mu.Lock()
	f.dropLocked(rel)
	f.mu.Unlock()
	return nil
}

// Mknod, Symlink and Link make what the store cannot hold: EPERM.
func (d *dirNode) Mknod(ctx context.Context, req *fuse.MknodRequest) (fusefs.Node, error) {
	return nil, errno(syscall.EPERM)
}

func (d *dirNode) Symlink(ctx context.Context, req *fuse.SymlinkRequest) (fusefs.Node, error) {
	return nil, errno(syscall.EPERM)
}

func (d *dirNode) Link(ctx context.Context, req *fuse.LinkRequest, old fusefs.Node) (fusefs.Node, error) {
	return nil, errno(syscall.EPERM)
}

// Fsync of a directory has nothing to do: every change is committed when
// its request returns.
func (d *dirNode) Fsync(ctx context.Context, req *fuse.FsyncRequest) error { return nil }

func (d *dirNode) Getxattr(ctx context.Context, req *fuse.GetxattrRequest, resp *fuse.GetxattrResponse) error {
	return getxattr(d.object(ctx), req, resp)
}

func (d *dirNode) Listxattr(ctx context.Context, req *fuse.ListxattrRequest, resp *fuse.ListxattrResponse) error {
	listxattr(d.object(ctx), resp)
	return nil
}

func (d *dirNode) Setxattr(ctx context.Context, req *fuse.SetxattrRequest) error {
	if req.Name == xattrEphemeral {
		return errno(syscall.EISDIR)
	}
	return errno(syscall.EOPNOTSUPP)
}
