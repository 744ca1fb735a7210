package fs

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
)

// A snapshot's payload travels in blocks: a 4-byte big-endian length n, the
// CRC-32C (Castagnoli) of the n data bytes, 4 bytes big-endian, then the
// data. n is at most maxBlock; a block with n = 0 ends the payload. Blocks
// let a reader check the data as it streams, and hold at most one block in
// memory.

const (
	writeBlock = 64 << 10 // data bytes per block the writer emits
	maxBlock   = 1 << 20  // the largest block a reader accepts
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// A blockWriter cuts what is written to it into blocks.
type blockWriter struct {
	w   io.Writer
	buf []byte // pending data, up to writeBlock bytes
	err error  // the first write error
}

func newBlockWriter(w io.Writer) *blockWriter {
	return &blockWriter{w: w, buf: make([]byte, 0, writeBlock)}
}

func (bw *blockWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 && bw.err == nil {
		k := min(len(p), writeBlock-len(bw.buf))
		bw.buf = append(bw.buf, p[:k]...)
		p = p[k:]
		if len(bw.buf) == writeBlock {
			bw.flush()
		}
	}
	return n, bw.err
}

func (bw *blockWriter) byte(c byte) {
	if len(bw.buf) == writeBlock {
		bw.flush()
	}
	bw.buf = append(bw.buf, c)
}

func (bw *blockWriter) uvarint(v uint64) {
	var b [binary.MaxVarintLen64]byte
	bw.Write(b[:binary.PutUvarint(b[:], v)])
}

func (bw *blockWriter) varint(v int64) {
	var b [binary.MaxVarintLen64]byte
	bw.Write(b[:binary.PutVarint(b[:], v)])
}

// bytes writes a length and then p.
func (bw *blockWriter) bytes(p []byte) {
	bw.uvarint(uint64(len(p)))
	bw.Write(p)
}

func (bw *blockWriter) string(s string) {
	bw.uvarint(uint64(len(s)))
	for len(s) > 0 && bw.err == nil {
		k := min(len(s), writeBlock-len(bw.buf))
		bw.buf = append(bw.buf, s[:k]...)
		s = s[k:]
		if len(bw.buf) == writeBlock {
			bw.flush()
		}
	}
}

// flush writes the pending data as one block.
func (bw *blockWriter) flush() {
	if bw.err != nil || len(bw.buf) == 0 {
		return
	}
	bw.writeBlock(bw.buf)
	bw.buf = bw.buf[:0]
}

func (bw *blockWriter) writeBlock(data []byte) {
	var h [8]byte
	binary.BigEndian.PutUint32(h[:4], uint32(len(data)))
	binary.BigEndian.PutUint32(h[4:], crc32.Checksum(data, castagnoli))
	if _, err := bw.w.Write(h[:]); err != nil {
		bw.err = err
		return
	}
	if _, err := bw.w.Write(data); err != nil {
		bw.err = err
	}
}

// close flushes and writes the end block.
func (bw *blockWriter) close() error {
	bw.flush()
	if bw.err == nil {
		bw.writeBlock(nil)
	}
	return bw.err
}

// A blockReader reads the payload of a block stream, checking each block.
// It reads nothing past the end block.
type blockReader struct {
	r    io.Reader
	buf  []byte // the current block's data
	off  int    // bytes of buf consumed
	done bool   // the end block was read
}

// errEndOfPayload is returned when a read wants more than the payload has.
var errEndOfPayload = errors.New("payload ends early")

// next reads the next block; errEndOfPayload at the end block.
func (br *blockReader) next() error {
	if br.done {
		return errEndOfPayload
	}
	var h [8]byte
	if _, err := io.ReadFull(br.r, h[:]); err != nil {
		return truncated(err)
	}
	n := binary.BigEndian.Uint32(h[:4])
	if n > maxBlock {
		return errors.New("block larger than 1 MiB")
	}
	if n == 0 {
		if binary.BigEndian.Uint32(h[4:]) != 0 {
			return errors.New("end block checksum mismatch")
		}
		br.done = true
		return errEndOfPayload
	}
	if cap(br.buf) < int(n) {
		br.buf = make([]byte, n)
	}
	br.buf, br.off = br.buf[:n], 0
	if _, err := io.ReadFull(br.r, br.buf); err != nil {
		return truncated(err)
	}
	if crc32.Checksum(br.buf, castagnoli) != binary.BigEndian.Uint32(h[4:]) {
		return errors.New("block checksum mismatch")
	}
	return nil
}

func truncated(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return errors.New("truncated")
	}
	return err
}

// Read implements io.Reader over the payload.
func (br *blockReader) Read(p []byte) (int, error) {
	for br.off == len(br.buf) {
		if err := br.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, br.buf[br.off:])
	br.off += n
	return n, nil
}

// ReadByte implements io.ByteReader over the payload.
func (br *blockReader) ReadByte() (byte, error) {
	for br.off == len(br.buf) {
		if err := br.next(); err != nil {
			return 0, err
		}
	}
	c := br.buf[br.off]
	br.off++
	return c, nil
}

// readN reads exactly n bytes into a new slice, growing it only as data
// arrives, so a hostile length cannot make it allocate more than the
// payload holds.
func (br *blockReader) readN(n uint64) ([]byte, error) {
	out := make([]byte, 0, min(n, writeBlock))
	for uint64(len(out)) < n {
		for br.off == len(br.buf) {
			if err := br.next(); err != nil {
				return nil, err
			}
		}
		k := min(n-uint64(len(out)), uint64(len(br.buf)-br.off))
		out = append(out, br.buf[br.off:br.off+int(k)]...)
		br.off += int(k)
	}
	return out, nil
}

// finish checks that the payload ends here: the end block follows.
func (br *blockReader) finish() error {
	if br.off != len(br.buf) {
		return errors.New("data after the end of the tree")
	}
	if err := br.next(); err != errEndOfPayload {
		if err == nil {
			return errors.New("data after the end of the tree")
		}
		return err
	}
	return nil
}
