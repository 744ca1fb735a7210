//go:build linux

package wal

import (
	"encoding/binary"
	"errors"
	"os"
	"syscall"
	"testing"
	"unsafe"
)

// extent is one extent of a file, as FIEMAP reports it.
type extent struct {
	logical, length int64
	unwritten       bool
}

// fileExtents returns f's extents (FS_IOC_FIEMAP, after a sync of f's
// dirty pages so that delayed allocation has happened).
func fileExtents(t *testing.T, path string) []extent {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const (
		fsIocFiemap     = 0xC020660B // _IOWR('f', 11, struct fiemap)
		fiemapFlagSync  = 0x1
		extentUnwritten = 0x800
		headerSize      = 32
		extentSize      = 56
		maxExtents      = 512
	)
	buf := make([]byte, headerSize+maxExtents*extentSize)
	binary.NativeEndian.PutUint64(buf[0:], 0)               // fm_start
	binary.NativeEndian.PutUint64(buf[8:], ^uint64(0))      // fm_length
	binary.NativeEndian.PutUint32(buf[16:], fiemapFlagSync) // fm_flags
	binary.NativeEndian.PutUint32(buf[24:], maxExtents)     // fm_extent_count
	_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), fsIocFiemap, uintptr(unsafe.Pointer(&buf[0])))
	if errno != 0 {
		if (errors.Is(errno, syscall.EOPNOTSUPP) || errors.Is(errno, syscall.ENOTTY)) && os.Getenv("CI") != "true" {
			t.Skipf("FIEMAP is not supported on this file system: %v", errno)
		}
		t.Fatalf("FIEMAP %s: %v", path, errno)
	}
	n := int(binary.NativeEndian.Uint32(buf[20:])) // fm_mapped_extents
	out := make([]extent, 0, n)
	for i := range n {
		e := buf[headerSize+i*extentSize:]
		out = append(out, extent{
			logical:   int64(binary.NativeEndian.Uint64(e[0:])),
			length:    int64(binary.NativeEndian.Uint64(e[16:])),
			unwritten: binary.NativeEndian.Uint32(e[40:])&extentUnwritten != 0,
		})
	}
	return out
}

// unwrittenBefore reports the first byte below end that lies in an
// unwritten extent, or -1.
func unwrittenBefore(exts []extent, end int64) int64 {
	for _, e := range exts {
		if e.unwritten && e.logical < end {
			return e.logical
		}
	}
	return -1
}

// TestZeroAheadLeavesNoUnwrittenExtentAtTheTail: after a Sync, the blocks
// the next records go to are written (zeros), not unwritten extents of the
// preallocation, so that their fdatasync commits no journal; the rest of
// the segment stays preallocated. Then the log reads back whole after a
// restart and after a crash that zeroes what was not synced.
func TestZeroAheadLeavesNoUnwrittenExtentAtTheTail(t *testing.T) {
	dir := t.TempDir()
	w := mustOpen(t, dir, Options{})
	var want []Record
	for i := range 300 {
		want = append(want, rec(i, 256))
	}
	appendSynced(t, w, want...)
	path := w.path(w.active())
	w.mu.Lock()
	off, zeroed := w.off, w.zeroed
	w.mu.Unlock()
	exts := fileExtents(t, path)
	if len(exts) == 0 {
		t.Fatalf("%s: no extents", path)
	}
	if at := unwrittenBefore(exts, off+zeroAhead/2); at >= 0 {
		t.Fatalf("byte %d, below the write offset %d + %d, is in an unwritten extent: %+v", at, off, zeroAhead/2, exts)
	}
	if zeroed < off+zeroAhead/2 {
		t.Fatalf("zeroed up to %d, want at least %d (offset %d + half of %d)", zeroed, off+zeroAhead/2, off, zeroAhead)
	}
	if unwrittenBefore(exts, DefaultSegmentSize) < 0 {
		t.Fatalf("no unwritten extent left: the segment was not preallocated past the zeros? %+v", exts)
	}

	// More records than zeroAhead: the zeros keep moving ahead.
	for i := 300; i < 300+2*zeroAhead/256; i += 100 {
		batch := make([]Record, 100)
		for j := range batch {
			batch[j] = rec(i+j, 256)
		}
		want = append(want, batch...)
		if err := w.Append(batch...); err != nil {
			t.Fatal(err)
		}
		if err := w.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	w.mu.Lock()
	off, zeroed = w.off, w.zeroed
	w.mu.Unlock()
	if at := unwrittenBefore(fileExtents(t, path), off+zeroAhead/2); at >= 0 || zeroed < off+zeroAhead/2 {
		t.Fatalf("after %d bytes of log: unwritten byte at %d, zeroed %d, offset %d", off, at, zeroed, off)
	}
	mustClose(t, w)
	w = mustOpen(t, dir, Options{})
	checkRecords(t, replayAll(t, w, 1), 1, want)

	// A record appended but not synced vanishes in a crash; the zeros past
	// the durable end do not confuse the next Open.
	if err := w.Append(rec(99999, 256)); err != nil {
		t.Fatal(err)
	}
	if err := w.SimulateCrash(); err != nil {
		t.Fatal(err)
	}
	w = mustOpen(t, dir, Options{})
	defer mustClose(t, w)
	checkRecords(t, replayAll(t, w, 1), 1, want)
	appendSynced(t, w, rec(1<<20, 256))
	want = append(want, rec(1<<20, 256))
	checkRecords(t, replayAll(t, w, 1), 1, want)
}
