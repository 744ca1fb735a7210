package wal

import (
	"fmt"
	"os"
	"path/filepath"
)

// repair cuts the log at cut: it keeps a copy of the damaged segment, cuts
// it after its last good record (or moves it aside when nothing in it is
// good) and moves every later segment aside. It returns the segments that
// remain and their scans.
func (w *WAL) repair(files []segFile, scans []segScan, cut *cutPoint) ([]segFile, []segScan, error) {
	now := w.opts.Now()
	w.log.Warn("wal: repairing the log", "damage", cut.err.Error())
	from := cut.i
	if cut.keep >= segHeaderSize {
		path := filepath.Join(w.dir, files[cut.i].name)
		cp := damagedName(path, now)
		if err := copyFile(path, cp); err != nil {
			return nil, nil, err
		}
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return nil, nil, fmt.Errorf("wal: open %s to repair it: %w", path, err)
		}
		err = zeroFrom(f, cut.keep, w.opts)
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("wal: close %s: %w", path, cerr)
		}
		if err != nil {
			return nil, nil, err
		}
		scans[cut.i].damage = nil
		w.log.Warn("wal: repair cut a segment after its last good record",
			"file", path, "offset", cut.keep, "next_index", scans[cut.i].next, "copy", cp)
		from = cut.i + 1
	}
	for _, sf := range files[from:] {
		path := filepath.Join(w.dir, sf.name)
		to := damagedName(path, now)
		if err := os.Rename(path, to); err != nil {
			return nil, nil, fmt.Errorf("wal: move %s aside to %s: %w", path, to, err)
		}
		w.log.Warn("wal: repair moved a segment aside", "file", path, "to", to)
	}
	if err := syncDir(w.dir, w.opts); err != nil {
		return nil, nil, err
	}
	return files[:from], scans[:from], nil
}
