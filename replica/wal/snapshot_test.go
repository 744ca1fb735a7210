package wal

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// payload returns n recognisable bytes for snapshot index i.
func payload(i uint64, n int) []byte {
	b := make([]byte, n)
	for j := range b {
		b[j] = byte(uint64(j)*13 + i)
	}
	return b
}

func saveBytes(t *testing.T, s *SnapshotStore, index uint64, b []byte) Snapshot {
	t.Helper()
	sn, err := s.Save(index, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
	if err != nil {
		t.Fatalf("Save(%d): %v", index, err)
	}
	return sn
}

func readSnap(t *testing.T, sn Snapshot) []byte {
	t.Helper()
	r, err := sn.Open()
	if err != nil {
		t.Fatalf("Open %s: %v", sn.Path, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read %s: %v", sn.Path, err)
	}
	return b
}

func openStore(t *testing.T, dir string, opts Options) *SnapshotStore {
	t.Helper()
	s, err := OpenSnapshots(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestASavedSnapshotIsTheLatestAndReadsBackVerified(t *testing.T) {
	dir := t.TempDir()
	syncs := &dirSyncs{}
	s := openStore(t, dir, Options{dirSynced: syncs.hook})
	if _, ok, err := s.Latest(); ok || err != nil {
		t.Fatalf("Latest of an empty store: ok=%v err=%v, want none", ok, err)
	}
	want := payload(7, 100_000)
	saved := saveBytes(t, s, 7, want)
	if syncs.count(dir) != 1 {
		t.Fatalf("got %d directory fsyncs after Save, want 1", syncs.count(dir))
	}
	got, ok, err := s.Latest()
	if err != nil || !ok {
		t.Fatalf("Latest: ok=%v err=%v", ok, err)
	}
	if got != saved || got.Index != 7 || got.Size != int64(len(want)) || filepath.Base(got.Path) != "snap-00000000000000000007" {
		t.Fatalf("Latest: got %+v, saved %+v", got, saved)
	}
	if !bytes.Equal(readSnap(t, got), want) {
		t.Fatal("payload read back differs from what was saved")
	}
	f, err := os.Open(got.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	index, size, err := VerifySnapshot(f)
	if err != nil || index != 7 || size != int64(len(want)) {
		t.Fatalf("VerifySnapshot: got %d, %d, %v; want 7, %d, nil", index, size, err, len(want))
	}
}

func TestAnEmptySnapshotPayloadRoundTrips(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	sn := saveBytes(t, s, 1, nil)
	if got := readSnap(t, sn); len(got) != 0 {
		t.Fatalf("got %d bytes, want none", len(got))
	}
}

func TestSnapshotRetentionKeepsTheNewestN(t *testing.T) {
	for _, keep := range []int{1, 2, 3} {
		t.Run(fmt.Sprint(keep), func(t *testing.T) {
			s := openStore(t, t.TempDir(), Options{KeepSnapshots: keep})
			for i := uint64(1); i <= 5; i++ {
				saveBytes(t, s, i*10, payload(i, 100))
			}
			list, err := s.List()
			if err != nil {
				t.Fatal(err)
			}
			var got []uint64
			for _, sn := range list {
				got = append(got, sn.Index)
			}
			want := []uint64{50, 40, 30}[:keep]
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("kept %v, want %v", got, want)
			}
		})
	}
}

// damageSnapshot flips a payload byte of sn's file.
func damageSnapshot(t *testing.T, sn Snapshot) {
	t.Helper()
	off := int64(snapHeaderSize + 10)
	patchFile(t, sn.Path, off, []byte{readByte(t, sn.Path, off) ^ 1})
}

func TestADamagedNewestSnapshotIsRefusedNamingTheFile(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	saveBytes(t, s, 1, payload(1, 1000))
	newest := saveBytes(t, s, 2, payload(2, 1000))
	damageSnapshot(t, newest)
	_, ok, err := s.Latest()
	var ce *CorruptError
	if ok || !errors.As(err, &ce) || ce.File != newest.Path {
		t.Fatalf("Latest: ok=%v err=%v, want a *CorruptError naming %s", ok, err, newest.Path)
	}
	if !strings.Contains(err.Error(), "CRC") {
		t.Fatalf("message %q does not say what was wrong", err)
	}
}

func TestRepairMovesADamagedSnapshotAsideAndUsesThePreviousOne(t *testing.T) {
	dir := t.TempDir()
	opts, logs := testOptions(64 << 10)
	opts.Repair = true
	s := openStore(t, dir, opts)
	older := saveBytes(t, s, 1, payload(1, 1000))
	newest := saveBytes(t, s, 2, payload(2, 1000))
	damageSnapshot(t, newest)
	got, ok, err := s.Latest()
	if err != nil || !ok || got.Index != older.Index {
		t.Fatalf("Latest: got %+v ok=%v err=%v, want snapshot 1", got, ok, err)
	}
	if copies := damagedCopies(t, dir); len(copies) != 1 || !strings.HasPrefix(copies[0], newest.Path) {
		t.Fatalf("damaged copies: got %v, want one of %s", copies, newest.Path)
	}
	if len(logs.matching("damaged snapshot")) != 1 {
		t.Fatalf("got log lines %q, want one about the damaged snapshot", logs.all())
	}
	// The damaged one no longer counts: a new snapshot above it is fine and
	// an older index than it no longer blocks.
	saveBytes(t, s, 3, payload(3, 10))
}

func TestRepairWithEverySnapshotDamagedFindsNone(t *testing.T) {
	opts := Options{Repair: true}
	s := openStore(t, t.TempDir(), opts)
	damageSnapshot(t, saveBytes(t, s, 1, payload(1, 100)))
	if _, ok, err := s.Latest(); ok || err != nil {
		t.Fatalf("Latest: ok=%v err=%v, want none and no error", ok, err)
	}
}

func TestATruncatedOrMislabelledSnapshotFileIsDetected(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(path string)
	}{
		{"cut short", func(p string) {
			st, _ := os.Stat(p)
			os.Truncate(p, st.Size()-1)
		}},
		{"extra bytes", func(p string) {
			f, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
			f.Write([]byte{0})
			f.Close()
		}},
		{"header only", func(p string) { os.Truncate(p, snapHeaderSize) }},
		{"renamed", func(p string) { os.Rename(p, filepath.Join(filepath.Dir(p), snapName(9))) }},
		{"damaged header", func(p string) { patchFile(t, p, 20, []byte{0xff}) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t, t.TempDir(), Options{})
			sn := saveBytes(t, s, 5, payload(5, 1000))
			tc.damage(sn.Path)
			if _, _, err := s.Latest(); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Latest: got %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestASnapshotDamagedAfterItWasCheckedFailsAtTheEndOfReading(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	const size = 3 << 20 // more than the reader buffers at Open
	sn := saveBytes(t, s, 1, payload(1, size))
	r, err := sn.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	off := int64(snapHeaderSize + size - 1)
	patchFile(t, sn.Path, off, []byte{readByte(t, sn.Path, off) ^ 1})
	if _, err := io.ReadAll(r); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("reading to the end: got %v, want ErrCorrupt", err)
	}
}

func TestAFailedSnapshotWriteLeavesNoFile(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{})
	boom := errors.New("encoder failed")
	_, err := s.Save(3, func(w io.Writer) error {
		w.Write([]byte("partial"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Save: got %v, want the writer's error", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Fatalf("files left behind: %v", entries)
	}
}

func TestSavingASnapshotOlderThanTheNewestIsRefused(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	saveBytes(t, s, 10, payload(10, 10))
	if _, err := s.Save(9, func(io.Writer) error { return nil }); err == nil {
		t.Fatal("Save(9) after Save(10) succeeded, want an error")
	}
	saveBytes(t, s, 10, payload(11, 10)) // the same index replaces it
	got, _, _ := s.Latest()
	if !bytes.Equal(readSnap(t, got), payload(11, 10)) {
		t.Fatal("saving index 10 again did not replace it")
	}
}

func TestOpenSnapshotsRemovesUnfinishedTemporaryFiles(t *testing.T) {
	dir := t.TempDir()
	tmp := filepath.Join(dir, snapName(4)+".123"+tmpSuffix)
	if err := os.WriteFile(tmp, []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	openStore(t, dir, Options{})
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s still there (%v)", tmp, err)
	}
}

func TestImportCopiesAVerifiedStreamAndRefusesADamagedOne(t *testing.T) {
	src := openStore(t, t.TempDir(), Options{})
	sn := saveBytes(t, src, 42, payload(42, 300_000))
	file, err := os.ReadFile(sn.Path)
	if err != nil {
		t.Fatal(err)
	}
	dst := openStore(t, t.TempDir(), Options{})
	got, err := dst.Import(bytes.NewReader(file))
	if err != nil || got.Index != 42 {
		t.Fatalf("Import: got %+v, %v", got, err)
	}
	if !bytes.Equal(readSnap(t, got), payload(42, 300_000)) {
		t.Fatal("imported payload differs")
	}

	bad := bytes.Clone(file)
	bad[len(bad)-100] ^= 0x10
	dir := t.TempDir()
	other := openStore(t, dir, Options{})
	if _, err := other.Import(bytes.NewReader(bad)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Import of a damaged stream: got %v, want ErrCorrupt", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("a damaged import left files: %v", entries)
	}
}

func TestImportSnapshotSeedsANewDataDirAndRefusesOneInUse(t *testing.T) {
	src := openStore(t, t.TempDir(), Options{})
	sn := saveBytes(t, src, 1234, payload(1, 1000))
	file, _ := os.ReadFile(sn.Path)

	dir := filepath.Join(t.TempDir(), "data")
	got, err := ImportSnapshot(dir, bytes.NewReader(file), Options{})
	if err != nil || got.Index != 1234 {
		t.Fatalf("ImportSnapshot: got %+v, %v", got, err)
	}
	d, err := OpenDataDir(dir, smallSegments)
	if err != nil {
		t.Fatal(err)
	}
	latest, ok, err := d.Snapshots.Latest()
	if err != nil || !ok || latest.Index != 1234 {
		t.Fatalf("Latest after restore: %+v ok=%v err=%v", latest, ok, err)
	}
	if d.WAL.NextIndex() != 1 {
		t.Fatalf("a restored data dir's WAL starts at %d, want 1", d.WAL.NextIndex())
	}
	appendSynced(t, d.WAL, rec(1, 10))
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = ImportSnapshot(dir, bytes.NewReader(file), Options{})
	if err == nil || !strings.Contains(err.Error(), "already holds") {
		t.Fatalf("ImportSnapshot into a used data dir: got %v, want a refusal", err)
	}
}

// patternReader yields n bytes without holding them.
type patternReader struct{ left int64 }

func (p *patternReader) Read(b []byte) (int, error) {
	if p.left == 0 {
		return 0, io.EOF
	}
	n := int(min(int64(len(b)), p.left))
	for i := range n {
		b[i] = byte(p.left - int64(i))
	}
	p.left -= int64(n)
	return n, nil
}

func TestSnapshotsStreamWithoutHoldingThePayloadInMemory(t *testing.T) {
	const size = 48 << 20
	s := openStore(t, t.TempDir(), Options{})
	allocated := func(f func()) uint64 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	var sn Snapshot
	a := allocated(func() {
		var err error
		sn, err = s.Save(1, func(w io.Writer) error {
			_, err := io.CopyBuffer(w, &patternReader{left: size}, make([]byte, 64<<10))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	})
	if a > size/4 {
		t.Errorf("Save of %d bytes allocated %d bytes", size, a)
	}
	a = allocated(func() {
		if _, _, err := s.Latest(); err != nil {
			t.Fatal(err)
		}
	})
	if a > size/4 {
		t.Errorf("verifying %d bytes allocated %d bytes", size, a)
	}
	if sn.Size != size {
		t.Fatalf("Size: got %d, want %d", sn.Size, size)
	}
}
