package mount

import (
	"context"
	"hash/fnv"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"bazil.org/fuse"
	fusefs "bazil.org/fuse/fs"

	"github.com/doozerfs/doozerfs/fs"
)

// fsys is one mount: the bazil FS, the nodes the kernel knows, the local
// overlay, and the bookkeeping the follower and the handlers share.
type fsys struct {
	store Store
	opts  Options
	dir   string // the mountpoint
	srv   *server
	root  *dirNode
	ctl   *ctlDir

	// replayTid is the thread id of the follower, whose requests are
	// replays (0 until it runs). inv is the store revision up to which
	// every kernel invalidation has been sent.
	replayTid atomic.Int32
	inv       atomic.Int64
	open      atomic.Int64 // open file handles (not replays)

	commits commitTracker
	subs    subscribers

	// mu guards the fields below and every nodeBase's path, gone and
	// forgotten fields. It is never held across a store call, a syscall
	// or a kernel notification.
	mu       sync.Mutex
	nodes    map[string]node          // mount path → the node the kernel may hold for it
	inodes   map[uint64]*nodeBase     // inode numbers in use
	overlay  map[string]*entry        // mount path → local-only, pending or hidden file
	override map[string]fs.NodeType   // replays: what lookups from the replay thread see
	closing  bool                     // Close has begun
	timers   map[*time.Timer]struct{} // hide timers to stop at Close
}

// node is a fileNode or a dirNode.
type node interface {
	fusefs.Node
	base() *nodeBase
}

// nodeBase is what every node has. The kernel refers to a node by its
// NodeID for as long as it caches it; the node's path follows renames made
// through this mount.
type nodeBase struct {
	fsys *fsys
	ino  uint64
	dir  bool

	// Guarded by fsys.mu.
	path      string // mount path, such as "/" or "/a/b"
	gone      bool   // deleted or replaced: no longer in fsys.nodes
	forgotten bool   // the kernel sent FORGET
}

func (b *nodeBase) base() *nodeBase { return b }

// Path returns the node's current mount path.
func (b *nodeBase) Path() string {
	b.fsys.mu.Lock()
	defer b.fsys.mu.Unlock()
	return b.path
}

// Forget is called by bazil when the kernel drops the node. The node stays
// registered (a lookup racing with the FORGET may hand it out again) until
// its path is deleted or a later lookup replaces it.
func (b *nodeBase) Forget() {
	f := b.fsys
	f.mu.Lock()
	defer f.mu.Unlock()
	b.forgotten = true
	if b.gone && f.inodes[b.ino] == b {
		delete(f.inodes, b.ino)
	}
}

// revive marks b as held by the kernel again: a reply gave it out after
// a FORGET (the two raced), and it is still the registered node.
func (f *fsys) revive(b *nodeBase) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if b.forgotten && !b.gone {
		b.forgotten = false
	}
}

func newFsys(store Store, opts Options, dir string) *fsys {
	f := &fsys{
		store:    store,
		opts:     opts,
		dir:      dir,
		nodes:    make(map[string]node),
		inodes:   make(map[uint64]*nodeBase),
		overlay:  make(map[string]*entry),
		override: make(map[string]fs.NodeType),
		timers:   make(map[*time.Timer]struct{}),
	}
	f.commits.init()
	f.subs.init()
	f.root = &dirNode{nodeBase: nodeBase{fsys: f, ino: 1, dir: true, path: "/"}}
	f.nodes["/"] = f.root
	f.inodes[1] = &f.root.nodeBase
	f.ctl = newCtlDir(f)
	return f
}

var _ fusefs.FS = (*fsys)(nil)
var _ fusefs.FSStatfser = (*fsys)(nil)

// Root returns the root directory.
func (f *fsys) Root() (fusefs.Node, error) { return f.root, nil }

