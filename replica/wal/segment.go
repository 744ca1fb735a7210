package wal

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Segment header layout; see docs/storage.md. Little-endian.
//
//	0  8  magic "dzfs-wal"
//	8  4  format version (1)
//	12 4  batch generation of the segment's first frame
//	16 8  segment sequence number
//	24 8  index of the segment's first record
//	32 4  zero
//	36 4  CRC-32C of bytes 0..35
const (
	segHeaderSize = 40
	segVersion    = 1
	segMagic      = "dzfs-wal"
	segSuffix     = ".wal"
	tmpSuffix     = ".tmp"
)

// segHeader is a decoded segment header.
type segHeader struct {
	seq   uint64 // position of the segment in the log, consecutive
	first uint64 // index of the segment's first record
	gen   uint32 // batch generation of the segment's first frame
}

func (h segHeader) encode() []byte {
	b := make([]byte, segHeaderSize)
	copy(b, segMagic)
	binary.LittleEndian.PutUint32(b[8:], segVersion)
	binary.LittleEndian.PutUint32(b[12:], h.gen)
	binary.LittleEndian.PutUint64(b[16:], h.seq)
	binary.LittleEndian.PutUint64(b[24:], h.first)
	binary.LittleEndian.PutUint32(b[36:], crc32.Checksum(b[:36], castagnoli))
	return b
}

// decodeSegHeader decodes b, or returns a reason why it is not a header.
func decodeSegHeader(b []byte) (segHeader, string) {
	if len(b) < segHeaderSize {
		return segHeader{}, fmt.Sprintf("file is %d bytes, shorter than a segment header", len(b))
	}
	if string(b[:8]) != segMagic {
		return segHeader{}, fmt.Sprintf("bad magic %q", b[:8])
	}
	if got, want := binary.LittleEndian.Uint32(b[36:]), crc32.Checksum(b[:36], castagnoli); got != want {
		return segHeader{}, fmt.Sprintf("segment header CRC mismatch (stored %#08x, computed %#08x)", got, want)
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != segVersion {
		return segHeader{}, fmt.Sprintf("unsupported segment format version %d", v)
	}
	return segHeader{
		gen:   binary.LittleEndian.Uint32(b[12:]),
		seq:   binary.LittleEndian.Uint64(b[16:]),
		first: binary.LittleEndian.Uint64(b[24:]),
	}, ""
}

// segName is the file name of a segment: its sequence number and the index
// of its first record, each as 16 hex digits, so names sort in log order.
func segName(seq, first uint64) string {
	return fmt.Sprintf("%016x-%016x%s", seq, first, segSuffix)
}

// parseSegName is the inverse of segName.
func parseSegName(name string) (seq, first uint64, ok bool) {
	base, found := strings.CutSuffix(name, segSuffix)
	if !found || len(base) != 33 || base[16] != '-' {
		return 0, 0, false
	}
	seq, err1 := strconv.ParseUint(base[:16], 16, 64)
	first, err2 := strconv.ParseUint(base[17:], 16, 64)
	return seq, first, err1 == nil && err2 == nil
}

// segFile is a segment file found in the directory.
type segFile struct {
	name  string
	seq   uint64
	first uint64
}

// listSegments returns the segment files of dir in sequence order and the
// names of leftover temporary files.
func listSegments(dir string) (segs []segFile, tmps []string, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("wal: list %s: %w", dir, err)
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasSuffix(name, tmpSuffix) {
			tmps = append(tmps, name)
			continue
		}
		if seq, first, ok := parseSegName(name); ok && e.Type().IsRegular() {
			segs = append(segs, segFile{name: name, seq: seq, first: first})
		}
	}
	slices.SortFunc(segs, func(a, b segFile) int {
		switch {
		case a.seq < b.seq:
			return -1
		case a.seq > b.seq:
			return 1
		}
		return 0
	})
	return segs, tmps, nil
}

// createSegment makes a new segment file durably: header written to a
// temporary file, preallocated, fsynced, renamed to its name, directory
// fsynced. A crash leaves either no segment or a complete header.
func createSegment(dir string, h segHeader, opts Options) (*os.File, string, error) {
	name := segName(h.seq, h.first)
	path := filepath.Join(dir, name)
	tmp := path + tmpSuffix
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, "", fmt.Errorf("wal: create segment %s: %w", tmp, err)
	}
	fail := func(err error) (*os.File, string, error) {
		f.Close()
		os.Remove(tmp)
		return nil, "", err
	}
	if _, err := f.WriteAt(h.encode(), 0); err != nil {
		return fail(fmt.Errorf("wal: write segment header %s at offset 0: %w", tmp, err))
	}
	if !opts.NoPreallocate {
		if err := preallocate(f, 0, opts.SegmentSize); err != nil {
			return fail(fmt.Errorf("wal: preallocate %d bytes for %s: %w", opts.SegmentSize, tmp, err))
		}
	}
	if err := f.Sync(); err != nil {
		return fail(fmt.Errorf("wal: fsync %s: %w", tmp, err))
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(fmt.Errorf("wal: rename %s to %s: %w", tmp, name, err))
	}
	if err := syncDir(dir, opts); err != nil {
		f.Close()
		return nil, "", err
	}
	return f, name, nil
}
