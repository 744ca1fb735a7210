package wal

import "fmt"

// SimulateCrash is for tests only: it ends the WAL as a power loss would.
// Records appended but not synced vanish, bytes written to the active
// segment since its last successful fdatasync are zeroed (as if they never
// reached the disk), and the files and lock are released without a sync.
// Reopening the directory then shows exactly what a real crash at this
// moment would guarantee: everything Sync acknowledged, nothing else for
// certain. A chaos harness uses it to show that acknowledging before Sync
// loses data.
func (w *WAL) SimulateCrash() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	w.closed = true
	w.buf = nil
	var err error
	if w.off > w.synced {
		err = zeroFrom(w.f, w.synced, w.opts)
	}
	if cerr := w.f.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("wal: close %s: %w", w.path(w.active()), cerr)
	}
	if uerr := w.lock.Unlock(); uerr != nil && err == nil {
		err = uerr
	}
	return err
}