// Statfs reports a file system with room for one more body per free block,
// so that df and tools that check free space before writing are content.
func (f *fsys) Statfs(ctx context.Context, req *fuse.StatfsRequest, resp *fuse.StatfsResponse) error {
	resp.Bsize = 4096
	resp.Frsize = 4096
	resp.Blocks = 1 << 30
	resp.Bfree = 1 << 29
	resp.Bavail = 1 << 29
	resp.Files = 1 << 30
	resp.Ffree = 1 << 29
	resp.Namelen = fs.MaxComponent
	return nil
}

// storePath maps a mount path to the store's.
func (f *fsys) storePath(rel string) string {
	switch {
	case f.opts.Root == "/":
		return rel
	case rel == "/":
		return f.opts.Root
	}
	return f.opts.Root + rel
}

// relPath maps a store path to the mount's, if it is under Root.
func (f *fsys) relPath(p string) (string, bool) {
	if f.opts.Root == "/" {
		return p, true
	}
	if p == f.opts.Root {
		return "/", true
	}
	if strings.HasPrefix(p, f.opts.Root+"/") {
		return p[len(f.opts.Root):], true
	}
	return "", false
}

// child returns the mount path of name inside the directory dir.
func child(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// parent splits a mount path other than "/" into its directory and name.
func parent(rel string) (dir, name string) {
	i := strings.LastIndexByte(rel, '/')
	if i == 0 {
		return "/", rel[1:]
	}
	return rel[:i], rel[i+1:]
}

// under reports whether rel is p or below it.
func under(rel, p string) bool {
	return rel == p || p == "/" || strings.HasPrefix(rel, p+"/")
}

// view returns the store's current revision.
func (f *fsys) view() *fs.View { return f.store.Tree().View() }

// isReplay reports whether a request comes from this mount's follower.
func (f *fsys) isReplay(h *fuse.Header) bool {
	tid := f.replayTid.Load()
	return tid != 0 && int32(h.Pid) == tid
}

// writable returns EROFS when this mount cannot change anything now.
func (f *fsys) writable() error {
	if f.opts.ReadOnly {
		return errno(syscall.EROFS)
	}
	if err := f.store.Writable(); err != nil {
		if fs.KindOf(err) == fs.KindReadOnly {
			return &errnoError{errno: syscall.EROFS, err: err}
		}
		return toErrno(err)
	}
	return nil
}

// inoFor returns a free inode number for the store path sp: a hash of the
// path, so the same path keeps its number across lookups, mounts and
// hosts, perturbed only while another live node holds it.
func (f *fsys) inoForLocked(sp string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(sp))
	for k := 0; ; k++ {
		ino := h.Sum64()
		if ino > 1 && f.inodes[ino] == nil {
			return ino
		}
		h.Write([]byte("#" + strconv.Itoa(k)))
	}
}

// nodeLocked returns the node for the mount path rel of type typ, making a
// new one if the registered one is of another type or was forgotten by
// the kernel.
func (f *fsys) nodeLocked(rel string, typ fs.NodeType) node {
	dir := typ == fs.TypeDir
	old, ok := f.nodes[rel]
	if ok {
		b := old.base()
		if b.dir == dir && !b.forgotten {
			return old
		}
	}
	var ino uint64
	if ok && old.base().forgotten && old.base().dir == dir {
		ino = old.base().ino // the kernel no longer knows it: reuse its number
	} else {
		if ok {
			f.detachLocked(old.base())
		}
		ino = f.inoForLocked(f.storePath(rel))
	}
	if ok {
		old.base().gone = true
	}
	b := nodeBase{fsys: f, ino: ino, dir: dir, path: rel}
	var n node
	if dir {
		d := &dirNode{nodeBase: b}
		f.inodes[ino] = &d.nodeBase
		n = d
	} else {
		fn := newFileNode(b)
		f.inodes[ino] = &fn.nodeBase
		n = fn
	}
	f.nodes[rel] = n
	return n
}

