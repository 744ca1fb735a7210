package wal

import (
	"errors"
	"fmt"
	"os"
)

// TruncateBefore deletes every segment whose records all have indexes below
// index, oldest first, then fsyncs the directory. The active segment is
// never deleted, so records at or above index always remain, and so may
// some below it (those sharing a segment with it). A crash part way leaves a
// shorter but contiguous log. It returns how many segments it deleted.
//
// The caller must have made whatever replaces those records durable first:
// typically a snapshot (SnapshotStore.Save) and a synced checkpoint record.
func (w *WAL) TruncateBefore(index uint64) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usableLocked(); err != nil {
		return 0, err
	}
	n := 0
	for len(w.segs) > 1 && w.segs[1].first <= index {
		path := w.path(w.segs[0])
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return n, w.breakLocked(fmt.Errorf("wal: remove segment %s: %w", path, err))
		}
		w.segs = w.segs[1:]
		n++
	}
	if n == 0 {
		return 0, nil
	}
	if err := syncDir(w.dir, w.opts); err != nil {
		return n, w.breakLocked(err)
	}
	return n, nil
}
