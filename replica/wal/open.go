package wal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Open opens the WAL in dir, creating the directory and a first segment if
// there are none, and locks it (a lock file, LOCK, held until Close).
//
// Open reads every segment and checks every record. A torn last write (the
// damaged bytes end the log and belong to its last batch, which a crash
// caught before its fdatasync returned) is cut off, with a log line. Any
// other damage — in an earlier segment, a missing segment, or in the last
// segment with an intact record of a later batch after it — fails Open with
// a *CorruptError naming the file and offset, unless Options.Repair is set:
// then a copy of the damaged file is kept, the log is cut after its last
// good record, later segments are moved aside, and Open carries on. See
// docs/storage.md for the rules.
func Open(dir string, opts Options) (*WAL, error) {
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
	w := &WAL{dir: dir, opts: opts, log: opts.Logger, lock: lock}
	if err := w.load(); err != nil {
		if w.f != nil {
			w.f.Close()
		}
		lock.Unlock()
		return nil, err
	}
	return w, nil
}

// cutPoint is where Open found damage that is not a torn tail.
type cutPoint struct {
	i    int   // position of the damaged segment in the file list
	keep int64 // bytes of it that are good; below segHeaderSize, none are
	err  *CorruptError
}

func (w *WAL) load() error {
	files, tmps, err := listSegments(w.dir)
	if err != nil {
		return err
	}
	if err := w.removeTemps(tmps); err != nil {
		return err
	}
	if len(files) == 0 {
		return w.startFresh(segHeader{seq: 1, first: 1, gen: 1})
	}
	scans, cut, err := w.scanAll(files)
	if err != nil {
		return err
	}
	if cut != nil {
		if !w.opts.Repair {
			return fmt.Errorf("%w (a repair (--repair) keeps a copy of the file and cuts the log before the damage)", cut.err)
		}
		first := files[0]
		if files, scans, err = w.repair(files, scans, cut); err != nil {
			return err
		}
		if len(files) == 0 {
			return w.startFresh(segHeader{seq: first.seq, first: first.first, gen: 1})
		}
	}
	return w.openActive(files, scans)
}

// scanAll scans the segments in order. It stops at the first damage that is
// not a torn tail and returns the scans of the segments before it.
func (w *WAL) scanAll(files []segFile) ([]segScan, *cutPoint, error) {
	var scans []segScan
	exp := segExpect{}
	for i, sf := range files {
		path := filepath.Join(w.dir, sf.name)
		if i > 0 && sf.seq != files[i-1].seq+1 {
			return scans, &cutPoint{i: i, err: &CorruptError{File: path, Offset: 0, Reason: fmt.Sprintf(
				"segments %d to %d, which come before this one, are missing", files[i-1].seq+1, sf.seq-1)}}, nil
		}
		exp.seq, exp.first = sf.seq, sf.first
		sc, size, err := w.scanFile(path, exp)
		if err != nil {
			return nil, nil, err
		}
		scans = append(scans, sc)
		if sc.damage == nil {
			exp = segExpect{follows: true, next: sc.next, gen: sc.gen}
			continue
		}
		reason := sc.damage.reason
		if i < len(files)-1 {
			reason += "; later segments exist, so this segment was complete and synced: not a torn write"
		} else if sc.headerOK && !sc.damage.definite {
			at, v, err := w.laterBatchIn(path, size, sc)
			if err != nil {
				return nil, nil, err
			}
			switch v {
			case noLaterBatch:
				continue // a torn tail: openActive cuts it
			case laterBatchFound:
				reason += fmt.Sprintf("; an intact record of a later batch follows at offset %d, so the damaged batch had been synced: not a torn write", at)
			default:
				reason += fmt.Sprintf("; too many record-like bytes after it (checked up to offset %d) to rule out a later, synced batch", at)
			}
		}
		keep := int64(0)
		if sc.headerOK {
			keep = sc.end
		}
		return scans, &cutPoint{i: i, keep: keep, err: &CorruptError{File: path, Offset: sc.damage.off, Reason: reason}}, nil
	}
	return scans, nil, nil
}

func (w *WAL) scanFile(path string, exp segExpect) (segScan, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return segScan{}, 0, fmt.Errorf("wal: open %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return segScan{}, 0, fmt.Errorf("wal: stat %s: %w", path, err)
	}
	sc, err := scanSegment(f, st.Size(), exp, w.opts.MaxRecord)
	if err != nil {
		return segScan{}, 0, fmt.Errorf("wal: scan %s: %w", path, err)
	}
	return sc, st.Size(), nil
}

func (w *WAL) laterBatchIn(path string, size int64, sc segScan) (int64, verdict, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, noLaterBatch, fmt.Errorf("wal: open %s: %w", path, err)
	}
	defer f.Close()
	at, v, err := laterBatch(f, size, sc.end, sc.gen, sc.next, w.opts.MaxRecord)
	if err != nil {
		return 0, noLaterBatch, fmt.Errorf("wal: search %s after offset %d: %w", path, sc.end, err)
	}
	return at, v, nil
}

// openActive makes the last segment the active one, cutting a torn tail
// off it and sealing a batch left without its commit frame.
func (w *WAL) openActive(files []segFile, scans []segScan) error {
	for i, sf := range files {
		w.segs = append(w.segs, &segment{name: sf.name, seq: sf.seq, first: sf.first, end: scans[i].end})
	}
	last := scans[len(scans)-1]
	path := w.path(w.active())
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("wal: open %s: %w", path, err)
	}
	w.f = f
	if last.damage != nil {
		if err := zeroFrom(f, last.end, w.opts); err != nil {
			return err
		}
		w.log.Warn("wal: cut a torn write off the end of the log",
			"file", path, "offset", last.end, "damage_at", last.damage.off, "damage", last.damage.reason)
	}
	w.off, w.synced, w.zeroed = last.end, last.end, last.end
	w.next, w.gen = last.next, last.gen
	if last.open {
		w.dirty = true
		return w.syncLocked()
	}
	return nil
}

func (w *WAL) startFresh(h segHeader) error {
	f, name, err := createSegment(w.dir, h, w.opts)
	if err != nil {
		return err
	}
	w.f = f
	w.segs = []*segment{{name: name, seq: h.seq, first: h.first, end: segHeaderSize}}
	w.off, w.synced, w.zeroed = segHeaderSize, segHeaderSize, segHeaderSize
	w.next, w.gen = h.first, h.gen
	return nil
}

// removeTemps deletes segment files a crash left half-created.
func (w *WAL) removeTemps(tmps []string) error {
	for _, name := range tmps {
		path := filepath.Join(w.dir, name)
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("wal: remove leftover %s: %w", path, err)
		}
		w.log.Info("wal: removed a segment file left half-created by a crash", "file", path)
	}
	if len(tmps) == 0 {
		return nil
	}
	return syncDir(w.dir, w.opts)
}
