package wal

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
)

// flushBytes is how much of a batch Append keeps in memory before writing it
// to the segment file ahead of Sync.
const flushBytes = 1 << 20

// WAL is an open write-ahead log: a directory of segment files. See the
// package documentation for the concurrency contract.
type WAL struct {
	dir  string
	opts Options
	log  *slog.Logger
	lock *DirLock

	mu sync.Mutex
	// Fields below are guarded by mu.
	segs    []*segment // retained segments, oldest first; the last is active
	f       *os.File   // the active segment, open for writing
	buf     []byte     // frames appended but not yet written to f
	off     int64      // offset in f where buf goes: the bytes written so far
	synced  int64      // offset in f up to which data is durable
	zeroed  int64      // offset in f up to which blocks hold written data or zeros (zeroAheadLocked)
	next    uint64     // index the next appended record gets
	gen     uint32     // batch generation of the frames being appended
	dirty   bool       // records appended since the last commit frame
	pending int        // records appended since the last sync, for SyncInfo
	written int64      // record bytes written over the WAL's life, for Faults
	err     error      // the first I/O failure; sticky
	closed  bool
}

// segment is a retained segment file.
type segment struct {
	name  string
	seq   uint64
	first uint64 // index of its first record
	end   int64  // offset just past its last durable frame
}

func (w *WAL) path(s *segment) string { return filepath.Join(w.dir, s.name) }

func (w *WAL) active() *segment { return w.segs[len(w.segs)-1] }

// Append adds records to the log, in order, giving them the indexes
// NextIndex(), NextIndex()+1, … Records are durable only once Sync returns.
// Either all of recs are appended or, on error, none of them (unless the
// WAL broke, after which nothing matters). It may write to the segment file,
// and fdatasync the segment it completes when it starts a new one.
func (w *WAL) Append(recs ...Record) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usableLocked(); err != nil {
		return err
	}
	for i, r := range recs {
		if r.Type == 0 || r.Type > MaxUserType {
			return fmt.Errorf("wal: record %d of %d: type %d is outside 1..%d", i, len(recs), r.Type, MaxUserType)
		}
		if len(r.Data) > w.opts.MaxRecord {
			return fmt.Errorf("wal: record %d of %d: %d bytes exceed MaxRecord (%d)", i, len(recs), len(r.Data), w.opts.MaxRecord)
		}
	}
	for _, r := range recs {
		if w.fullLocked(frameLen(int64(len(r.Data)))) {
			if err := w.rotateLocked(); err != nil {
				return w.breakLocked(err)
			}
		}
		w.buf = appendFrame(w.buf, r.Type, w.next, w.gen, r.Data)
		w.next++
		w.dirty = true
		w.pending++
		if len(w.buf) >= flushBytes {
			if err := w.writeLocked(); err != nil {
				return w.breakLocked(err)
			}
		}
	}
	return nil
}

// fullLocked reports whether a frame of n bytes (and the commit frame that
// will follow it) would take the active segment past SegmentSize. An empty
// segment is never full: an oversized record gets a segment of its own.
func (w *WAL) fullLocked(n int64) bool {
	used := w.off + int64(len(w.buf))
	return used > segHeaderSize && used+n+commitFrameSize > w.opts.SegmentSize
}

// Sync makes every appended record durable: it ends the batch with a commit
// frame, writes what is buffered and calls fdatasync once (group commit).
// With nothing appended since the last Sync it does nothing.
func (w *WAL) Sync() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usableLocked(); err != nil {
		return err
	}
	return w.syncLocked()
}

func (w *WAL) syncLocked() error {
	if !w.dirty {
		return nil
	}
	w.buf = appendFrame(w.buf, typeCommit, w.next-1, w.gen, nil)
	if err := w.writeLocked(); err != nil {
		return w.breakLocked(err)
	}
	w.zeroAheadLocked()
	if err := w.datasyncLocked(); err != nil {
		return w.breakLocked(err)
	}
	w.gen++
	w.dirty = false
	return nil
}

// writeLocked writes buf to the active segment.
func (w *WAL) writeLocked() error {
	if len(w.buf) == 0 {
		return nil
	}
	b, injected := w.buf, false
	if ft := w.opts.Faults; ft != nil && ft.FailAfterBytes > 0 && w.written+int64(len(b)) > ft.FailAfterBytes {
		b, injected = b[:max(ft.FailAfterBytes-w.written, 0)], true
	}
	at := w.off
	n, err := w.f.WriteAt(b, at)
	w.off += int64(n)
	w.written += int64(n)
	if err == nil && injected {
		err = ErrInjected
	}
	if err != nil {
		return fmt.Errorf("wal: write %d bytes to %s at offset %d: %w", len(w.buf), w.path(w.active()), at, err)
	}
	if cap(w.buf) > 4*flushBytes {
		w.buf = nil
	} else {
		w.buf = w.buf[:0]
	}
	return nil
}

