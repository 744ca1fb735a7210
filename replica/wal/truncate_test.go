package wal

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

// dirSyncs records the directories fsynced through the test seam.
type dirSyncs struct {
	mu   sync.Mutex
	dirs []string
}

func (d *dirSyncs) hook(dir string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dirs = append(d.dirs, dir)
}

func (d *dirSyncs) count(dir string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, x := range d.dirs {
		if filepath.Clean(x) == filepath.Clean(dir) {
			n++
		}
	}
	return n
}

func TestTruncateBeforeDeletesOnlySegmentsEntirelyBelowTheIndex(t *testing.T) {
	dir := t.TempDir()
	opts, _ := testOptions(2 << 10)
	w := mustOpen(t, dir, opts)
	defer w.Close()
	var want []Record
	for i := range 60 {
		want = append(want, rec(i, 100))
	}
	appendSynced(t, w, want...)
	before := segmentPaths(t, dir)
	firsts := make([]uint64, len(before))
	for i, p := range before {
		_, firsts[i], _ = parseSegName(filepath.Base(p))
	}
	// An index inside the third segment: the first two go, the third stays.
	index := firsts[2] + 1
	n, err := w.TruncateBefore(index)
	if err != nil {
		t.Fatalf("TruncateBefore(%d): %v", index, err)
	}
	if n != 2 {
		t.Fatalf("deleted %d segments, want 2", n)
	}
	if got := segmentPaths(t, dir); !slices.Equal(got, before[2:]) {
		t.Fatalf("segments left: got %v, want %v", got, before[2:])
	}
	if got := w.FirstIndex(); got != firsts[2] {
		t.Fatalf("FirstIndex: got %d, want %d", got, firsts[2])
	}
	checkRecords(t, replayAll(t, w, index), index, want[index-1:])
	checkRecords(t, replayAll(t, w, 0), firsts[2], want[firsts[2]-1:])
}

func TestTruncateBeforeNeverDeletesTheActiveSegment(t *testing.T) {
	dir := t.TempDir()
	opts, _ := testOptions(2 << 10)
	w := mustOpen(t, dir, opts)
	for i := range 40 {
		appendSynced(t, w, rec(i, 100))
	}
	if _, err := w.TruncateBefore(1 << 40); err != nil {
		t.Fatal(err)
	}
	paths := segmentPaths(t, dir)
	if len(paths) != 1 {
		t.Fatalf("got %d segments, want only the active one", len(paths))
	}
	appendSynced(t, w, rec(40, 100))
	next := w.NextIndex()
	mustClose(t, w)
	w = mustOpen(t, dir, opts)
	defer w.Close()
	if got := w.NextIndex(); got != next {
		t.Fatalf("NextIndex after reopen: got %d, want %d", got, next)
	}
	got := replayAll(t, w, 0)
	if len(got) == 0 || got[len(got)-1].index != next-1 {
		t.Fatalf("replay after truncation: got %d records, want the active segment's ending at %d", len(got), next-1)
	}
}

func TestDirectoryIsFsyncedWhenSegmentsAreCreatedAndDeleted(t *testing.T) {
	dir := t.TempDir()
	opts, _ := testOptions(2 << 10)
	syncs := &dirSyncs{}
	opts.dirSynced = syncs.hook
	w := mustOpen(t, dir, opts)
	defer w.Close()
	if got := syncs.count(dir); got != 1 {
		t.Fatalf("after creating the first segment: %d directory fsyncs, want 1", got)
	}
	for i := range 60 {
		appendSynced(t, w, rec(i, 100))
	}
	segs := len(segmentPaths(t, dir))
	if got := syncs.count(dir); got != segs {
		t.Fatalf("after %d segments were created: %d directory fsyncs, want %d", segs, got, segs)
	}
	if _, err := w.TruncateBefore(w.NextIndex()); err != nil {
		t.Fatal(err)
	}
	if got := syncs.count(dir); got != segs+1 {
		t.Fatalf("after deleting segments: %d directory fsyncs, want %d", got, segs+1)
	}
	if _, err := w.TruncateBefore(w.NextIndex()); err != nil { // nothing to delete
		t.Fatal(err)
	}
	if got := syncs.count(dir); got != segs+1 {
		t.Fatalf("a TruncateBefore that deletes nothing fsynced the directory (%d, want %d)", got, segs+1)
	}
}

func TestRepairFsyncsTheDirectoryAfterMovingSegmentsAside(t *testing.T) {
	dir, _ := multiSegmentLog(t)
	paths := segmentPaths(t, dir)
	if err := os.Remove(paths[1]); err != nil {
		t.Fatal(err)
	}
	opts, _ := testOptions(2 << 10)
	opts.Repair = true
	syncs := &dirSyncs{}
	opts.dirSynced = syncs.hook
	w := mustOpen(t, dir, opts)
	defer w.Close()
	if syncs.count(dir) < 1 {
		t.Fatal("repair moved segments aside without fsyncing the directory")
	}
	if _, err := os.Stat(paths[2]); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("segment after the gap still in place (%v)", err)
	}
}
