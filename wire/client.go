package wire

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/doozerfs/doozerfs/fs"
)

// Options configure a Client. The zero value works: plain TCP, no secret,
// any cluster, 5 s dial timeout, the default frame limit, no logging.
type Options struct {
	// Secret is the token sent in HELLO: the cluster's read-write or
	// read-only secret. Empty sends none.
	Secret string

	// Cluster is the name of the cluster the client expects. A replica of
	// another cluster refuses the connection (BAD_REQUEST) and the next
	// address is tried. Empty accepts any cluster.
	Cluster string

	// Name describes this client to the replicas (it appears in their
	// logs), e.g. "doozerfs-cli". Optional.
	Name string

	// TLS, if not nil, wraps every connection in TLS with this config. When
	// its ServerName is empty, the host part of the address dialled is
	// used. Nil means plain TCP.
	TLS *tls.Config

	// DialTimeout bounds connecting to one address: TCP connect, TLS
	// handshake and HELLO. Zero means 5 seconds.
	DialTimeout time.Duration

	// MaxFrame is the limit on a frame's payload in bytes, in both
	// directions; it should match the replicas' (max body + 64 KiB). Zero
	// means DefaultMaxFrame. A request over it fails with TOO_BIG without
	// being sent.
	MaxFrame int

	// Logger receives one line when a connection is made, lost, or fails
	// over. Nil means no logging.
	Logger *slog.Logger
}

const defaultDialTimeout = 5 * time.Second

func (o *Options) validate() error {
	switch {
	case o.DialTimeout < 0:
		return fmt.Errorf("wire: negative DialTimeout %v", o.DialTimeout)
	case o.MaxFrame < 0:
		return fmt.Errorf("wire: negative MaxFrame %d", o.MaxFrame)
	}
	return nil
}

