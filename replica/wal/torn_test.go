package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tornFixture is a closed WAL of n synced one-record batches whose last
// segment is not its first.
type tornFixture struct {
	dir     string
	opts    Options
	want    []Record
	last    string // path of the last segment
	rec     frame  // the last record's frame
	commit  frame  // the commit frame after it
	fileLen int64
	full    bool // recoverAfter also appends and reopens
}

func newTornFixture(t *testing.T) tornFixture {
	t.Helper()
	dir := t.TempDir()
	opts, _ := testOptions(2 << 10)
	w := mustOpen(t, dir, opts)
	var want []Record
	for i := range 30 {
		want = append(want, rec(i, 60+i))
	}
	appendSynced(t, w, want...)
	mustClose(t, w)
	paths := segmentPaths(t, dir)
	if len(paths) < 2 {
		t.Fatalf("fixture has %d segments, want at least 2", len(paths))
	}
	last := paths[len(paths)-1]
	frames := framesOf(t, last)
	if len(frames) < 2 || frames[len(frames)-1].hdr.typ != typeCommit {
		t.Fatalf("last segment frames: %+v, want a record then its commit", frames)
	}
	st, err := os.Stat(last)
	if err != nil {
		t.Fatal(err)
	}
	return tornFixture{dir: dir, opts: opts, want: want, last: last,
		rec: frames[len(frames)-2], commit: frames[len(frames)-1], fileLen: st.Size(), full: true}
}

func (fx tornFixture) all() int { return len(fx.want) }

func end(fr frame) int64 { return fr.off + frameLen(int64(fr.hdr.size)) }

// recoverAfter opens a copy of the fixture damaged by damage(path of the
// copy's last segment), checks what survives and (if fx.full) that the log
// takes new records and reopens, and returns the log lines.
func (fx tornFixture) recoverAfter(t *testing.T, damage func(last string), records func() int) []string {
	t.Helper()
	dir := copyDir(t, fx.dir)
	last := filepath.Join(dir, filepath.Base(fx.last))
	damage(last)
	wantRecords := records()
	opts, logs := testOptions(fx.opts.SegmentSize)
	w := mustOpen(t, dir, opts)
	checkRecords(t, replayAll(t, w, 1), 1, fx.want[:wantRecords])
	if !fx.full {
		mustClose(t, w)
		return logs.matching("torn")
	}
	extra := rec(999, 33)
	appendSynced(t, w, extra)
	mustClose(t, w)
	w = mustOpen(t, dir, opts)
	defer w.Close()
	checkRecords(t, replayAll(t, w, 1), 1, append(fx.want[:wantRecords:wantRecords], extra))
	return logs.matching("torn")
}

// nonZero reports whether any byte of path from off on is not zero.
func nonZero(t *testing.T, path string, off int64) bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return off < int64(len(b)) && !allZero(b[off:])
}

