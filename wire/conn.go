package wire

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// DefaultMaxPending is how many bytes of frames a Conn queues for writing
// before writers wait for the network to drain them.
const DefaultMaxPending = 4 << 20

// keepBuf bounds the write buffer a Conn keeps for reuse, in bytes.
const keepBuf = 1 << 20

// Conn is one framed connection: a buffered reader and a write queue over a
// net.Conn, with the frame limit applied to both directions. Servers (for
// client, peer and gossip connections alike) and the Client use it.
//
// Reading is for one goroutine at a time: a payload returned by ReadFrame is
// valid only until the next read. Writing is for any number of goroutines:
// each Write* call encodes its frame into a shared queue and then, unless
// another goroutine is already writing, writes everything queued in one
// Write call on the network; frames queued while a write is under way go
// out together in the next one. So a Write* call may return before its frame
// is on the network (a concurrent writer carries it), and may block in the
// network's Write (bounded by SetWriteTimeout) or while more than
// DefaultMaxPending bytes are queued. A write error is sticky: every later
// Write* fails with it.
type Conn struct {
	nc       net.Conn
	br       *bufio.Reader
	maxFrame int
	rbuf     []byte            // owned by the reading goroutine
	hdr      [frameHeader]byte // owned by the reading goroutine

	w writer
}

// NewConn wraps nc. maxFrame is the limit on a frame's payload in bytes, for
// reading and writing (≤ 0 means DefaultMaxFrame).
func NewConn(nc net.Conn, maxFrame int) *Conn {
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrame
	}
	c := &Conn{
		nc:       nc,
		br:       bufio.NewReaderSize(nc, 32<<10),
		maxFrame: maxFrame,
		w:        writer{nc: nc, maxPending: DefaultMaxPending},
	}
	c.SetRawConn(nc)
	return c
}

// SetRawConn lets TryFlush write to nc without waiting: nc must be the
// very byte stream c writes to (the same socket, with no TLS or other
// layer in between), typically the *net.TCPConn under a wrapper. NewConn
// calls it with its own net.Conn; a connection that does not give access
// to its socket (syscall.Conn) is left alone, and TryFlush then always
// leaves the writing to a goroutine. Call it before the Conn is shared.
func (c *Conn) SetRawConn(nc net.Conn) {
	c.w.raw = nil
	if sc, ok := nc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			c.w.raw = newRawWriter(rc)
		}
	}
}

// NetConn returns the underlying connection, for deadlines and addresses.
func (c *Conn) NetConn() net.Conn { return c.nc }

// MaxFrame returns the frame limit in bytes.
func (c *Conn) MaxFrame() int { return c.maxFrame }

// SetWriteTimeout bounds each network write in Write* calls; 0 (the
// default) means no bound. A write that times out breaks the Conn. Call it
// before the Conn is shared.
func (c *Conn) SetWriteTimeout(d time.Duration) { c.w.timeout = d }

// Close closes the network connection. Later writes fail with ErrClosed;
// a blocked read returns an error.
func (c *Conn) Close() error {
	c.w.fail(ErrClosed)
	return c.nc.Close()
}

// ReadFrame reads the next frame and returns its payload, valid until the
// next read. Errors are those of the package function ReadFrame.
func (c *Conn) ReadFrame() ([]byte, error) {
	p, err := readFrame(c.br, c.hdr[:], c.rbuf, c.maxFrame)
	if err == nil && cap(p) <= keepBuf && cap(p) > cap(c.rbuf) {
		c.rbuf = p[:0]
	}
	return p, err
}

// ReadRequest reads one frame and decodes it into req. A frame error
// (ErrFrameTooBig, an I/O error) is returned as is and ends the connection;
// a decode error is an *fs.Error (see DecodeRequest) to answer on req.Tag,
// after which the next request can be read.
func (c *Conn) ReadRequest(req *Request) error {
	p, err := c.ReadFrame()
	if err != nil {
		*req = Request{}
		return err
	}
	return DecodeRequest(p, req)
}

