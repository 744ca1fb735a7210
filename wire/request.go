package wire

import (
	"math"
	"time"

	"github.com/doozerfs/doozerfs/fs"
)

// Request is one client request. Its msgpack form is a map with one-byte
// keys, given after each field; docs/protocol.md says which fields each
// verb uses and which it requires. Fields a verb does not use are ignored.
type Request struct {
	Tag        uint32        // t: chosen by the client, ≥ 1, unique among its requests in flight
	Verb       Verb          // v: what to do
	Path       string        // p: the path, or the glob for WALK, WAIT and WATCH
	Rev        int64         // r: the revision to read at, wait from, or condition a write on
	Body       []byte        // b: SET's new body
	Ops        []fs.Op       // o: TXN's operations
	Lease      int64         // l: SET's lease, or the lease of LEASE_RENEW and LEASE_REVOKE
	TTL        time.Duration // u: LEASE_GRANT's time to live (nanoseconds on the wire)
	MinRev     int64         // m: reads: answer only once the replica has applied at least this revision
	Consistent bool          // c: reads: linearizable (confirmed through the leader)
	Other      uint32        // x: CANCEL: the tag of the request to end
}

// Field bits of a Request, in the order of reqKeys.
const (
	rqTag = 1 << iota
	rqVerb
	rqPath
	rqRev
	rqBody
	rqOps
	rqLease
	rqTTL
	rqMinRev
	rqConsistent
	rqOther
)

const reqKeys = "tvprbolumcx"

// reqRequired lists the fields each verb must carry besides t and v.
var reqRequired = [...]uint32{
	VerbGet:         rqPath,
	VerbSet:         rqPath | rqRev,
	VerbDel:         rqPath | rqRev,
	VerbMkdir:       rqPath | rqRev,
	VerbTxn:         rqOps,
	VerbStat:        rqPath,
	VerbGetDir:      rqPath,
	VerbWalk:        rqPath,
	VerbWait:        rqPath | rqRev,
	VerbWatch:       rqPath | rqRev,
	VerbCancel:      rqOther,
	VerbLeaseGrant:  rqTTL,
	VerbLeaseRenew:  rqLease,
	VerbLeaseRevoke: rqLease,
	VerbSnapshot:    0,
	VerbRemove:      rqPath,
}

// AppendRequest appends req to dst as a complete frame (length prefix and
// payload). It fails only if the payload would be over max bytes (≤ 0
// means DefaultMaxFrame), with an *fs.Error of kind TOO_BIG; dst is then
// returned unchanged.
func AppendRequest(dst []byte, req *Request, max int) ([]byte, error) {
	if max <= 0 {
		max = DefaultMaxFrame
	}
	b, start := beginFrame(dst)
	b = req.appendMsgpack(b)
	return endFrame(b, start, max)
}

// appendMsgpack appends the request's msgpack map. The fields each verb
// requires are always written, even when zero; others only when non-zero.
func (req *Request) appendMsgpack(b []byte) []byte {
	var need uint32
	if req.Verb.Valid() {
		need = reqRequired[req.Verb]
	}
	b, start := openMap(b)
	n := 2
	b = appendUint(appendKey(b, 't'), uint64(req.Tag))
	b = appendUint(appendKey(b, 'v'), uint64(req.Verb))
	if req.Path != "" || need&rqPath != 0 {
		n++
		b = appendStr(appendKey(b, 'p'), req.Path)
	}
	if req.Rev != 0 || need&rqRev != 0 {
		n++
		b = appendInt(appendKey(b, 'r'), req.Rev)
	}
	b = fieldBin(b, &n, 'b', req.Body)
	if req.Ops != nil || need&rqOps != 0 {
		n++
		b = appendArrayLen(appendKey(b, 'o'), len(req.Ops))
		for i := range req.Ops {
			b = appendOp(b, &req.Ops[i])
		}
	}
	if req.Lease != 0 || need&rqLease != 0 {
		n++
		b = appendInt(appendKey(b, 'l'), req.Lease)
	}
	if req.TTL != 0 || need&rqTTL != 0 {
		n++
		b = appendInt(appendKey(b, 'u'), int64(req.TTL))
	}
	b = fieldInt(b, &n, 'm', req.MinRev)
	b = fieldBool(b, &n, 'c', req.Consistent)
	if req.Other != 0 || need&rqOther != 0 {
		n++
		b = appendUint(appendKey(b, 'x'), uint64(req.Other))
	}
	return closeMap(b, start, n)
}