func TestALogCutAtEveryByteOfItsLastRecordRecoversToThePreviousRecord(t *testing.T) {
	fx := newTornFixture(t)
	for k := fx.rec.off; k < end(fx.commit); k++ {
		fx.checkDamage(t, "cut", k, func(last string) {
			if err := os.Truncate(last, k); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestALogWhoseLastRecordIsZeroFilledFromEveryByteRecoversToThePreviousRecord(t *testing.T) {
	fx := newTornFixture(t)
	for k := fx.rec.off; k < end(fx.commit); k++ {
		fx.checkDamage(t, "zero-filled", k, func(last string) {
			patchFile(t, last, k, make([]byte, fx.fileLen-k))
		})
	}
}

// checkDamage damages a copy of the fixture from byte k on and checks
// that it recovers to the last intact frame, logging a line exactly when
// non-zero bytes had to be cut.
func (fx tornFixture) checkDamage(t *testing.T, how string, k int64, damage func(last string)) {
	t.Helper()
	// Appending and reopening after every offset costs fsyncs; do it at the
	// boundaries of the header, data and commit frame.
	switch k {
	case fx.rec.off, fx.rec.off + 1, fx.rec.off + frameHeaderSize - 1, fx.rec.off + frameHeaderSize,
		end(fx.rec) - 1, end(fx.rec), end(fx.commit) - 1:
		fx.full = true
	default:
		fx.full = false
	}
	orig, err := os.ReadFile(fx.last)
	if err != nil {
		t.Fatal(err)
	}
	var discardsData bool
	wantRecords := len(fx.want) - 1
	check := func(last string) {
		damage(last)
		b, err := os.ReadFile(last)
		if err != nil {
			t.Fatal(err)
		}
		good := fx.rec.off
		if intact(orig, b, fx.rec) {
			wantRecords, good = len(fx.want), end(fx.rec)
			if intact(orig, b, fx.commit) {
				good = end(fx.commit)
			}
		}
		discardsData = nonZero(t, last, good)
	}
	lines := fx.recoverAfter(t, check, func() int { return wantRecords })
	if discardsData != (len(lines) == 1) || len(lines) > 1 {
		t.Errorf("%s at %d: got log lines %q, want one exactly when non-zero bytes were cut (%v)", how, k, lines, discardsData)
	}
}

// intact reports whether fr's bytes in b are all there and unchanged.
func intact(orig, b []byte, fr frame) bool {
	e := end(fr)
	return int64(len(b)) >= e && string(b[fr.off:e]) == string(orig[fr.off:e])
}

func TestAZeroFilledPreallocatedTailIsACleanEndWithoutALogLine(t *testing.T) {
	fx := newTornFixture(t)
	if fx.fileLen <= end(fx.commit) {
		t.Fatalf("last segment is %d bytes, want preallocation beyond the records (%d)", fx.fileLen, end(fx.commit))
	}
	lines := fx.recoverAfter(t, func(string) {}, fx.all)
	if len(lines) != 0 {
		t.Fatalf("got log lines %q, want none", lines)
	}
}

func TestGarbageAfterTheLastRecordIsATornTail(t *testing.T) {
	fx := newTornFixture(t)
	lines := fx.recoverAfter(t, func(last string) {
		patchFile(t, last, end(fx.commit)+16, []byte("half-written garbage, no frame"))
	}, fx.all)
	if len(lines) != 1 {
		t.Fatalf("got log lines %q, want one about the torn tail", lines)
	}
}

// lastBatchFixture is a closed single-segment WAL: ten synced one-record
// batches, then one batch of five records.
func lastBatchFixture(t *testing.T) (dir string, opts Options, want []Record, frames []frame) {
	t.Helper()
	dir = t.TempDir()
	opts, _ = testOptions(64 << 10)
	w := mustOpen(t, dir, opts)
	for i := range 15 {
		want = append(want, rec(i, 200))
	}
	appendSynced(t, w, want[:10]...)
	if err := w.Append(want[10:]...); err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	mustClose(t, w)
	return dir, opts, want, framesOf(t, segmentPaths(t, dir)[0])
}

func TestHolesInTheLastBatchAreATornWriteNotCorruption(t *testing.T) {
	// The kernel may write an unsynced batch's pages back in any order, so
	// a crash can leave its later records intact and an earlier one not.
	dir, opts, want, frames := lastBatchFixture(t)
	first := frames[20] // frames 0..19: ten records and ten commits
	if first.hdr.index != 11 {
		t.Fatalf("frame 20 has index %d, want 11", first.hdr.index)
	}
	path := segmentPaths(t, dir)[0]
	patchFile(t, path, first.off, make([]byte, frameLen(int64(first.hdr.size))))
	o, logs := testOptions(opts.SegmentSize)
	w := mustOpen(t, dir, o)
	defer w.Close()
	checkRecords(t, replayAll(t, w, 1), 1, want[:10])
	if lines := logs.matching("torn"); len(lines) != 1 {
		t.Fatalf("got log lines %q, want one about the torn tail", lines)
	}
}

func TestDamageFollowedByALaterBatchIsCorruption(t *testing.T) {
	for _, tc := range []struct {
		name  string
		patch func(path string, fr frame)
	}{
		{"flipped byte", func(path string, fr frame) {
			off := fr.off + frameHeaderSize + 3
			patchFile(t, path, off, []byte{readByte(t, path, off) ^ 0x40})
		}},
		{"zeroed record", func(path string, fr frame) {
			patchFile(t, path, fr.off, make([]byte, frameLen(int64(fr.hdr.size))))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, opts, _, frames := lastBatchFixture(t)
			path := segmentPaths(t, dir)[0]
			damaged := frames[6] // record 4, a batch synced long before the last
			tc.patch(path, damaged)
			_, err := Open(dir, opts)
			var ce *CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("Open: got %v, want a *CorruptError", err)
			}
			if ce.File != path || ce.Offset != damaged.off {
				t.Fatalf("got damage in %s at %d, want %s at %d", ce.File, ce.Offset, path, damaged.off)
			}
		})
	}
}

func TestDamageToTheBatchBeforeTheLastIsCorruption(t *testing.T) {
	// The last batch is intact, so the one before it had been synced.
	for _, tc := range []struct {
		name  string
		frame int // counted from the end: the last batch is one record and its commit
	}{
		{"its record", 4},
		{"its commit frame", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newTornFixture(t)
			frames := framesOf(t, fx.last)
			fr := frames[len(frames)-tc.frame]
			patchFile(t, fx.last, fr.off+2, []byte{readByte(t, fx.last, fr.off+2) ^ 0x20})
			_, err := Open(fx.dir, fx.opts)
			var ce *CorruptError
			if !errors.As(err, &ce) || ce.Offset != fr.off {
				t.Fatalf("Open: got %v, want a *CorruptError at offset %d", err, fr.off)
			}
		})
	}
}

func TestBytesCraftedToLookLikeManyLongRecordsCannotMakeRecoveryQuadratic(t *testing.T) {
	dir := t.TempDir()
	opts, _ := testOptions(1 << 20)
	w := mustOpen(t, dir, opts)
	appendSynced(t, w, rec(1, 10), rec(2, 10))
	next, gen, good := w.NextIndex(), w.gen, w.off
	mustClose(t, w)
	path := segmentPaths(t, dir)[0]

	// Damage right after the good records, then fake headers that pass every
	// cheap check and claim 256 KiB each: checking them all would read GBs.
	var junk []byte
	junk = append(junk, bytes.Repeat([]byte{0xff}, 24)...)
	for len(junk) < 512<<10 {
		var h [frameHeaderSize]byte
		binary.LittleEndian.PutUint32(h[4:], 256<<10)
		binary.LittleEndian.PutUint64(h[8:], next)
		binary.LittleEndian.PutUint32(h[16:], gen)
		h[20] = 1
		junk = append(junk, h[:]...)
	}
	patchFile(t, path, good, junk)
	_, err := Open(dir, opts)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "too many") {
		t.Fatalf("Open: got %v, want a refusal saying it could not decide", err)
	}
}
