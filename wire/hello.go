package wire

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/doozerfs/doozerfs/fs"
)

// ProtocolVersion is the version of this protocol, sent in HELLO.
const ProtocolVersion = 1

// ConnKind says what a connection carries after HELLO.
type ConnKind string

// Connection kinds. Client connections carry Requests and Responses; peer
// and gossip connections carry the replica's own messages (see AppendMsg).
const (
	ConnClient ConnKind = "client"
	ConnPeer   ConnKind = "peer"
	ConnGossip ConnKind = "gossip"
)

// Hello is the first frame of every connection, sent by the side that dialled.
type Hello struct {
	Version int      // v: ProtocolVersion
	Kind    ConnKind // k: what the connection carries
	Cluster string   // c: the cluster the sender expects; clients may leave it empty (any)
	Token   string   // s: the secret, if any
	Name    string   // n: the sender's name (a replica's name, or a client's description); optional
}

// Access is what a connection may do, decided from HELLO's token.
type Access uint8

// Access levels. On the wire: "ro" and "rw".
const (
	AccessNone  Access = 0
	AccessRead  Access = 1
	AccessWrite Access = 2 // read and write
)

func (a Access) String() string {
	switch a {
	case AccessRead:
		return "ro"
	case AccessWrite:
		return "rw"
	}
	return "none"
}

// HelloReply is the server's answer to Hello. On refusal Err is set, the
// other fields may be empty, and the server closes the connection.
type HelloReply struct {
	Version int       // v: the server's ProtocolVersion
	Name    string    // n: the replica's name
	ID      uint64    // i: the replica's id in consensus
	Cluster string    // c: the cluster's name
	Access  Access    // a: "ro" or "rw"
	Err     *fs.Error // e (kind), x (detail): why the connection was refused
}

// AppendHello appends h to dst as a complete frame.
func AppendHello(dst []byte, h *Hello) []byte {
	b, start := beginFrame(dst)
	b, m := openMap(b)
	n := 2
	b = appendInt(appendKey(b, 'v'), int64(h.Version))
	b = appendStr(appendKey(b, 'k'), string(h.Kind))
	b = fieldStr(b, &n, 'c', h.Cluster)
	b = fieldStr(b, &n, 's', h.Token)
	b = fieldStr(b, &n, 'n', h.Name)
	b = closeMap(b, m, n)
	b, _ = endFrame(b, start, math.MaxInt32)
	return b
}

// DecodeHello decodes a HELLO frame's payload. The error, if any, is an
// *fs.Error of kind BAD_REQUEST. It does not judge the values; see
// Policy.Check.
func DecodeHello(frame []byte, h *Hello) error {
	*h = Hello{}
	r := reader{b: frame}
	var has uint32
	r.forEachField("hello", func(k byte) bool {
		switch k {
		case 'v':
			h.Version, has = int(r.intIn("v", 0, math.MaxInt32)), has|1
		case 'k':
			h.Kind, has = ConnKind(r.str("k")), has|2
		case 'c':
			h.Cluster = r.str("c")
		case 's':
			h.Token = r.str("s")
		case 'n':
			h.Name = r.str("n")
		default:
			return false
		}
		return true
	})
	r.end("hello")
	r.require("hello", has, 3, "vk")
	return r.err
}

// AppendHelloReply appends h to dst as a complete frame.
func AppendHelloReply(dst []byte, h *HelloReply) []byte {
	b, start := beginFrame(dst)
	b, m := openMap(b)
	n := 1
	b = appendInt(appendKey(b, 'v'), int64(h.Version))
	b = fieldStr(b, &n, 'n', h.Name)
	if h.ID != 0 {
		n++
		b = appendUint(appendKey(b, 'i'), h.ID)
	}
	b = fieldStr(b, &n, 'c', h.Cluster)
	if h.Access != AccessNone {
		n++
		b = appendStr(appendKey(b, 'a'), h.Access.String())
	}
	if h.Err != nil {
		e := fs.Error{Kind: h.Err.Kind, Detail: h.Err.Detail}
		n += errorFields(&e)
		b = appendError(b, &e)
	}
	b = closeMap(b, m, n)
	b, _ = endFrame(b, start, math.MaxInt32)
	return b
}

// DecodeHelloReply decodes a HELLO reply frame's payload.
func DecodeHelloReply(frame []byte, h *HelloReply) error {
	*h = HelloReply{}
	r := reader{b: frame}
	var has uint32
	r.forEachField("hello reply", func(k byte) bool {
		switch k {
		case 'v':
			h.Version, has = int(r.intIn("v", 0, math.MaxInt32)), has|1
		case 'n':
			h.Name = r.str("n")
		case 'i':
			h.ID = r.uint64("i")
		case 'c':
			h.Cluster = r.str("c")
		case 'a':
			h.Access = parseAccess(r.str("a"))
		case 'e':
			errorOf(&h.Err).Kind = fs.Kind(r.intIn("e", 0, math.MaxInt32))
		case 'x':
			errorOf(&h.Err).Detail = r.str("x")
		default:
			return false
		}
		return true
	})
	r.end("hello reply")
	r.require("hello reply", has, 1, "v")
	return r.err
}

