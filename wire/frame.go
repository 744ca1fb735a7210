package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"

	"github.com/doozerfs/doozerfs/fs"
)

// DefaultMaxFrame is the default limit on a frame's payload, in bytes: the
// default maximum body (1 MiB) plus 64 KiB for the message around it.
const DefaultMaxFrame = 1<<20 + 64<<10

// frameHeader is the length prefix: 4 bytes, big-endian, counting the
// payload only.
const frameHeader = 4

// growStep is how much a large frame's buffer grows ahead of the bytes that
// have actually arrived, so a peer that announces a big frame and sends
// little of it costs little memory.
const growStep = 64 << 10

// ReadFrame reads one frame from r and returns its payload. It reuses buf's
// capacity when the payload fits; the result aliases buf then. max is the
// limit on the payload in bytes (≤ 0 means DefaultMaxFrame).
//
// Errors: io.EOF if r ends cleanly before a frame; io.ErrUnexpectedEOF if it
// ends inside one; an error matching ErrFrameTooBig if the length is over
// max (nothing more is read: the caller must close the stream); an *fs.Error
// of kind BAD_REQUEST for a zero-length frame (the stream is still in step
// and the next frame can be read).
func ReadFrame(r io.Reader, buf []byte, max int) ([]byte, error) {
	var hdr [frameHeader]byte
	return readFrame(r, hdr[:], buf, max)
}

// readFrame is ReadFrame with the caller's 4-byte header buffer, which a
// Conn keeps so that reading a frame allocates nothing.
func readFrame(r io.Reader, hdr, buf []byte, max int) ([]byte, error) {
	if max <= 0 {
		max = DefaultMaxFrame
	}
	if _, err := io.ReadFull(r, hdr); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr)
	switch {
	case n == 0:
		return nil, &fs.Error{Kind: fs.KindBadRequest, Detail: "empty frame"}
	case uint64(n) > uint64(max):
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooBig, n, max)
	}
	return readPayload(r, buf, int(n))
}

func readPayload(r io.Reader, buf []byte, n int) ([]byte, error) {
	if n <= cap(buf) {
		p := buf[:n]
		if _, err := io.ReadFull(r, p); err != nil {
			return nil, midFrame(err)
		}
		return p, nil
	}
	p := buf[:0]
	for len(p) < n {
		grow := min(n-len(p), max(len(p), growStep))
		p = slices.Grow(p, grow)
		start := len(p)
		p = p[:start+grow]
		if _, err := io.ReadFull(r, p[start:]); err != nil {
			return nil, midFrame(err)
		}
	}
	return p, nil
}

func midFrame(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// WriteFrame writes payload as one frame to w, in one Write call where w
// allows it (a net.Conn gets one writev).
func WriteFrame(w io.Writer, payload []byte) error {
	if len(payload) == 0 {
		return errors.New("wire: empty frame")
	}
	if uint64(len(payload)) > 1<<32-1 {
		return fmt.Errorf("%w: %d bytes", ErrFrameTooBig, len(payload))
	}
	var hdr [frameHeader]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(payload)))
	bufs := net.Buffers{hdr[:], payload}
	_, err := bufs.WriteTo(w)
	return err
}

// AppendFrame appends payload to dst as one frame.
func AppendFrame(dst, payload []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(payload)))
	return append(dst, payload...)
}

// beginFrame reserves room for a length prefix at the end of b; endFrame
// fills it in once the payload has been appended after it.
func beginFrame(b []byte) ([]byte, int) {
	return append(b, 0, 0, 0, 0), len(b)
}

// endFrame writes the length of the frame that starts at b[start:] and
// checks it against max. On error b is cut back to start.
func endFrame(b []byte, start, max int) ([]byte, error) {
	n := len(b) - start - frameHeader
	if n > max {
		return b[:start], &fs.Error{Kind: fs.KindTooBig,
			Detail: fmt.Sprintf("message of %d bytes over the frame limit of %d", n, max)}
	}
	binary.BigEndian.PutUint32(b[start:], uint32(n))
	return b, nil
}
