package wal

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// logCapture is a slog.Handler that keeps every record's message and
// attributes for assertions.
type logCapture struct {
	mu    sync.Mutex
	lines []string
}

func (c *logCapture) Enabled(context.Context, slog.Level) bool { return true }
func (c *logCapture) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c *logCapture) WithGroup(string) slog.Handler            { return c }
func (c *logCapture) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lines = append(c.lines, b.String())
	return nil
}

func (c *logCapture) all() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.lines)
}

// matching returns the captured lines that contain s.
func (c *logCapture) matching(s string) []string {
	var out []string
	for _, l := range c.all() {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}

// smallSegments keeps tests from preallocating 64 MiB segments.
var smallSegments = Options{SegmentSize: 16 << 10}

// testOptions returns small-segment options logging into a capture.
func testOptions(segSize int64) (Options, *logCapture) {
	c := &logCapture{}
	return Options{SegmentSize: segSize, Logger: slog.New(c)}, c
}

// rec returns a recognisable record for index-like number i.
func rec(i int, size int) Record {
	data := make([]byte, size)
	for j := range data {
		data[j] = byte(i*31 + j*7 + 1)
	}
	copy(data, fmt.Sprintf("record %d;", i))
	return Record{Type: uint8(1 + i%5), Data: data}
}

type indexed struct {
	index uint64
	rec   Record
}

// replayAll returns every durable record from the WAL.
func replayAll(t *testing.T, w *WAL, from uint64) []indexed {
	t.Helper()
	var got []indexed
	err := w.Replay(from, func(i uint64, r Record) error {
		got = append(got, indexed{i, r})
		return nil
	})
	if err != nil {
		t.Fatalf("Replay(%d): %v", from, err)
	}
	return got
}

// checkRecords compares replayed records with want, whose first record has
// index first.
func checkRecords(t *testing.T, got []indexed, first uint64, want []Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	for i := range want {
		g := got[i]
		if g.index != first+uint64(i) || g.rec.Type != want[i].Type || !bytes.Equal(g.rec.Data, want[i].Data) {
			t.Fatalf("record %d: got index %d type %d %q…, want index %d type %d %q…",
				i, g.index, g.rec.Type, head(g.rec.Data), first+uint64(i), want[i].Type, head(want[i].Data))
		}
	}
}

func head(b []byte) []byte { return b[:min(len(b), 16)] }

// mustOpen opens dir or fails the test.
func mustOpen(t *testing.T, dir string, opts Options) *WAL {
	t.Helper()
	w, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	return w
}

// appendSynced appends each record in its own synced batch.
func appendSynced(t *testing.T, w *WAL, recs ...Record) {
	t.Helper()
	for _, r := range recs {
		if err := w.Append(r); err != nil {
			t.Fatalf("Append: %v", err)
		}
		if err := w.Sync(); err != nil {
			t.Fatalf("Sync: %v", err)
		}
	}
}

func mustClose(t *testing.T, w *WAL) {
	t.Helper()
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// segmentPaths lists the segment files of dir in order.
func segmentPaths(t *testing.T, dir string) []string {
	t.Helper()
	segs, _, err := listSegments(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range segs {
		out = append(out, filepath.Join(dir, s.name))
	}
	return out
}

// framesOf returns the frames of a segment file, in order.
func framesOf(t *testing.T, path string) []frame {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sc := newScanner(bytes.NewReader(b), segHeaderSize, int64(len(b)), DefaultMaxRecord, true)
	var out []frame
	for {
		fr, err := sc.next()
		if err != nil {
			return out
		}
		out = append(out, fr)
	}
}

// copyDir copies the regular files of src into a new directory.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// patchFile overwrites bytes of a file at off.
func patchFile(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func readByte(t *testing.T, path string, off int64) byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b[off]
}

// damagedCopies lists the files in dir with a .damaged- suffix.
func damagedCopies(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.damaged-*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}