func parseAccess(s string) Access {
	switch s {
	case "ro":
		return AccessRead
	case "rw":
		return AccessWrite
	}
	return AccessNone
}

// Policy is how a server judges HELLO. Set it up before serving; it is
// read-only afterwards and safe for concurrent use.
type Policy struct {
	Cluster  string // this cluster's name; a HELLO naming another is refused
	Secret   string // read-write token; "" means no token is needed to read and write
	ROSecret string // read-only token (clients only); used only when Secret is set
	Name     string // this replica's name, sent in the reply
	ID       uint64 // this replica's id, sent in the reply
}

// Check judges h. It returns the access granted, or an *fs.Error:
// BAD_REQUEST for a wrong version, an unknown kind or another cluster;
// PERMISSION for a token that matches no secret (peers and gossip need the
// read-write secret). Tokens are compared in constant time.
func (p *Policy) Check(h *Hello) (Access, *fs.Error) {
	switch {
	case h.Version != ProtocolVersion:
		return AccessNone, badRequest("hello: protocol version %d not supported (this server speaks %d)",
			h.Version, ProtocolVersion)
	case h.Kind != ConnClient && h.Kind != ConnPeer && h.Kind != ConnGossip:
		return AccessNone, badRequest("hello: unknown connection kind %q", h.Kind)
	case h.Cluster != p.Cluster && (h.Cluster != "" || h.Kind != ConnClient):
		return AccessNone, badRequest("hello: wrong cluster %q", h.Cluster)
	}
	switch {
	case p.Secret == "" || tokenEqual(h.Token, p.Secret):
		return AccessWrite, nil
	case h.Kind == ConnClient && p.ROSecret != "" && tokenEqual(h.Token, p.ROSecret):
		return AccessRead, nil
	}
	return AccessNone, &fs.Error{Kind: fs.KindPermission, Detail: "hello: bad token"}
}

// tokenEqual compares two secrets in time that depends on neither.
func tokenEqual(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}

// Accept runs the server's side of HELLO on a new connection: it reads the
// first frame, judges it with p, and replies. It returns the Hello and the
// access granted, or an error, after which the caller closes c: an I/O or
// frame error, a BAD_REQUEST *fs.Error for an undecodable HELLO, or the
// *fs.Error from Check (the reply carrying it has been written). Bound the
// exchange with a deadline on c.NetConn().
func Accept(c *Conn, p *Policy) (Hello, Access, error) {
	var h Hello
	frame, err := c.ReadFrame()
	if err != nil {
		return h, AccessNone, err
	}
	reply := HelloReply{Version: ProtocolVersion}
	if err := DecodeHello(frame, &h); err != nil {
		reply.Err = AsError(err)
		writeHelloReply(c, &reply)
		return h, AccessNone, err
	}
	access, ferr := p.Check(&h)
	if ferr != nil {
		reply.Err = ferr
		writeHelloReply(c, &reply)
		return h, AccessNone, ferr
	}
	reply.Name, reply.ID, reply.Cluster, reply.Access = p.Name, p.ID, p.Cluster, access
	if err := writeHelloReply(c, &reply); err != nil {
		return h, AccessNone, err
	}
	return h, access, nil
}

func writeHelloReply(c *Conn, reply *HelloReply) error {
	return c.write(nil, func(b []byte) ([]byte, error) { return AppendHelloReply(b, reply), nil })
}

// Handshake runs the dialling side of HELLO on a new connection: it sends h
// (its Version is set to ProtocolVersion) and reads the reply. ctx bounds
// the exchange. A refusal comes back as the reply's *fs.Error.
func Handshake(ctx context.Context, c *Conn, h Hello) (HelloReply, error) {
	h.Version = ProtocolVersion
	nc := c.NetConn()
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
		defer nc.SetDeadline(time.Time{})
	}
	// Ending ctx unblocks the exchange by putting the deadline in the past.
	// If that has begun, wait for it and fail: the connection is spoilt.
	interruptedc := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		nc.SetDeadline(time.Unix(1, 0))
		close(interruptedc)
	})
	reply, err := exchangeHello(c, &h)
	if !stop() {
		<-interruptedc
		if err == nil {
			err = ctx.Err()
		}
	}
	if err != nil {
		return reply, helloErr(ctx, err)
	}
	return reply, nil
}

func exchangeHello(c *Conn, h *Hello) (HelloReply, error) {
	var reply HelloReply
	err := c.write(nil, func(b []byte) ([]byte, error) { return AppendHello(b, h), nil })
	if err != nil {
		return reply, err
	}
	frame, err := c.ReadFrame()
	if err != nil {
		return reply, err
	}
	if err := DecodeHelloReply(frame, &reply); err != nil {
		return reply, err
	}
	if reply.Err != nil {
		return reply, reply.Err
	}
	if reply.Version != ProtocolVersion {
		return reply, badRequest("hello: server speaks protocol version %d, not %d", reply.Version, ProtocolVersion)
	}
	return reply, nil
}

func helloErr(ctx context.Context, err error) error {
	var fe *fs.Error
	if errors.As(err, &fe) {
		return err
	}
	if ctx.Err() != nil {
		return fmt.Errorf("hello: %w", ctx.Err())
	}
	return fmt.Errorf("hello: %w", err)
}