func (o Options) withDefaults() Options {
	if o.DialTimeout == 0 {
		o.DialTimeout = defaultDialTimeout
	}
	if o.MaxFrame == 0 {
		o.MaxFrame = DefaultMaxFrame
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Client is a connection to a doozerfs cluster: one connection at a time to
// one of its replicas, carrying many requests at once. It is safe for
// concurrent use; see the package documentation for what happens when the
// connection breaks.
type Client struct {
	s          *session
	consistent bool
}

// session is what every view of one Client shares.
type session struct {
	addrs  []string
	opts   Options
	log    *slog.Logger
	ctx    context.Context // ends at Close; bounds dialling
	cancel context.CancelFunc
	seen   atomic.Int64   // the highest revision seen in any response or event
	wg     sync.WaitGroup // the goroutines of connections and dial rounds

	mu      sync.Mutex
	cur     *clientConn   // the connection in use; nil before the first dial or after Close
	dialc   chan struct{} // closed when the dial round under way ends; nil if none
	dialErr error         // why the last dial round failed
	next    int           // index in addrs of the address to try first
	closed  bool
}

// Dial connects to the first reachable replica of addrs (tried in order,
// each bounded by opts.DialTimeout and by ctx) and returns a Client. If
// none can be reached the error is an *fs.Error of kind UNAVAILABLE, or the
// refusal of a replica that answered HELLO (PERMISSION for a bad secret,
// BAD_REQUEST for another cluster or protocol version); if ctx ends first,
// it is ctx's error.
func Dial(ctx context.Context, addrs []string, opts Options) (*Client, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if len(addrs) == 0 {
		return nil, &fs.Error{Kind: fs.KindUnavailable, Detail: "no addresses to dial"}
	}
	opts = opts.withDefaults()
	s := &session{addrs: slicesClone(addrs), opts: opts, log: opts.Logger}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if _, err := s.conn(ctx); err != nil {
		s.close()
		return nil, err
	}
	return &Client{s: s}, nil
}

func slicesClone(a []string) []string { return append([]string(nil), a...) }

// Consistent returns a view of c whose reads are linearizable: the replica
// confirms with the leader that no newer write exists before answering.
// The view shares c's connection; closing either closes both.
func (c *Client) Consistent() *Client { return &Client{s: c.s, consistent: true} }

// Seen returns the highest revision this client has seen in any response or
// event. Every read carries it as its minimum revision.
func (c *Client) Seen() int64 { return c.s.seen.Load() }

// Addr returns the address of the replica currently connected, or "" if
// there is no working connection.
func (c *Client) Addr() string {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	if c.s.cur == nil || c.s.cur.broken() {
		return ""
	}
	return c.s.cur.addr
}

// Close closes the connection. Calls in flight and open watches fail with
// ErrClosed, and so does every later call. It returns once the Client's
// goroutines have ended. Close is idempotent.
func (c *Client) Close() error {
	c.s.close()
	return nil
}

func (s *session) close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	cc := s.cur
	s.cur = nil
	s.mu.Unlock()
	s.cancel()
	if cc != nil {
		cc.broke(ErrClosed)
	}
	s.wg.Wait()
}

// observe raises seen to the revisions in resp.
func (s *session) observe(resp *Response) {
	rev := resp.Rev
	for i := range resp.Events {
		rev = max(rev, resp.Events[i].Rev)
	}
	for {
		cur := s.seen.Load()
		if rev <= cur || s.seen.CompareAndSwap(cur, rev) {
			return
		}
	}
}

// conn returns the working connection, dialling one if there is none. Only
// one dial round runs at a time; callers wait for it up to their ctx.
func (s *session) conn(ctx context.Context) (*clientConn, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	if cc := s.cur; cc != nil && !cc.broken() {
		s.mu.Unlock()
		return cc, nil
	}
	waitc := s.dialc
	if waitc == nil {
		waitc = make(chan struct{})
		s.dialc = waitc
		s.wg.Add(1)
		go s.dialRound(waitc)
	}
	s.mu.Unlock()
	select {
	case <-waitc:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if s.cur != nil && !s.cur.broken() {
		return s.cur, nil
	}
	if s.dialErr != nil {
		return nil, s.dialErr
	}
	// The round connected, but the connection broke before it could be
	// used (the replica was closing).
	return nil, &fs.Error{Kind: fs.KindUnavailable, Detail: "the connection to the replica broke as it was made"}
}

// dialRound tries each address once, from s.next on, and installs the
// first connection made. It closes donec when it ends.
func (s *session) dialRound(donec chan struct{}) {
	defer s.wg.Done()
	s.mu.Lock()
	start := s.next
	old := s.cur
	s.mu.Unlock()
	conn, reply, idx, err := s.dialAny(s.ctx, start)
	var cc *clientConn
	if err == nil {
		cc = newClientConn(s, s.addrs[idx], conn, reply)
	}
	s.mu.Lock()
	switch {
	case s.closed && cc != nil:
		cc.broke(ErrClosed)
		err = ErrClosed
	case cc != nil:
		s.cur, s.next = cc, (idx+1)%len(s.addrs)
		if old != nil {
			s.log.Info("wire: failed over", "from", old.addr, "to", cc.addr, "replica", reply.Name)
		} else {
			s.log.Debug("wire: connected", "addr", cc.addr, "replica", reply.Name)
		}
	}
	s.dialErr = err
	s.dialc = nil
	s.mu.Unlock()
	close(donec)
}

// dialAny tries each address once from start on and returns the first
// connection whose HELLO succeeds, with the index of its address.
func (s *session) dialAny(ctx context.Context, start int) (*Conn, HelloReply, int, error) {
	var failures []string
	var refusal *fs.Error
	for i := range s.addrs {
		idx := (start + i) % len(s.addrs)
		conn, reply, err := s.dialOne(ctx, s.addrs[idx])
		if err == nil {
			return conn, reply, idx, nil
		}
		if ctx.Err() != nil {
			return nil, reply, 0, ErrClosed
		}
		var fe *fs.Error
		if errors.As(err, &fe) && refusal == nil {
			refusal = fe
		}
		failures = append(failures, fmt.Sprintf("%s: %v", s.addrs[idx], err))
	}
	if refusal != nil {
		return nil, HelloReply{}, 0, refusal
	}
	return nil, HelloReply{}, 0, &fs.Error{Kind: fs.KindUnavailable,
		Detail: "no replica reachable: " + strings.Join(failures, "; ")}
}

// dialOne connects to addr and runs HELLO, within opts.DialTimeout.
func (s *session) dialOne(ctx context.Context, addr string) (*Conn, HelloReply, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.DialTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, HelloReply{}, err
	}
	if s.opts.TLS != nil {
		cfg := s.opts.TLS
		if cfg.ServerName == "" {
			cfg = cfg.Clone()
			cfg.ServerName, _, _ = net.SplitHostPort(addr)
		}
		tc := tls.Client(nc, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, HelloReply{}, err
		}
		nc = tc
	}
	conn := NewConn(nc, s.opts.MaxFrame)
	hello := Hello{Kind: ConnClient, Cluster: s.opts.Cluster, Token: s.opts.Secret, Name: s.opts.Name}
	reply, err := Handshake(ctx, conn, hello)
	if err != nil {
		conn.Close()
		return nil, reply, err
	}
	if s.opts.Cluster != "" && reply.Cluster != s.opts.Cluster {
		conn.Close()
		return nil, reply, badRequest("hello: replica is of cluster %q, not %q", reply.Cluster, s.opts.Cluster)
	}
	return conn, reply, nil
}

// retryable reports whether a request may be sent again after a connection
// broke with its outcome unknown: doing it twice must equal doing it once.
func retryable(v Verb) bool {
	return v.IsRead() || v == VerbNop || v == VerbLeaseRenew
}

// do sends req and waits for its final response, failing over to another
// replica when the connection breaks: a request that was surely not sent,
// or is retryable, is sent again (at most once per address); any other
// fails with TIMEOUT, its outcome unknown. A store error comes back as the
// response's *fs.Error.
func (s *session) do(ctx context.Context, req *Request) (Response, error) {
	var lost *connLost
	for range len(s.addrs) + 1 {
		cc, err := s.conn(ctx)
		if err != nil {
			return Response{}, err
		}
		if req.Verb.IsRead() {
			req.MinRev = max(req.MinRev, s.seen.Load())
		}
		resp, err := cc.roundTrip(ctx, req)
		var ok bool
		if lost, ok = err.(*connLost); !ok { // roundTrip never wraps it
			if err == nil {
				err = resp.Error()
			}
			return resp, err
		}
		if lost.sent && !retryable(req.Verb) {
			return Response{}, &fs.Error{Kind: fs.KindTimeout, Path: req.Path,
				Detail: "outcome unknown: " + lost.Error()}
		}
	}
	return Response{}, &fs.Error{Kind: fs.KindUnavailable, Detail: lost.Error()}
}