// ReadResponse reads one frame and decodes it into resp.
func (c *Conn) ReadResponse(resp *Response) error {
	p, err := c.ReadFrame()
	if err != nil {
		return err
	}
	return DecodeResponse(p, resp)
}

// ReadMsg reads one frame and decodes it into v with DecodeMsg.
func (c *Conn) ReadMsg(v any) error {
	p, err := c.ReadFrame()
	if err != nil {
		return err
	}
	return DecodeMsg(p, v)
}

// WriteFrame queues payload as one frame (copying it) and writes.
func (c *Conn) WriteFrame(payload []byte) error {
	return c.write(nil, func(b []byte) ([]byte, error) {
		b, start := beginFrame(b)
		return endFrame(append(b, payload...), start, c.maxFrame)
	})
}

// WriteRequest queues req as one frame and writes.
func (c *Conn) WriteRequest(req *Request) error {
	return c.write(nil, func(b []byte) ([]byte, error) { return AppendRequest(b, req, c.maxFrame) })
}

// WriteResponse queues resp as one frame and writes.
func (c *Conn) WriteResponse(resp *Response) error {
	return c.write(nil, func(b []byte) ([]byte, error) { return AppendResponse(b, resp, c.maxFrame) })
}

// QueueResponse queues resp as one frame without writing it; Flush (or any
// later Write* call) writes it. With Buffered, a server can answer requests
// from its reading goroutine and write the answers in batches:
//
//	for {
//		err := c.ReadRequest(&req)
//		...
//		c.QueueResponse(answer(&req))
//		if c.Buffered() == 0 {
//			c.Flush()
//		}
//	}
func (c *Conn) QueueResponse(resp *Response) error {
	return c.enqueue(nil, func(b []byte) ([]byte, error) { return AppendResponse(b, resp, c.maxFrame) })
}

// Flush writes every queued frame, unless another goroutine is writing, in
// which case that goroutine writes them.
func (c *Conn) Flush() error { return c.w.flushIfIdle() }

// Buffered returns how many bytes have been received but not yet read:
// when it is 0, the next read would wait for the network.
func (c *Conn) Buffered() int { return c.br.Buffered() }

// QueueResponseNoWait queues resp as one frame without writing it and
// without waiting for room: the queue may go over DefaultMaxPending. It is
// for a goroutine that must not block (a replica's loop answering a write);
// what it queues must be bounded by other means (requests in flight).
func (c *Conn) QueueResponseNoWait(resp *Response) error {
	return c.w.queueNoWait(func(b []byte) ([]byte, error) { return AppendResponse(b, resp, c.maxFrame) })
}

// AppendNoWait queues the bytes enc appends, which must be whole frames,
// without writing them and without waiting for room (see
// QueueResponseNoWait). It is for a protocol that frames its own payloads
// (replica peer links) and wants them encoded straight into the queue.
func (c *Conn) AppendNoWait(enc func(dst []byte) []byte) error {
	return c.w.queueNoWait(func(b []byte) ([]byte, error) { return enc(b), nil })
}

// Pending returns how many bytes are queued and not yet handed to the
// network.
func (c *Conn) Pending() int {
	c.w.mu.Lock()
	defer c.w.mu.Unlock()
	return len(c.w.buf)
}

// CanWriteNoWait reports whether TryFlush writes in the calling goroutine
// (SetRawConn found the socket), rather than always in a new one.
func (c *Conn) CanWriteNoWait() bool { return c.w.raw != nil }

// TryFlush writes what is queued as far as the network takes it without
// waiting, in the calling goroutine, unless another goroutine is writing
// (which then carries it). What the network does not take at once is left
// to a new goroutine that writes it as Flush would. It never blocks on
// the network, so a goroutine that must not block can answer with
// QueueResponseNoWait and TryFlush, without a goroutine hand-off per frame
// when the connection keeps up.
func (c *Conn) TryFlush() error {
	left, err := c.w.tryFlush()
	if left {
		go c.w.flush()
	}
	return err
}

