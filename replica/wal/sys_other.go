//go:build !linux

package wal

import "os"

// fdatasync falls back to fsync where fdatasync is not available.
func fdatasync(f *os.File) error { return f.Sync() }

// preallocate does nothing where fallocate is not available; segments then
// grow as they are written.
func preallocate(f *os.File, off, n int64) error { return nil }
