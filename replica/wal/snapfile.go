package wal

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// Snapshot file layout; see docs/storage.md. Little-endian.
//
//	0  8  magic "dzfssnap"
//	8  4  format version (1)
//	12 4  zero
//	16 8  index (the caller's, e.g. the last slot the tree includes)
//	24 8  payload length L
//	32 4  zero
//	36 4  CRC-32C of bytes 0..35
//	40 L  payload (opaque: the fs tree encoding)
//	40+L 4  CRC-32C of the payload
const (
	snapHeaderSize  = 40
	snapTrailerSize = 4
	snapVersion     = 1
	snapMagic       = "dzfssnap"
)

func encodeSnapHeader(index uint64, size int64) []byte {
	b := make([]byte, snapHeaderSize)
	copy(b, snapMagic)
	binary.LittleEndian.PutUint32(b[8:], snapVersion)
	binary.LittleEndian.PutUint64(b[16:], index)
	binary.LittleEndian.PutUint64(b[24:], uint64(size))
	binary.LittleEndian.PutUint32(b[36:], crc32.Checksum(b[:36], castagnoli))
	return b
}

func decodeSnapHeader(b []byte) (index uint64, size int64, why string) {
	if string(b[:8]) != snapMagic {
		return 0, 0, fmt.Sprintf("bad magic %q: not a doozerfs snapshot", b[:8])
	}
	if got, want := binary.LittleEndian.Uint32(b[36:]), crc32.Checksum(b[:36], castagnoli); got != want {
		return 0, 0, fmt.Sprintf("snapshot header CRC mismatch (stored %#08x, computed %#08x)", got, want)
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != snapVersion {
		return 0, 0, fmt.Sprintf("unsupported snapshot format version %d", v)
	}
	size = int64(binary.LittleEndian.Uint64(b[24:]))
	if size < 0 {
		return 0, 0, fmt.Sprintf("payload length %d is negative", size)
	}
	return binary.LittleEndian.Uint64(b[16:]), size, ""
}

// SnapshotReader reads the payload of a snapshot in the file format, from
// any stream, checking it as it goes: Read returns io.EOF only after the
// whole payload has been read and its CRC-32C matched the trailer; damage
// is a *CorruptError instead. It never buffers more than the caller's slice
// and never trusts the length field for an allocation.
type SnapshotReader struct {
	Index uint64 // the index in the header
	Size  int64  // payload length in bytes

	r    io.Reader
	name string // the file, for errors
	left int64  // payload bytes not yet read
	crc  uint32
	err  error // set at the end: io.EOF or the damage
}

// ReadSnapshot reads and checks a snapshot header from r and returns a
// reader for the payload that follows.
func ReadSnapshot(r io.Reader) (*SnapshotReader, error) {
	return readSnapshot(r, "snapshot stream")
}

func readSnapshot(r io.Reader, name string) (*SnapshotReader, error) {
	hb := make([]byte, snapHeaderSize)
	n, err := io.ReadFull(r, hb)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, &CorruptError{File: name, Offset: int64(n), Reason: fmt.Sprintf("snapshot header cut short: %d of %d bytes", n, snapHeaderSize)}
	}
	if err != nil {
		return nil, fmt.Errorf("wal: read snapshot header from %s: %w", name, err)
	}
	index, size, why := decodeSnapHeader(hb)
	if why != "" {
		return nil, &CorruptError{File: name, Offset: 0, Reason: why}
	}
	return &SnapshotReader{Index: index, Size: size, r: r, name: name, left: size}, nil
}

// Read reads payload bytes.
func (s *SnapshotReader) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.left == 0 {
		s.err = s.finish()
		return 0, s.err
	}
	if int64(len(p)) > s.left {
		p = p[:s.left]
	}
	n, err := s.r.Read(p)
	s.crc = crc32.Update(s.crc, castagnoli, p[:n])
	s.left -= int64(n)
	switch {
	case errors.Is(err, io.EOF) && s.left > 0:
		s.err = &CorruptError{File: s.name, Offset: s.offset(), Reason: fmt.Sprintf(
			"snapshot ends after %d of its %d payload bytes", s.Size-s.left, s.Size)}
		return n, s.err
	case err != nil && !errors.Is(err, io.EOF):
		s.err = fmt.Errorf("wal: read snapshot %s at offset %d: %w", s.name, s.offset(), err)
		return n, s.err
	}
	return n, nil
}

func (s *SnapshotReader) offset() int64 { return snapHeaderSize + s.Size - s.left }

// finish reads the trailer and compares checksums.
func (s *SnapshotReader) finish() error {
	var t [snapTrailerSize]byte
	if _, err := io.ReadFull(s.r, t[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return &CorruptError{File: s.name, Offset: s.offset(), Reason: "snapshot ends before its CRC trailer"}
		}
		return fmt.Errorf("wal: read snapshot trailer of %s at offset %d: %w", s.name, s.offset(), err)
	}
	if got := binary.LittleEndian.Uint32(t[:]); got != s.crc {
		return &CorruptError{File: s.name, Offset: s.offset(), Reason: fmt.Sprintf(
			"snapshot payload CRC mismatch (trailer %#08x, computed %#08x over %d bytes)", got, s.crc, s.Size)}
	}
	return io.EOF
}

// VerifySnapshot reads a whole snapshot file from r, checking its header,
// payload checksum and that nothing follows the trailer. It streams: memory
// use does not depend on the snapshot's size.
func VerifySnapshot(r io.Reader) (index uint64, size int64, err error) {
	return verifySnapshot(r, "snapshot stream")
}

func verifySnapshot(r io.Reader, name string) (uint64, int64, error) {
	sr, err := readSnapshot(r, name)
	if err != nil {
		return 0, 0, err
	}
	buf := make([]byte, 256<<10)
	for {
		if _, err := sr.Read(buf); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return 0, 0, err
		}
	}
	var extra [1]byte
	if n, _ := io.ReadFull(r, extra[:]); n > 0 {
		return 0, 0, &CorruptError{File: name, Offset: sr.offset() + snapTrailerSize, Reason: "bytes follow the snapshot's CRC trailer"}
	}
	return sr.Index, sr.Size, nil
}

// snapWriter counts and checksums the payload on its way to the file.
type snapWriter struct {
	bw  *bufio.Writer
	crc uint32
	n   int64
}

func (s *snapWriter) Write(p []byte) (int, error) {
	n, err := s.bw.Write(p)
	s.crc = crc32.Update(s.crc, castagnoli, p[:n])
	s.n += int64(n)
	return n, err
}

// WriteSnapshotFile writes a whole snapshot in the file format to w: the
// header for index and size, exactly size bytes of payload read from
// payload, and the CRC trailer. It is how a replica streams a snapshot
// that `doozerfs snapshot restore` (ImportSnapshot) can read.
func WriteSnapshotFile(w io.Writer, index uint64, size int64, payload io.Reader) error {
	if size < 0 {
		return fmt.Errorf("wal: negative snapshot size %d", size)
	}
	if _, err := w.Write(encodeSnapHeader(index, size)); err != nil {
		return err
	}
	h := crc32.New(castagnoli)
	n, err := io.Copy(io.MultiWriter(w, h), io.LimitReader(payload, size))
	if err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("wal: snapshot payload ended after %d of %d bytes", n, size)
	}
	var tr [snapTrailerSize]byte
	binary.LittleEndian.PutUint32(tr[:], h.Sum32())
	_, err = w.Write(tr[:])
	return err
}