// FrameBuffered reports whether a whole frame has been received and not
// yet read, so that the next read will not wait for the network. A server
// answering from its reading goroutine flushes its queued answers when it
// is false.
func (c *Conn) FrameBuffered() bool {
	n := c.br.Buffered()
	if n < frameHeader {
		return false
	}
	h, err := c.br.Peek(frameHeader)
	if err != nil {
		return false
	}
	size := int(binary.BigEndian.Uint32(h))
	return size <= c.maxFrame && n >= frameHeader+size
}

// WriteMsg queues v, encoded by AppendMsg, as one frame and writes.
func (c *Conn) WriteMsg(v any) error {
	return c.write(nil, func(b []byte) ([]byte, error) { return AppendMsg(b, v, c.maxFrame) })
}

// write queues one frame and, if no other goroutine is writing, writes
// everything queued.
func (c *Conn) write(ctx context.Context, enc func([]byte) ([]byte, error)) error {
	flush, err := c.w.queue(ctx, true, enc)
	if err != nil || !flush {
		return err
	}
	return c.w.flush()
}

// enqueue queues one frame without writing it; the caller arranges for
// flushIfIdle to run (the Client's writer goroutine).
func (c *Conn) enqueue(ctx context.Context, enc func([]byte) ([]byte, error)) error {
	_, err := c.w.queue(ctx, false, enc)
	return err
}

// writer is a Conn's write queue.
type writer struct {
	nc         net.Conn
	raw        *rawWriter // nc's socket, for tryFlush; nil if unknown
	maxPending int
	timeout    time.Duration

	mu       sync.Mutex
	buf      []byte        // frames queued and not yet handed to the network
	spare    []byte        // the buffer last written, kept for reuse
	flushing bool          // a goroutine is writing; only it touches the network
	err      error         // sticky write error
	drainedc chan struct{} // closed after the next network write; nil if no one waits
}

// queue appends a frame with enc, waiting (up to ctx) while the queue is
// full. With claim set, it reports whether the caller must now flush: true
// when no other goroutine is writing.
func (w *writer) queue(ctx context.Context, claim bool, enc func([]byte) ([]byte, error)) (bool, error) {
	w.mu.Lock()
	for w.err == nil && len(w.buf) >= w.maxPending {
		if w.drainedc == nil {
			w.drainedc = make(chan struct{})
		}
		ch := w.drainedc
		w.mu.Unlock()
		if err := waitFor(ctx, ch); err != nil {
			return false, err
		}
		w.mu.Lock()
	}
	defer w.mu.Unlock()
	if w.err != nil {
		return false, w.err
	}
	var err error
	if w.buf, err = enc(w.buf); err != nil {
		return false, err
	}
	if !claim || w.flushing {
		return false, nil
	}
	w.flushing = true
	return true, nil
}

// queueNoWait appends a frame with enc, whatever the queue holds.
func (w *writer) queueNoWait(enc func([]byte) ([]byte, error)) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	var err error
	w.buf, err = enc(w.buf)
	return err
}

// tryFlush writes the queue without waiting on the network, unless another
// goroutine is writing. It reports left when part of the queue could not
// be written at once: the caller then holds the writing (flushing is set)
// and must call flush, from a goroutine that may block, to finish it.
func (w *writer) tryFlush() (left bool, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.flushing || len(w.buf) == 0 || w.err != nil {
		return false, w.err
	}
	w.flushing = true
	if w.raw == nil {
		return true, nil
	}
	for len(w.buf) > 0 && w.err == nil {
		out := w.buf
		w.buf = w.spare[:0]
		w.spare = nil
		w.mu.Unlock()
		n, err := w.raw.writeNoWait(out)
		w.mu.Lock()
		if err != nil {
			if w.err == nil {
				w.err = err
			}
			w.nc.Close() // as a failed blocking write leaves it: useless
			break
		}
		if n < len(out) {
			// The socket is full: the rest, then what was queued
			// meanwhile, is for a blocking flush.
			rest := make([]byte, 0, len(out)-n+len(w.buf))
			rest = append(append(rest, out[n:]...), w.buf...)
			w.buf = rest
			return true, nil
		}
		if cap(out) <= keepBuf {
			w.spare = out[:0]
		}
		w.wakeLocked()
	}
	w.flushing = false
	w.wakeLocked()
	return false, w.err
}

