package wal

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// damage says why the bytes at off do not continue the log.
type damage struct {
	off    int64
	reason string
	// definite is set for damage no torn write can produce, such as a frame
	// with a valid checksum that is out of sequence.
	definite bool
}

func (d *damage) Error() string { return fmt.Sprintf("offset %d: %s", d.off, d.reason) }

// frame is one decoded frame.
type frame struct {
	off  int64 // offset of the frame's first byte in its file
	hdr  frameHeader
	data []byte // hdr.size bytes
}

// scanner reads frames one after another from a segment file.
type scanner struct {
	br     *bufio.Reader
	off    int64 // offset of the next byte br returns
	size   int64 // bytes in the file
	maxRec int
	fresh  bool   // give every frame a Data slice of its own
	body   []byte // reused for frame bodies unless fresh
	hdr    [frameHeaderSize]byte
}

const readBuffer = 1 << 20

func newScanner(r io.ReaderAt, from, size int64, maxRec int, fresh bool) *scanner {
	n := max(size-from, 0)
	sr := io.NewSectionReader(r, from, n)
	br := bufio.NewReaderSize(sr, int(min(n+1, readBuffer)))
	return &scanner{br: br, off: from, size: size, maxRec: maxRec, fresh: fresh}
}

// next returns the next frame. At the end of the records it returns io.EOF:
// the end of the file, or an all-zero header followed only by zeros. Bytes
// that cannot be the next frame give a *damage; read failures other errors.
func (s *scanner) next() (frame, error) {
	start := s.off
	n, err := io.ReadFull(s.br, s.hdr[:])
	s.off += int64(n)
	switch {
	case errors.Is(err, io.EOF):
		return frame{}, io.EOF
	case errors.Is(err, io.ErrUnexpectedEOF):
		if allZero(s.hdr[:n]) {
			return frame{}, io.EOF
		}
		return frame{}, &damage{off: start, reason: fmt.Sprintf("record header cut short: %d of %d bytes before the end of the file", n, frameHeaderSize)}
	case err != nil:
		return frame{}, err
	}
	if allZero(s.hdr[:]) {
		return frame{}, s.zeroTail(start)
	}
	h, why := parseHeader(s.hdr[:])
	if why != "" {
		return frame{}, &damage{off: start, reason: why}
	}
	if int64(h.size) > int64(s.maxRec) {
		return frame{}, &damage{off: start, reason: fmt.Sprintf("record length %d exceeds the limit of %d bytes", h.size, s.maxRec)}
	}
	flen := frameLen(int64(h.size))
	if start+flen > s.size {
		return frame{}, &damage{off: start, reason: fmt.Sprintf("record of %d bytes runs past the end of the file (%d bytes)", flen, s.size)}
	}
	body := s.bodyBuf(int(flen - frameHeaderSize))
	n, err = io.ReadFull(s.br, body)
	s.off += int64(n)
	if err != nil {
		return frame{}, fmt.Errorf("read record body at offset %d: %w", start+frameHeaderSize, err)
	}
	if got := frameCRC(s.hdr[:], body); got != h.crc {
		return frame{}, &damage{off: start, reason: fmt.Sprintf("record CRC mismatch (stored %#08x, computed %#08x)", h.crc, got)}
	}
	return frame{off: start, hdr: h, data: body[:h.size:h.size]}, nil
}

func (s *scanner) bodyBuf(n int) []byte {
	if s.fresh {
		return make([]byte, n)
	}
	if cap(s.body) < n {
		s.body = make([]byte, n)
	}
	return s.body[:n]
}

// zeroTail reads on from an all-zero header at start: io.EOF if only zeros
// follow, else damage at start naming the first non-zero byte.
func (s *scanner) zeroTail(start int64) error {
	for {
		b, err := s.br.Peek(s.br.Size())
		if i := firstNonZero(b); i >= 0 {
			at := s.off + int64(i)
			return &damage{off: start, reason: fmt.Sprintf("the records stop (zero header), but non-zero bytes follow at offset %d", at)}
		}
		d, _ := s.br.Discard(len(b))
		s.off += int64(d)
		if errors.Is(err, io.EOF) {
			return io.EOF
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return err
		}
	}
}