// detachLocked takes b out of the registry: its path was deleted or
// replaced. Its inode number stays taken until the kernel forgets it.
func (f *fsys) detachLocked(b *nodeBase) {
	b.gone = true
	if f.nodes[b.path] != nil && f.nodes[b.path].base() == b {
		delete(f.nodes, b.path)
	}
	if b.forgotten && f.inodes[b.ino] == b {
		delete(f.inodes, b.ino)
	}
}

// dropLocked detaches the node at rel, which was deleted. (A directory is
// deleted only when empty, so nothing below it is registered for long.)
func (f *fsys) dropLocked(rel string) {
	if n, ok := f.nodes[rel]; ok && rel != "/" {
		f.detachLocked(n.base())
	}
}

// moveLocked records that the kernel moved the entry from to the path to
// (a rename through this mount, or a replayed one): the nodes at and below
// from now live at and below to, and whatever was at to is gone.
func (f *fsys) moveLocked(from, to string) {
	if from == to {
		return
	}
	if old, ok := f.nodes[to]; ok {
		f.detachLocked(old.base())
	}
	var moved []node
	prefix := from + "/"
	for p, n := range f.nodes {
		if p == from || strings.HasPrefix(p, prefix) {
			moved = append(moved, n)
		}
	}
	for _, n := range moved {
		delete(f.nodes, n.base().path)
	}
	for _, n := range moved {
		b := n.base()
		b.path = to + b.path[len(from):]
		if old, ok := f.nodes[b.path]; ok {
			f.detachLocked(old.base())
		}
		f.nodes[b.path] = n
	}
	f.overlayMoveLocked(from, to)
}

// registered returns the node the kernel may hold for rel, if any.
func (f *fsys) registered(rel string) node {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.nodes[rel]
}

// An object is what a mount path shows at one moment: a store file or
// directory, or an overlay file.
type object struct {
	typ   fs.NodeType // fs.TypeNone: nothing there
	st    fs.Stat     // store stat, or one made up for an overlay file
	body  []byte      // files: the body (shared, never modified)
	ent   *entry      // the overlay entry, for local and pending files
	local bool        // a local-only file
}

// resolveLocked returns what rel shows in the store view v, with the
// overlay laid over it.
func (f *fsys) resolveLocked(v *fs.View, rel string) object {
	if e := f.overlayLocked(rel); e != nil {
		switch e.kind {
		case entHidden:
			return object{}
		case entLocal, entPending:
			return object{typ: fs.TypeFile, ent: e, local: e.kind == entLocal, body: e.body,
				st: fs.Stat{Type: fs.TypeFile, Size: int64(len(e.body)), Time: e.time.UnixNano()}}
		}
	}
	sp := f.storePath(rel)
	st, err := v.Stat(sp)
	if err != nil {
		if rel == "/" {
			return object{typ: fs.TypeDir, st: fs.Stat{Type: fs.TypeDir}}
		}
		return object{}
	}
	o := object{typ: st.Type, st: st}
	if st.Type == fs.TypeFile {
		o.body, _, _ = v.Get(sp)
	}
	return o
}

// resolve is resolveLocked on the current view.
func (f *fsys) resolve(rel string) object {
	v := f.view()
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.resolveLocked(v, rel)
}

// attrFor fills a with what o shows, for inode ino.
func (f *fsys) attrFor(o object, ino uint64, a *fuse.Attr) {
	a.Inode = ino
	a.Uid = uint32(f.opts.UID)
	a.Gid = uint32(f.opts.GID)
	a.BlockSize = 4096
	a.Valid = f.opts.CacheTTL
	t := time.Unix(0, o.st.Time)
	a.Atime, a.Mtime, a.Ctime = t, t, t
	if o.typ == fs.TypeDir {
		a.Mode = os.ModeDir | f.opts.DirMode
		a.Nlink = 2
		a.Size = uint64(o.st.Children)
		return
	}
	a.Mode = f.opts.FileMode
	a.Nlink = 1
	a.Size = uint64(len(o.body))
	a.Blocks = (a.Size + 511) / 512
}
