package wal

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// The layout of a data directory (--data DIR).
const (
	WALDirName  = "wal"  // DIR/wal: the WAL's segments (and its own LOCK)
	SnapDirName = "snap" // DIR/snap: snapshot files
)

// DataDir is a replica's locked data directory: its WAL and its snapshots.
type DataDir struct {
	Path      string
	WAL       *WAL
	Snapshots *SnapshotStore

	lock *DirLock
}

// OpenDataDir locks dir (DIR/LOCK; a second opener gets ErrLocked, naming
// the directory), then opens its snapshot store and its WAL with opts, with
// the recovery rules of Open.
func OpenDataDir(dir string, opts Options) (*DataDir, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := mkdirDurable(dir, opts); err != nil {
		return nil, err
	}
	lock, err := LockDir(dir)
	if err != nil {
		return nil, err
	}
	snaps, err := OpenSnapshots(filepath.Join(dir, SnapDirName), opts)
	if err != nil {
		lock.Unlock()
		return nil, err
	}
	w, err := Open(filepath.Join(dir, WALDirName), opts)
	if err != nil {
		lock.Unlock()
		return nil, err
	}
	return &DataDir{Path: dir, WAL: w, Snapshots: snaps, lock: lock}, nil
}

// Close closes the WAL (syncing it) and releases the directory lock.
func (d *DataDir) Close() error {
	err := d.WAL.Close()
	if uerr := d.lock.Unlock(); err == nil {
		err = uerr
	}
	return err
}

// ImportSnapshot seeds a new data directory from a snapshot file read from
// r (`doozerfs snapshot restore FILE --data DIR`). It locks dir, refuses one
// that already holds a WAL segment or a snapshot, and stores the snapshot,
// checked while streaming, as the directory's only state. The replica that
// starts on it then begins from that snapshot with an empty WAL.
func ImportSnapshot(dir string, r io.Reader, opts Options) (Snapshot, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return Snapshot{}, err
	}
	if err := mkdirDurable(dir, opts); err != nil {
		return Snapshot{}, err
	}
	lock, err := LockDir(dir)
	if err != nil {
		return Snapshot{}, err
	}
	defer lock.Unlock()
	walDir := filepath.Join(dir, WALDirName)
	segs, _, err := listSegments(walDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return Snapshot{}, err
	}
	if len(segs) > 0 {
		return Snapshot{}, fmt.Errorf("wal: cannot restore into %s: it already holds a WAL (%s); restore seeds a new data directory", dir, filepath.Join(walDir, segs[0].name))
	}
	store, err := OpenSnapshots(filepath.Join(dir, SnapDirName), opts)
	if err != nil {
		return Snapshot{}, err
	}
	if list, err := store.List(); err != nil {
		return Snapshot{}, err
	} else if len(list) > 0 {
		return Snapshot{}, fmt.Errorf("wal: cannot restore into %s: it already holds snapshot %s; restore seeds a new data directory", dir, list[0].Path)
	}
	return store.Import(r)
}
