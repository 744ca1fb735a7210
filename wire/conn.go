package wire

import (
	"bufio"
	"context"
	"encoding/binary"
	"net"
	"sync"
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
	return &Conn{
		nc:       nc,
		br:       bufio.NewReaderSize(nc, 32<<10),
		maxFrame: maxFrame,
		w:        writer{nc: nc, maxPending: DefaultMaxPending},
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
