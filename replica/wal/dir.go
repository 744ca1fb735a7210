package wal

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// syncDir fsyncs a directory, making the creation, renaming and removal of
// its entries durable.
func syncDir(dir string, opts Options) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("wal: open directory %s to fsync it: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("wal: fsync directory %s: %w", dir, err)
	}
	if opts.dirSynced != nil {
		opts.dirSynced(dir)
	}
	return nil
}

// mkdirDurable creates dir (and parents) if missing, and makes its entry
// durable in its parent.
func mkdirDurable(dir string, opts Options) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("wal: create directory %s: %w", dir, err)
	}
	return syncDir(filepath.Dir(filepath.Clean(dir)), opts)
}

// damagedName returns a free name for a damaged copy of path:
// <path>.damaged-<unix seconds>, with a counter if that exists already.
func damagedName(path string, now time.Time) string {
	base := fmt.Sprintf("%s.damaged-%d", path, now.Unix())
	name := base
	for i := 2; ; i++ {
		if _, err := os.Lstat(name); os.IsNotExist(err) {
			return name
		}
		name = fmt.Sprintf("%s-%d", base, i)
	}
}

// copyFile copies src to a new file dst and fsyncs it.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("wal: open %s to copy it: %w", src, err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("wal: create copy %s: %w", dst, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("wal: copy %s to %s: %w", src, dst, err)
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return fmt.Errorf("wal: fsync %s: %w", dst, err)
	}
	return out.Close()
}

// zeroFrom discards the bytes of f from off on: the file is cut there and,
// unless preallocation is off, re-extended to its old size with zeros. The
// result is fsynced.
func zeroFrom(f *os.File, off int64, opts Options) error {
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("wal: stat %s: %w", f.Name(), err)
	}
	if err := f.Truncate(off); err != nil {
		return fmt.Errorf("wal: truncate %s at offset %d: %w", f.Name(), off, err)
	}
	if !opts.NoPreallocate && st.Size() > off {
		if err := preallocate(f, off, st.Size()-off); err != nil {
			return fmt.Errorf("wal: preallocate %s from offset %d: %w", f.Name(), off, err)
		}
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("wal: fsync %s after truncating at offset %d: %w", f.Name(), off, err)
	}
	return nil
}