// rawWriter writes to a socket without waiting for it to drain. It is
// used only by the goroutine holding the writing, and built once per Conn
// so that a write allocates nothing.
type rawWriter struct {
	rc  syscall.RawConn
	fn  func(fd uintptr) bool
	b   []byte
	n   int
	err error
}

func newRawWriter(rc syscall.RawConn) *rawWriter {
	rw := &rawWriter{rc: rc}
	rw.fn = rw.write
	return rw
}

func (rw *rawWriter) write(fd uintptr) bool {
	for rw.n < len(rw.b) {
		m, err := syscall.Write(int(fd), rw.b[rw.n:])
		if m > 0 {
			rw.n += m
		}
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return true
		case err != nil:
			rw.err = err
			return true
		case m <= 0:
			rw.err = errors.New("wire: write returned no progress")
			return true
		}
	}
	return true
}

// writeNoWait writes b as far as the socket takes it now: n < len(b) with
// a nil error means the socket is full.
func (rw *rawWriter) writeNoWait(b []byte) (int, error) {
	rw.b, rw.n, rw.err = b, 0, nil
	err := rw.rc.Write(rw.fn)
	n, werr := rw.n, rw.err
	rw.b, rw.err = nil, nil
	if errors.Is(err, os.ErrDeadlineExceeded) {
		// A deadline set on the connection for a blocking write has
		// passed: that is not this write's failure. The blocking flush
		// takes over, under a deadline of its own.
		return n, nil
	}
	if err != nil {
		return n, err
	}
	if werr != nil {
		return n, &net.OpError{Op: "write", Net: "tcp", Err: werr}
	}
	return n, nil
}

// flushIfIdle writes everything queued unless another goroutine is writing.
func (w *writer) flushIfIdle() error {
	w.mu.Lock()
	if w.flushing || len(w.buf) == 0 {
		err := w.err
		w.mu.Unlock()
		return err
	}
	w.flushing = true
	w.mu.Unlock()
	return w.flush()
}

// flush writes the queue until it is empty; the caller has set flushing.
func (w *writer) flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for len(w.buf) > 0 && w.err == nil {
		out := w.buf
		w.buf = w.spare[:0]
		w.spare = nil
		w.mu.Unlock()
		if w.timeout > 0 {
			w.nc.SetWriteDeadline(time.Now().Add(w.timeout))
		}
		_, err := w.nc.Write(out)
		w.mu.Lock()
		if err != nil && w.err == nil {
			w.err = err
		}
		if cap(out) <= keepBuf {
			w.spare = out[:0]
		}
		w.wakeLocked()
	}
	if w.timeout > 0 && w.raw != nil {
		// A deadline left behind would fail the next nonblocking write
		// (tryFlush), however much later it comes: RawConn.Write checks it.
		w.nc.SetWriteDeadline(time.Time{})
	}
	w.flushing = false
	return w.err
}

// fail makes every later write fail with err.
func (w *writer) fail(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.buf = nil
	w.wakeLocked()
	w.mu.Unlock()
}

func (w *writer) wakeLocked() {
	if w.drainedc != nil {
		close(w.drainedc)
		w.drainedc = nil
	}
}

// waitFor waits for c to close or ctx (which may be nil) to end.
func waitFor(ctx context.Context, c <-chan struct{}) error {
	if ctx == nil {
		<-c
		return nil
	}
	select {
	case <-c:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
