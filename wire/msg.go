package wire

import (
	"bytes"
	"sync"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/doozerfs/doozerfs/fs"
)

// Generic messages: peer and gossip connections carry frames of their own
// types after HELLO. AppendMsg and DecodeMsg encode any msgpack-able Go
// value with vmihailenco/msgpack (struct tags and all), inside the same
// frames and limits as the client protocol.

// appendBuf lets a msgpack.Encoder append to a byte slice.
type appendBuf struct{ b []byte }

func (a *appendBuf) Write(p []byte) (int, error) {
	a.b = append(a.b, p...)
	return len(p), nil
}

func (a *appendBuf) WriteByte(c byte) error {
	a.b = append(a.b, c)
	return nil
}

type msgEncoder struct {
	buf appendBuf
	enc *msgpack.Encoder
}

var msgEncoders = sync.Pool{New: func() any {
	e := &msgEncoder{}
	e.enc = msgpack.NewEncoder(&e.buf)
	e.enc.UseCompactInts(true)
	return e
}}

// AppendMsg appends v, encoded by msgpack.Marshal's rules with compact
// integers, to dst as a complete frame. It fails if v cannot be encoded, or
// with an *fs.Error of kind TOO_BIG if the payload would be over max bytes
// (≤ 0 means DefaultMaxFrame); dst is then returned unchanged.
func AppendMsg(dst []byte, v any, max int) ([]byte, error) {
	if max <= 0 {
		max = DefaultMaxFrame
	}
	e := msgEncoders.Get().(*msgEncoder)
	defer msgEncoders.Put(e)
	b, start := beginFrame(dst)
	e.buf.b = b
	err := e.enc.Encode(v)
	b, e.buf.b = e.buf.b, nil
	if err != nil {
		return b[:start], err
	}
	return endFrame(b, start, max)
}

// DecodeMsg decodes a frame's payload into v (a pointer) by msgpack's rules.
// Before decoding it checks that the payload is exactly one well-formed
// value nested at most MaxDepth deep whose every length fits in the bytes
// that are there, so hostile input cannot drive allocation or recursion.
// The error, if any, is an *fs.Error of kind BAD_REQUEST.
func DecodeMsg(frame []byte, v any) error {
	if err := checkValue(frame); err != nil {
		return err
	}
	d := msgpack.GetDecoder()
	defer msgpack.PutDecoder(d)
	d.Reset(bytes.NewReader(frame))
	if err := d.Decode(v); err != nil {
		return &fs.Error{Kind: fs.KindBadRequest, Detail: err.Error()}
	}
	return nil
}
