package wire

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/doozerfs/doozerfs/fs"
)

// clientConn is one connection of a Client, with its reader and writer
// goroutines. It lives until it breaks; a Client then dials another.
type clientConn struct {
	s     *session
	addr  string
	conn  *Conn
	hello HelloReply
	kickc chan struct{} // capacity 1: the writer is to finish a write send began
	donec chan struct{} // closed when the connection breaks

	mu      sync.Mutex
	calls   map[uint32]sink // requests in flight by tag; nil once broken
	lastTag uint32
	err     error // why the connection broke; nil while it works
}

// sink receives the responses to one request.
type sink interface {
	// streaming reports whether the sink takes responses until one without
	// More; other sinks are done with their first response.
	streaming() bool
	// deliver hands over a response. It runs in the reader goroutine and
	// must not block; resp is reused after it returns.
	deliver(resp *Response)
	// fail reports that the connection broke before the last response.
	fail(err error)
}

// connLost is the error of a request whose connection broke. sent tells
// whether the request may have reached the replica.
type connLost struct {
	addr string
	err  error
	sent bool
}

func (e *connLost) Error() string {
	return fmt.Sprintf("connection to %s lost: %v", e.addr, e.err)
}

func (e *connLost) Unwrap() error { return e.err }

func newClientConn(s *session, addr string, conn *Conn, hello HelloReply) *clientConn {
	cc := &clientConn{
		s:     s,
		addr:  addr,
		conn:  conn,
		hello: hello,
		kickc: make(chan struct{}, 1),
		donec: make(chan struct{}),
		calls: make(map[uint32]sink),
	}
	s.wg.Add(2)
	go cc.readLoop()
	go cc.writeLoop()
	return cc
}

func (cc *clientConn) broken() bool {
	select {
	case <-cc.donec:
		return true
	default:
		return false
	}
}

// broke ends the connection, once, and fails every request in flight.
func (cc *clientConn) broke(err error) {
	cc.mu.Lock()
	if cc.err != nil {
		cc.mu.Unlock()
		return
	}
	cc.err = err
	calls := cc.calls
	cc.calls = nil
	cc.mu.Unlock()
	close(cc.donec)
	cc.conn.Close()
	if !errors.Is(err, ErrClosed) {
		cc.s.log.Warn("wire: connection lost", "addr", cc.addr, "err", err, "in_flight", len(calls))
		err = &connLost{addr: cc.addr, err: err, sent: true}
	}
	for _, sk := range calls {
		sk.fail(err)
	}
}

// readLoop hands each response to the sink of its tag.
func (cc *clientConn) readLoop() {
	defer cc.s.wg.Done()
	var resp Response
	for {
		frame, err := cc.conn.ReadFrame()
		if err != nil {
			cc.broke(err)
			return
		}
		if err := DecodeResponse(frame, &resp); err != nil {
			cc.broke(fmt.Errorf("undecodable response: %w", err))
			return
		}
		if resp.Tag == 0 {
			cc.broke(fmt.Errorf("replica ended the connection: %w", AsError(resp.Error())))
			return
		}
		cc.s.observe(&resp)
		cc.mu.Lock()
		sk := cc.calls[resp.Tag]
		if sk != nil && (!resp.More || !sk.streaming()) {
			delete(cc.calls, resp.Tag)
		}
		cc.mu.Unlock()
		if sk != nil {
			sk.deliver(&resp)
		}
	}
}

// writeLoop finishes the writes that send could not complete without
// waiting (the socket was full, or the connection has no socket to write
// to directly, as with TLS): each kick hands it the writing (flushing is
// set), and it writes until the queue is empty.
func (cc *clientConn) writeLoop() {
	defer cc.s.wg.Done()
	for {
		select {
		case <-cc.kickc:
		case <-cc.donec:
			return
		}
		if err := cc.conn.w.flush(); err != nil {
			cc.broke(err)
			return
		}
	}
}

// register assigns sk a fresh tag. Tags count up from 1 and are never
// reused while in flight.
func (cc *clientConn) register(sk sink) (uint32, error) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.err != nil {
		return 0, cc.lostLocked(false)
	}
	tag := cc.nextTagLocked()
	cc.calls[tag] = sk
	return tag, nil
}