// datasyncLocked makes the active segment durable up to off.
func (w *WAL) datasyncLocked() error {
	start := w.opts.Now()
	var err error
	if ft := w.opts.Faults; ft != nil && ft.FailSync != nil {
		err = ft.FailSync()
	}
	skip := w.opts.Faults != nil && w.opts.Faults.SkipDatasync
	if err == nil && !skip {
		err = fdatasync(w.f)
	}
	took := w.opts.Now().Sub(start)
	info := SyncInfo{Took: took, Bytes: w.off - w.synced, Records: w.pending, Err: err}
	if err == nil && skip {
		// Faults.SkipDatasync: acknowledged, but not durable.
		w.active().end = w.off
		w.pending = 0
	} else if err == nil {
		w.synced = w.off
		w.active().end = w.off
		w.pending = 0
	}
	if w.opts.OnSync != nil {
		w.opts.OnSync(info)
	}
	if err != nil {
		return fmt.Errorf("wal: fdatasync %s (up to offset %d): %w", w.path(w.active()), w.off, err)
	}
	if took >= SlowSync {
		w.log.Warn("wal: slow fdatasync", "file", w.path(w.active()), "took", took, "bytes", info.Bytes)
	}
	return nil
}

// rotateLocked seals the active segment (writing and syncing what it holds)
// and starts the next one. A batch in progress continues in the new
// segment under the same generation.
func (w *WAL) rotateLocked() error {
	if err := w.writeLocked(); err != nil {
		return err
	}
	if w.off > w.synced {
		if err := w.datasyncLocked(); err != nil {
			return err
		}
	}
	h := segHeader{seq: w.active().seq + 1, first: w.next, gen: w.gen}
	f, name, err := createSegment(w.dir, h, w.opts)
	if err != nil {
		return err
	}
	if err := w.f.Close(); err != nil {
		f.Close()
		return fmt.Errorf("wal: close %s: %w", w.path(w.active()), err)
	}
	w.f = f
	w.segs = append(w.segs, &segment{name: name, seq: h.seq, first: h.first, end: segHeaderSize})
	w.off, w.synced, w.zeroed = segHeaderSize, segHeaderSize, segHeaderSize
	return nil
}

// zeroAhead is how far past the write offset the active segment is kept
// written with zeros, and the size of each zero write.
const zeroAhead = 1 << 20

// zeroAheadBuf is what those writes write.
var zeroAheadBuf [zeroAhead]byte

// zeroAheadLocked keeps the blocks just past the write offset written with
// zeros, so that the fdatasync of the records that go there next has only
// data blocks to write. A preallocated block that was never written is an
// unwritten extent: the first write to it changes the file's block map,
// and the fdatasync that makes that write durable must commit the file
// system's journal as well (measured here: about a third more CPU and
// latency per fdatasync of a few KiB, more under load; docs/storage.md
// §2.2). Writing zeros there first moves that cost to one fdatasync per
// zeroAhead bytes of log. The zeros are what a segment holds past its
// last frame anyway, so a crash at any point leaves a valid segment. A
// failed zero write is not an error: the records are written all the same,
// only slower, and zeroing stops for this segment.
func (w *WAL) zeroAheadLocked() {
	if w.opts.NoPreallocate || w.zeroed >= w.off+zeroAhead/2 || w.zeroed >= w.opts.SegmentSize {
		return
	}
	from := max(w.zeroed, w.off)
	n := min(int64(zeroAhead), w.opts.SegmentSize-from)
	if n <= 0 {
		return
	}
	if _, err := w.f.WriteAt(zeroAheadBuf[:n], from); err != nil {
		w.log.Warn("wal: writing zeros ahead of the log failed; fdatasync may be slower", "file", w.path(w.active()), "offset", from, "err", err)
		w.zeroed = w.opts.SegmentSize
		return
	}
	w.zeroed = from + n
}

// Cut seals the active segment and starts a new one, so that the next
// appended record is the first of its segment. Records appended but not yet
// synced are made durable first. With an empty active segment it does
// nothing.
func (w *WAL) Cut() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usableLocked(); err != nil {
		return err
	}
	if w.off+int64(len(w.buf)) == segHeaderSize {
		return nil
	}
	if err := w.syncLocked(); err != nil {
		return err
	}
	if err := w.rotateLocked(); err != nil {
		return w.breakLocked(err)
	}
	return nil
}

// NextIndex returns the index the next appended record will get.
func (w *WAL) NextIndex() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.next
}

// FirstIndex returns the index of the first record the WAL still holds (or
// would hold: it equals NextIndex when the WAL has no records).
func (w *WAL) FirstIndex() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.segs[0].first
}

// Dir returns the WAL's directory.
func (w *WAL) Dir() string { return w.dir }

// usableLocked returns the error every call must fail with, if any.
func (w *WAL) usableLocked() error {
	if w.closed {
		return ErrClosed
	}
	if w.err != nil {
		return &brokenError{cause: w.err}
	}
	return nil
}

// breakLocked records the first I/O failure; from then on every call fails.
func (w *WAL) breakLocked(err error) error {
	if w.err == nil {
		w.err = err
		w.log.Error("wal: broken; every later write fails", "err", err)
	}
	return &brokenError{cause: err}
}

// Close syncs what was appended (unless the WAL is broken), closes the
// active segment and releases the directory lock. Later calls fail with
// ErrClosed.
func (w *WAL) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	var err error
	if w.err == nil {
		err = w.syncLocked()
	} else {
		err = &brokenError{cause: w.err}
	}
	w.closed = true
	if cerr := w.f.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("wal: close %s: %w", w.path(w.active()), cerr)
	}
	if uerr := w.lock.Unlock(); uerr != nil && err == nil {
		err = uerr
	}
	return err
}
