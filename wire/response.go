package wire

import (
	"math"
	"time"

	"github.com/doozerfs/doozerfs/fs"
)

// Response is one answer to a request. Its msgpack form is a map with
// one-byte keys, given after each field; only the fields that are set are
// sent. docs/protocol.md says which fields answer which verb.
type Response struct {
	Tag     uint32        // t: the request's tag; 0 for an error about the connection itself
	More    bool          // m: more responses follow for this tag (WATCH, SNAPSHOT)
	Err     *fs.Error     // e (kind), x (detail), p (path): nil on success
	Rev     int64         // r: writes: the new revision; reads: the revision read at; WATCH: covered through
	Body    []byte        // b: GET's body, or one SNAPSHOT chunk
	Stat    fs.Stat       // s: GET's and STAT's stat (sent when Stat.Type is not TypeNone)
	Entries []fs.DirEntry // d: GETDIR's entries, sorted by name
	Files   []File        // w: WALK's files, sorted by path
	Events  []fs.Event    // v: WAIT's event, or a batch of WATCH's events in revision order
	Lease   int64         // l: LEASE_GRANT's new lease id
	TTL     time.Duration // u: LEASE_GRANT's and LEASE_RENEW's time to live (nanoseconds on the wire)
	Members []Member      // M: MEMBERS' list
	Self    *Self         // S: SELF's answer
	Size    int64         // n: SNAPSHOT's total size in bytes, in its first response
}

// ErrorResponse returns the final response to tag that carries err,
// converted with AsError.
func ErrorResponse(tag uint32, err error) *Response {
	return &Response{Tag: tag, Err: AsError(err)}
}

// Error returns the response's error, or nil. The result is an error
// interface holding a *fs.Error, never a typed nil.
func (resp *Response) Error() error {
	if resp.Err == nil {
		return nil
	}
	return resp.Err
}

// AppendResponse appends resp to dst as a complete frame. It fails only if
// the payload would be over max bytes (≤ 0 means DefaultMaxFrame), with an
// *fs.Error of kind TOO_BIG; dst is then returned unchanged.
func AppendResponse(dst []byte, resp *Response, max int) ([]byte, error) {
	if max <= 0 {
		max = DefaultMaxFrame
	}
	b, start := beginFrame(dst)
	b = resp.appendMsgpack(b)
	return endFrame(b, start, max)
}

func (resp *Response) appendMsgpack(b []byte) []byte {
	b, start := openMap(b)
	n := 1 + errorFields(resp.Err)
	b = appendUint(appendKey(b, 't'), uint64(resp.Tag))
	b = fieldBool(b, &n, 'm', resp.More)
	if resp.Err != nil {
		b = appendError(b, resp.Err)
	}
	b = fieldInt(b, &n, 'r', resp.Rev)
	b = fieldBin(b, &n, 'b', resp.Body)
	if resp.Stat.Type != fs.TypeNone {
		n++
		b = appendStat(appendKey(b, 's'), &resp.Stat)
	}
	b = resp.appendLists(b, &n)
	b = fieldInt(b, &n, 'l', resp.Lease)
	b = fieldInt(b, &n, 'u', int64(resp.TTL))
	if resp.Self != nil {
		n++
		b = appendSelf(appendKey(b, 'S'), resp.Self)
	}
	b = fieldInt(b, &n, 'n', resp.Size)
	return closeMap(b, start, n)
}

// appendLists appends the response's arrays, each only if it is non-nil.
func (resp *Response) appendLists(b []byte, n *int) []byte {
	if resp.Entries != nil {
		*n++
		b = appendArrayLen(appendKey(b, 'd'), len(resp.Entries))
		for i := range resp.Entries {
			b = appendDirEntry(b, &resp.Entries[i])
		}
	}
	if resp.Files != nil {
		*n++
		b = appendArrayLen(appendKey(b, 'w'), len(resp.Files))
		for i := range resp.Files {
			b = appendFile(b, &resp.Files[i])
		}
	}
	if resp.Events != nil {
		*n++
		b = appendArrayLen(appendKey(b, 'v'), len(resp.Events))
		for i := range resp.Events {
			b = appendEvent(b, &resp.Events[i])
		}
	}
	if resp.Members != nil {
		*n++
		b = appendArrayLen(appendKey(b, 'M'), len(resp.Members))
		for i := range resp.Members {
			b = appendMember(b, &resp.Members[i])
		}
	}
	return b
}

// DecodeResponse decodes one response from a frame's payload into resp,
// overwriting all of it. resp does not alias frame afterwards. The error,
// if any, is an *fs.Error of kind BAD_REQUEST.
func DecodeResponse(frame []byte, resp *Response) error {
	*resp = Response{}
	r := reader{b: frame}
	var has, errHas uint32
	r.forEachField("response", func(k byte) bool {
		switch k {
		case 't':
			resp.Tag, has = uint32(r.intIn("t", 0, math.MaxUint32)), has|1
		case 'm':
			resp.More = r.bool("m")
		case 'e':
			errorOf(&resp.Err).Kind, errHas = fs.Kind(r.intIn("e", 0, math.MaxInt32)), errHas|1
		case 'x':
			errorOf(&resp.Err).Detail, errHas = r.str("x"), errHas|2
		case 'p':
			errorOf(&resp.Err).Path, errHas = r.str("p"), errHas|2
		default:
			return resp.decodeResult(&r, k)
		}
		return true
	})
	r.end("response")
	r.require("response", has, 1, "t")
	if r.err == nil && errHas == 2 {
		r.fail("response: error detail without kind \"e\"")
	}
	return r.err
}

func (resp *Response) decodeResult(r *reader, k byte) bool {
	switch k {
	case 'r':
		resp.Rev = r.int("r")
	case 'b':
		resp.Body = r.bytes("b")
	case 's':
		r.stat(&resp.Stat)
	case 'd':
		resp.Entries = make([]fs.DirEntry, r.arrayOf("d", minDirEntry))
		for i := range resp.Entries {
			r.dirEntry(&resp.Entries[i])
		}
	case 'w':
		resp.Files = make([]File, r.arrayOf("w", minFile))
		for i := range resp.Files {
			r.file(&resp.Files[i])
		}
	case 'v':
		resp.Events = r.events()
	case 'l':
		resp.Lease = r.int("l")
	case 'u':
		resp.TTL = time.Duration(r.int("u"))
	case 'M':
		resp.Members = make([]Member, r.arrayOf("M", minMember))
		for i := range resp.Members {
			r.member(&resp.Members[i])
		}
	case 'S':
		resp.Self = new(Self)
		r.self(resp.Self)
	case 'n':
		resp.Size = r.int("n")
	default:
		return false
	}
	return true
}