// DecodeRequest decodes one request from a frame's payload into req,
// overwriting all of it. req does not alias frame afterwards.
//
// The error, if any, is an *fs.Error: UNKNOWN_VERB for a verb this version
// does not know, BAD_REQUEST for anything else (malformed msgpack, a field of
// the wrong type, a missing required field, a value out of range). Even then
// req.Tag holds the request's tag if one could be read, so the server can
// answer it; a tag of 0 means the frame could not be attributed to a request.
func DecodeRequest(frame []byte, req *Request) error {
	*req = Request{}
	r := reader{b: frame}
	has := req.decodeFields(&r)
	r.end("request")
	if r.err == nil {
		r.err = req.check(has)
	}
	if r.err != nil {
		if has&rqTag == 0 || req.Tag == 0 {
			req.Tag = findTag(frame)
		}
		return r.err
	}
	return nil
}

func (req *Request) decodeFields(r *reader) uint32 {
	var has uint32
	r.forEachField("request", func(k byte) bool {
		switch k {
		case 't':
			req.Tag, has = uint32(r.intIn("t", 0, math.MaxUint32)), has|rqTag
		case 'v':
			req.Verb, has = Verb(r.intIn("v", 0, math.MaxUint8)), has|rqVerb
		case 'p':
			req.Path, has = r.str("p"), has|rqPath
		case 'r':
			req.Rev, has = r.int("r"), has|rqRev
		case 'b':
			req.Body, has = r.bytes("b"), has|rqBody
		case 'o':
			req.Ops, has = r.ops(), has|rqOps
		case 'l':
			req.Lease, has = r.int("l"), has|rqLease
		case 'u':
			req.TTL, has = time.Duration(r.int("u")), has|rqTTL
		case 'm':
			req.MinRev, has = r.int("m"), has|rqMinRev
		case 'c':
			req.Consistent, has = r.bool("c"), has|rqConsistent
		case 'x':
			req.Other, has = uint32(r.intIn("x", 0, math.MaxUint32)), has|rqOther
		default:
			return false
		}
		return true
	})
	return has
}

func (r *reader) ops() []fs.Op {
	ops := make([]fs.Op, r.arrayOf("o", minOp))
	for i := range ops {
		r.op(&ops[i])
	}
	return ops
}

// check applies the rules that do not depend on one field alone.
func (req *Request) check(has uint32) error {
	switch {
	case has&rqTag == 0:
		return badRequest("request: missing field \"t\"")
	case req.Tag == 0:
		return badRequest("request: tag 0 is reserved")
	case has&rqVerb == 0:
		return &fs.Error{Kind: fs.KindUnknownVerb, Detail: "request: missing verb"}
	case !req.Verb.Valid():
		return &fs.Error{Kind: fs.KindUnknownVerb, Detail: req.Verb.String()}
	}
	r := reader{}
	r.require(req.Verb.String(), has, reqRequired[req.Verb], reqKeys)
	if r.err != nil {
		return r.err
	}
	switch {
	case req.Verb == VerbTxn && len(req.Ops) == 0:
		return badRequest("TXN: no operations")
	case req.Verb == VerbLeaseGrant && req.TTL <= 0:
		return badRequest("LEASE_GRANT: ttl %d is not positive", req.TTL)
	case req.Verb == VerbCancel && req.Other == 0:
		return badRequest("CANCEL: tag 0 is reserved")
	}
	return nil
}

// findTag looks for a usable tag in a frame that failed to decode: the top
// level must be a map and its "t" entry an integer in range. It returns 0
// if there is none.
func findTag(frame []byte) uint32 {
	r := reader{b: frame}
	var tag uint32
	for n := r.mapLen("request"); n > 0 && r.err == nil; n-- {
		if k := r.key(); k == 't' && r.err == nil {
			save := r.i
			if v := r.intIn("t", 1, math.MaxUint32); r.err == nil {
				tag = uint32(v)
			}
			r.err, r.i = nil, save
		}
		r.skip(skipDepth)
	}
	return tag
}
