package wal

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// multiSegmentLog is a closed WAL of 60 synced one-record batches over
// several 2 KiB segments.
func multiSegmentLog(t *testing.T) (dir string, want []Record) {
	t.Helper()
	dir = t.TempDir()
	opts, _ := testOptions(2 << 10)
	w := mustOpen(t, dir, opts)
	for i := range 60 {
		want = append(want, rec(i, 100))
	}
	appendSynced(t, w, want...)
	mustClose(t, w)
	if n := len(segmentPaths(t, dir)); n < 4 {
		t.Fatalf("got %d segments, want at least 4", n)
	}
	return dir, want
}

// flip inverts one bit of the byte at off.
func flip(t *testing.T, path string, off int64) {
	t.Helper()
	patchFile(t, path, off, []byte{readByte(t, path, off) ^ 0x08})
}

// wantCorrupt checks that err is a *CorruptError at path and off, and that
// its message names both.
func wantCorrupt(t *testing.T, err error, path string, off int64) {
	t.Helper()
	var ce *CorruptError
	if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("got %v, want a *CorruptError", err)
	}
	if ce.File != path || ce.Offset != off {
		t.Fatalf("got damage in %s at %d, want %s at %d", ce.File, ce.Offset, path, off)
	}
	msg := err.Error()
	if !strings.Contains(msg, path) || !strings.Contains(msg, fmt.Sprintf("offset %d", off)) {
		t.Fatalf("message %q does not name the file and offset", msg)
	}
}

func TestAFlippedByteInAnEarlyRecordIsRefusedNamingTheFileAndOffset(t *testing.T) {
	dir, _ := multiSegmentLog(t)
	paths := segmentPaths(t, dir)
	last := paths[len(paths)-1]
	fr := framesOf(t, last)[0]
	flip(t, last, fr.off+frameHeaderSize+5)
	opts, _ := testOptions(2 << 10)
	_, err := Open(dir, opts)
	wantCorrupt(t, err, last, fr.off)
}

func TestAFlippedByteInAMiddleSegmentIsRefusedNamingTheFileAndOffset(t *testing.T) {
	dir, _ := multiSegmentLog(t)
	mid := segmentPaths(t, dir)[1]
	fr := framesOf(t, mid)[4]
	flip(t, mid, fr.off+frameHeaderSize+1)
	opts, _ := testOptions(2 << 10)
	_, err := Open(dir, opts)
	wantCorrupt(t, err, mid, fr.off)
}

func TestTheLastRecordOfAnEarlierSegmentDamagedIsRefusedNotTakenForATornTail(t *testing.T) {
	dir, _ := multiSegmentLog(t)
	first := segmentPaths(t, dir)[0]
	frames := framesOf(t, first)
	fr := frames[len(frames)-2] // its last record (a commit follows)
	flip(t, first, fr.off+frameHeaderSize)
	opts, _ := testOptions(2 << 10)
	_, err := Open(dir, opts)
	wantCorrupt(t, err, first, fr.off)
}

func TestRepairCutsAMiddleSegmentAfterItsLastGoodRecordAndKeepsCopies(t *testing.T) {
	dir, want := multiSegmentLog(t)
	paths := segmentPaths(t, dir)
	mid := paths[1]
	orig, err := os.ReadFile(mid)
	if err != nil {
		t.Fatal(err)
	}
	frames := framesOf(t, mid)
	damaged := frames[4]
	flip(t, mid, damaged.off+frameHeaderSize+1)
	damagedBytes, _ := os.ReadFile(mid)
	goodUpTo := frames[3].hdr.index // the frame before is a commit after this index

	opts, logs := testOptions(2 << 10)
	opts.Repair = true
	w := mustOpen(t, dir, opts)
	checkRecords(t, replayAll(t, w, 1), 1, want[:goodUpTo])
	if got := w.NextIndex(); got != goodUpTo+1 {
		t.Fatalf("NextIndex after repair: got %d, want %d", got, goodUpTo+1)
	}
	extra := rec(1000, 50)
	appendSynced(t, w, extra)
	mustClose(t, w)

	copies := damagedCopies(t, dir)
	if want := len(paths) - 1; len(copies) != want {
		t.Fatalf("got damaged copies %v, want %d (the cut segment and every later one)", copies, want)
	}
	for _, c := range copies {
		if strings.HasPrefix(c, mid+".damaged-") {
			b, _ := os.ReadFile(c)
			if !bytes.Equal(b, damagedBytes) {
				t.Fatalf("copy %s differs from the damaged file", c)
			}
		}
	}
	if bytes.Equal(orig, damagedBytes) {
		t.Fatal("the test did not damage the file")
	}
	if lines := logs.matching("repair"); len(lines) < 3 {
		t.Fatalf("got repair log lines %q, want the cut and the moves", lines)
	}

	// The repaired log opens cleanly, without Repair, with the new record.
	plain, _ := testOptions(2 << 10)
	w = mustOpen(t, dir, plain)
	defer w.Close()
	checkRecords(t, replayAll(t, w, 1), 1, append(want[:goodUpTo:goodUpTo], extra))
}

