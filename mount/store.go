package mount

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path"
	"time"

	"github.com/doozerfs/doozerfs/fs"
)

// Store is what a mount needs from the rest of doozerfs: a local, applied
// copy of the namespace to read from, and a way to commit changes. Two
// implementations exist: the in-process replica (serve --mount) and the
// Mirror of this package, which follows a remote cluster over wire.Client
// (mount --addr).
//
// Every method may be called from many goroutines at once.
type Store interface {
	// Tree returns the local applied state. The mount only reads it: View,
	// ViewAt and Events. It never crosses the network.
	Tree() *fs.Tree

	// Changed returns the revision applied to Tree now and a channel that
	// is closed at the next apply. The mount follows the store with it,
	// without polling.
	Changed() (rev int64, c <-chan struct{})

	// Txn commits ops as one transaction (fs.MutTxn) and returns its new
	// revision. It returns only after Tree has applied that revision, so
	// a read on this host right after a write sees it. It honours ctx: on
	// cancellation or deadline it returns ctx's error, and the outcome is
	// unknown. Errors are *fs.Error where the store knows the kind.
	Txn(ctx context.Context, ops []fs.Op) (rev int64, err error)

	// Writable returns nil when a write could succeed now, and an error of
	// kind READONLY when the store knows it cannot (no quorum, no leader,
	// read-only credentials). It must not block.
	Writable() error

	// SessionLease returns the lease of this host's session, kept alive by
	// the daemon for as long as it lives. Files bound to it (setfattr
	// user.doozerfs.ephemeral) vanish about one TTL after the host dies.
	SessionLease(ctx context.Context) (id int64, err error)
}

// Options configures a mount. Start from DefaultOptions; nothing may change
// after Mount.
type Options struct {
	// Root is the store directory shown at the mount's root ("/" or ""
	// for the whole tree). A missing Root shows as an empty directory.
	Root string

	// ReadOnly refuses every change with EROFS. The mount still follows
	// the store and fires inotify for changes made elsewhere.
	ReadOnly bool

	// UID and GID own every file and directory. Negative means the user
	// and group of the mounting process.
	UID, GID int

	// FileMode and DirMode are the permission bits of files and
	// directories (0 means 0644 and 0755). A ReadOnly mount drops the
	// write bits.
	FileMode, DirMode os.FileMode

	// AllowOther lets users other than the mounting one use the mount
	// (needs user_allow_other in /etc/fuse.conf unless mounted by root).
	AllowOther bool

	// MaxBody is the largest file body in bytes (0 means 1 MiB, the
	// store's default). A write past it fails with EFBIG.
	MaxBody int

	// Timeout bounds every store call made for a request, in addition to
	// the request being interrupted (0 means 15 s). A commit that runs
	// out of time fails with ETIMEDOUT; its outcome is unknown.
	Timeout time.Duration

	// CacheTTL is how long the kernel may keep entries and attributes
	// before it asks again (0 means one hour). The mount invalidates them
	// as soon as a change is applied, so this only bounds the damage of
	// a missed invalidation.
	CacheTTL time.Duration

	// MaxRenameEntries is the largest directory subtree (files and
	// directories) that rename moves in one transaction (0 means 10,000).
	// A larger one fails with EXDEV, so mv(1) falls back to copying.
	MaxRenameEntries int

	// HideGrace is how long a file renamed to a local-only name (an
	// editor's backup, see Local) stays in the store, hidden on this
	// host, waiting to be recreated under its name (0 means 2 s). If it
	// is not recreated in time, the rename's delete is committed then.
	HideGrace time.Duration

	// Local reports whether a new file of this name, created with or
	// without O_EXCL, lives only on this host and is never replicated:
	// editors' swap, backup and probe files and sed's temporary files.
	// Nil means DefaultLocal.
	Local func(name string, exclusive bool) bool

	// FSName is the source shown in /proc/mounts (empty means
	// "doozerfs").
	FSName string

	// Logger receives one line per event an operator cares about (nil
	// means no logging).
	Logger *slog.Logger

	// Observe, if not nil, is called once per FUSE request answered, with
	// the op's name ("lookup", "read", "write", ...), the error it was
	// answered with (nil: success) and the time it took. It is for metrics
	// and must be quick.
	Observe func(op string, err error, d time.Duration)
}

// DefaultOptions returns the options of a plain mount of the whole tree,
// owned by the mounting user.
func DefaultOptions() Options {
	return Options{
		Root:             "/",
		UID:              -1,
		GID:              -1,
		FileMode:         0o644,
		DirMode:          0o755,
		MaxBody:          1 << 20,
		Timeout:          15 * time.Second,
		CacheTTL:         time.Hour,
		MaxRenameEntries: 10000,
		HideGrace:        2 * time.Second,
		FSName:           "doozerfs",
	}
}

// withDefaults fills the zero fields of o and checks the rest.
func (o Options) withDefaults() (Options, error) {
	d := DefaultOptions()
	if o.Root == "" {
		o.Root = "/"
	}
	if o.Root != "/" {
		o.Root = path.Clean(o.Root)
	}
	if err := fs.ValidPath(o.Root); err != nil {
		return o, fmt.Errorf("mount: Root %q: %w", o.Root, err)
	}
	if o.UID < 0 {
		o.UID = os.Getuid()
	}
	if o.GID < 0 {
		o.GID = os.Getgid()
	}
	if o.FileMode == 0 {
		o.FileMode = d.FileMode
	}
	if o.DirMode == 0 {
		o.DirMode = d.DirMode
	}
	if o.FileMode&^os.ModePerm != 0 || o.DirMode&^os.ModePerm != 0 {
		return o, fmt.Errorf("mount: FileMode %v and DirMode %v must be permission bits only", o.FileMode, o.DirMode)
	}
	if o.ReadOnly {
		o.FileMode &^= 0o222
		o.DirMode &^= 0o222
	}
	if o.MaxBody <= 0 {
		o.MaxBody = d.MaxBody
	}
	if o.Timeout <= 0 {
		o.Timeout = d.Timeout
	}
	if o.CacheTTL <= 0 {
		o.CacheTTL = d.CacheTTL
	}
	if o.MaxRenameEntries <= 0 {
		o.MaxRenameEntries = d.MaxRenameEntries
	}
	if o.HideGrace <= 0 {
		o.HideGrace = d.HideGrace
	}
	if o.Local == nil {
		o.Local = DefaultLocal
	}
	if o.FSName == "" {
		o.FSName = d.FSName
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}