func (cc *clientConn) nextTagLocked() uint32 {
	for {
		cc.lastTag++
		if _, busy := cc.calls[cc.lastTag]; cc.lastTag != 0 && !busy {
			return cc.lastTag
		}
	}
}

func (cc *clientConn) lostLocked(sent bool) error {
	if errors.Is(cc.err, ErrClosed) {
		return ErrClosed
	}
	return &connLost{addr: cc.addr, err: cc.err, sent: sent}
}

// unregister removes sk from tag and reports whether it was still there,
// i.e. whether the reader will never touch it again.
func (cc *clientConn) unregister(tag uint32, sk sink) bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.calls[tag] != sk {
		return false
	}
	delete(cc.calls, tag)
	return true
}

// send queues req and writes it, or leaves it to the write under way. It fails if the frame is over the limit
// (TOO_BIG), if ctx ends while the queue is full, or if the connection is
// broken (a connLost that was not sent).
func (cc *clientConn) send(ctx context.Context, req *Request) error {
	err := cc.conn.enqueue(ctx, func(b []byte) ([]byte, error) {
		return AppendRequest(b, req, cc.conn.maxFrame)
	})
	if err != nil {
		cc.mu.Lock()
		defer cc.mu.Unlock()
		if cc.err != nil {
			return cc.lostLocked(false)
		}
		if ctx.Err() == nil && !isFSError(err) {
			return &connLost{addr: cc.addr, err: err}
		}
		return err
	}
	// Write in this goroutine, without waiting on the network, unless a
	// write is under way (its writer carries this frame too): no
	// goroutine hand-off per request while the connection keeps up.
	left, err := cc.conn.w.tryFlush()
	if left {
		// Only the holder of the writing kicks, so the kick is never
		// lost to a full channel.
		select {
		case cc.kickc <- struct{}{}:
		case <-cc.donec:
		}
	}
	if err != nil {
		// The request is registered: broke fails it with the rest.
		cc.broke(err)
	}
	return nil
}

func isFSError(err error) bool {
	var fe *fs.Error
	return errors.As(err, &fe)
}

// cancel asks the replica to end the request with tag, if the write queue
// has room; it is best effort and never waits.
func (cc *clientConn) cancel(tag uint32) {
	cc.mu.Lock()
	if cc.err != nil {
		cc.mu.Unlock()
		return
	}
	req := Request{Tag: cc.nextTagLocked(), Verb: VerbCancel, Other: tag}
	cc.mu.Unlock()
	cc.send(doneCtx, &req)
}

// doneCtx is an ended context: waiting on it gives up at once.
var doneCtx = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// call is the sink of a request with one response.
type call struct {
	readyc chan struct{} // capacity 1: the response or failure is in
	resp   Response
	err    error
}

var calls = sync.Pool{New: func() any { return &call{readyc: make(chan struct{}, 1)} }}

func (c *call) streaming() bool { return false }

func (c *call) deliver(resp *Response) {
	c.resp = *resp
	c.readyc <- struct{}{}
}

func (c *call) fail(err error) {
	c.err = err
	c.readyc <- struct{}{}
}

// roundTrip sends req on this connection (setting its Tag) and waits for
// its response, or for ctx to end, in which case the replica is asked to
// cancel it and ctx's error is returned.
func (cc *clientConn) roundTrip(ctx context.Context, req *Request) (Response, error) {
	c := calls.Get().(*call)
	tag, err := cc.register(c)
	if err != nil {
		calls.Put(c)
		return Response{}, err
	}
	req.Tag = tag
	if err := cc.send(ctx, req); err != nil {
		if cc.unregister(tag, c) {
			calls.Put(c)
		}
		return Response{}, err
	}
	select {
	case <-c.readyc:
		resp, err := c.resp, c.err
		c.resp, c.err = Response{}, nil
		calls.Put(c)
		return resp, err
	case <-ctx.Done():
		if cc.unregister(tag, c) {
			calls.Put(c)
		}
		cc.cancel(tag)
		return Response{}, ctx.Err()
	}
}