func TestRepairOfTheLastSegmentKeepsACopyAndTheRecordsBeforeTheDamage(t *testing.T) {
	dir, want := multiSegmentLog(t)
	paths := segmentPaths(t, dir)
	last := paths[len(paths)-1]
	frames := framesOf(t, last)
	flip(t, last, frames[2].off+frameHeaderSize)
	opts, _ := testOptions(2 << 10)
	opts.Repair = true
	w := mustOpen(t, dir, opts)
	defer w.Close()
	good := frames[1].hdr.index // frames[1] is the commit of the segment's first record
	checkRecords(t, replayAll(t, w, 1), 1, want[:good])
	if copies := damagedCopies(t, dir); len(copies) != 1 || !strings.HasPrefix(copies[0], last) {
		t.Fatalf("got damaged copies %v, want one of %s", copies, last)
	}
}

func TestAMissingMiddleSegmentIsRefusedAndRepairKeepsTheSegmentsBeforeIt(t *testing.T) {
	dir, want := multiSegmentLog(t)
	paths := segmentPaths(t, dir)
	if err := os.Remove(paths[2]); err != nil {
		t.Fatal(err)
	}
	opts, _ := testOptions(2 << 10)
	_, err := Open(dir, opts)
	wantCorrupt(t, err, paths[3], 0)
	if !strings.Contains(err.Error(), "missing") {
		t.Fatalf("message %q does not say a segment is missing", err)
	}

	opts.Repair = true
	w := mustOpen(t, dir, opts)
	defer w.Close()
	_, first, _ := parseSegName(filepath.Base(paths[2]))
	checkRecords(t, replayAll(t, w, 1), 1, want[:first-1])
}

func TestADamagedSegmentHeaderIsRefusedAndRepairMovesTheSegmentAside(t *testing.T) {
	dir, want := multiSegmentLog(t)
	paths := segmentPaths(t, dir)
	flip(t, paths[1], 20)
	opts, _ := testOptions(2 << 10)
	_, err := Open(dir, opts)
	wantCorrupt(t, err, paths[1], 0)

	opts.Repair = true
	w := mustOpen(t, dir, opts)
	defer w.Close()
	_, first, _ := parseSegName(filepath.Base(paths[1]))
	checkRecords(t, replayAll(t, w, 1), 1, want[:first-1])
	if got := w.NextIndex(); got != first {
		t.Fatalf("NextIndex: got %d, want %d", got, first)
	}
}

func TestRepairOfTheOnlySegmentsHeaderStartsAfreshAtTheSameIndex(t *testing.T) {
	dir := t.TempDir()
	opts, _ := testOptions(64 << 10)
	w := mustOpen(t, dir, opts)
	appendSynced(t, w, rec(1, 10))
	mustClose(t, w)
	path := segmentPaths(t, dir)[0]
	flip(t, path, 0)
	opts.Repair = true
	w = mustOpen(t, dir, opts)
	defer w.Close()
	if got := replayAll(t, w, 1); len(got) != 0 {
		t.Fatalf("got %d records, want none", len(got))
	}
	if got := w.NextIndex(); got != 1 {
		t.Fatalf("NextIndex: got %d, want 1", got)
	}
	if copies := damagedCopies(t, dir); len(copies) != 1 {
		t.Fatalf("got damaged copies %v, want one", copies)
	}
}

func TestARecordOutOfSequenceWithAValidChecksumIsCorruption(t *testing.T) {
	dir := t.TempDir()
	opts, _ := testOptions(64 << 10)
	w := mustOpen(t, dir, opts)
	appendSynced(t, w, rec(1, 10), rec(2, 10), rec(3, 10))
	mustClose(t, w)
	path := segmentPaths(t, dir)[0]
	frames := framesOf(t, path)
	// Rewrite the last record with a wrong index but a valid CRC.
	last := frames[4]
	b := appendFrame(nil, last.hdr.typ, last.hdr.index+5, last.hdr.gen, last.data)
	patchFile(t, path, last.off, b)
	_, err := Open(dir, opts)
	wantCorrupt(t, err, path, last.off)
}

func TestOpenRemovesASegmentLeftHalfCreated(t *testing.T) {
	dir := t.TempDir()
	opts, logs := testOptions(64 << 10)
	w := mustOpen(t, dir, opts)
	appendSynced(t, w, rec(1, 10))
	mustClose(t, w)
	tmp := filepath.Join(dir, segName(2, 2)+tmpSuffix)
	if err := os.WriteFile(tmp, []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	w = mustOpen(t, dir, opts)
	defer w.Close()
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("leftover %s still there (%v)", tmp, err)
	}
	if len(logs.matching("half-created")) != 1 {
		t.Fatalf("got log lines %q, want one about the leftover", logs.all())
	}
	checkRecords(t, replayAll(t, w, 1), 1, []Record{rec(1, 10)})
}
