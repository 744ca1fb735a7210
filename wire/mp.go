package wire

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/doozerfs/doozerfs/fs"
)

// This file holds the msgpack primitives that the fixed messages (HELLO,
// Request, Response) are encoded and decoded with. They are written here,
// over byte slices, rather than through msgpack.Encoder/Decoder, for three
// reasons: decoding is strict (a field of the wrong type is an error, not a
// silent zero), every length is checked against the bytes that are actually
// left before anything is allocated, and the hot path makes no interface
// calls and no allocations beyond the strings and bodies it returns. The
// bytes are plain msgpack; tests check them against vmihailenco/msgpack.

// msgpack type codes.
const (
	mpNil      = 0xc0
	mpFalse    = 0xc2
	mpTrue     = 0xc3
	mpBin8     = 0xc4
	mpBin16    = 0xc5
	mpBin32    = 0xc6
	mpExt8     = 0xc7
	mpExt16    = 0xc8
	mpExt32    = 0xc9
	mpFloat32  = 0xca
	mpFloat64  = 0xcb
	mpUint8    = 0xcc
	mpUint16   = 0xcd
	mpUint32   = 0xce
	mpUint64   = 0xcf
	mpInt8     = 0xd0
	mpInt16    = 0xd1
	mpInt32    = 0xd2
	mpInt64    = 0xd3
	mpFixExt1  = 0xd4
	mpFixExt2  = 0xd5
	mpFixExt4  = 0xd6
	mpFixExt8  = 0xd7
	mpFixExt16 = 0xd8
	mpStr8     = 0xd9
	mpStr16    = 0xda
	mpStr32    = 0xdb
	mpArray16  = 0xdc
	mpArray32  = 0xdd
	mpMap16    = 0xde
	mpMap32    = 0xdf
)

// MaxDepth is how deeply msgpack containers may nest inside one frame.
// Deeper input is rejected before it is decoded, so hostile nesting can
// neither exhaust the stack nor make the decoder allocate.
const MaxDepth = 32

// --- encoding: append the msgpack form of a value to b ---

func appendMapLen(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, 0x80|byte(n))
	case n <= math.MaxUint16:
		return append(b, mpMap16, byte(n>>8), byte(n))
	}
	return binary.BigEndian.AppendUint32(append(b, mpMap32), uint32(n))
}

func appendArrayLen(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, 0x90|byte(n))
	case n <= math.MaxUint16:
		return append(b, mpArray16, byte(n>>8), byte(n))
	}
	return binary.BigEndian.AppendUint32(append(b, mpArray32), uint32(n))
}

func appendStr(b []byte, s string) []byte {
	n := len(s)
	switch {
	case n < 32:
		b = append(b, 0xa0|byte(n))
	case n <= math.MaxUint8:
		b = append(b, mpStr8, byte(n))
	case n <= math.MaxUint16:
		b = append(b, mpStr16, byte(n>>8), byte(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, mpStr32), uint32(n))
	}
	return append(b, s...)
}

func appendBin(b []byte, p []byte) []byte {
	n := len(p)
	switch {
	case n <= math.MaxUint8:
		b = append(b, mpBin8, byte(n))
	case n <= math.MaxUint16:
		b = append(b, mpBin16, byte(n>>8), byte(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, mpBin32), uint32(n))
	}
	return append(b, p...)
}

func appendUint(b []byte, v uint64) []byte {
	switch {
	case v <= 0x7f:
		return append(b, byte(v))
	case v <= math.MaxUint8:
		return append(b, mpUint8, byte(v))
	case v <= math.MaxUint16:
		return append(b, mpUint16, byte(v>>8), byte(v))
	case v <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, mpUint32), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(b, mpUint64), v)
}

func appendInt(b []byte, v int64) []byte {
	switch {
	case v >= 0:
		return appendUint(b, uint64(v))
	case v >= -32:
		return append(b, byte(v))
	case v >= math.MinInt8:
		return append(b, mpInt8, byte(v))
	case v >= math.MinInt16:
		return append(b, mpInt16, byte(v>>8), byte(v))
	case v >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(b, mpInt32), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(b, mpInt64), uint64(v))
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, mpTrue)
	}
	return append(b, mpFalse)
}

// appendKey appends a one-byte map key.
func appendKey(b []byte, k byte) []byte { return append(b, 0xa1, k) }

// --- decoding: a strict reader over one frame ---

// reader decodes msgpack from b. The first error sticks: every later call
// returns zero values, and the caller checks err once at the end. Nothing
// is allocated except the strings and byte slices a caller asks for.
type reader struct {
	b   []byte
	i   int
	err error
}

func (r *reader) left() int { return len(r.b) - r.i }

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = &fs.Error{Kind: fs.KindBadRequest, Detail: fmt.Sprintf(format, args...)}
	}
}

// peek returns the next type code without consuming it.
func (r *reader) peek() byte {
	if r.err != nil {
		return 0
	}
	if r.i >= len(r.b) {
		r.fail("truncated at byte %d", r.i)
		return 0
	}
	return r.b[r.i]
}

// take consumes n bytes and returns them (aliasing the frame).
func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > r.left() {
		r.fail("truncated at byte %d: need %d bytes, have %d", r.i, n, r.left())
		return nil
	}
	p := r.b[r.i : r.i+n : r.i+n]
	r.i += n
	return p
}

func (r *reader) uintN(n int) uint64 {
	p := r.take(n)
	switch n {
	case 1:
		if p != nil {
			return uint64(p[0])
		}
	case 2:
		if p != nil {
			return uint64(binary.BigEndian.Uint16(p))
		}
	case 4:
		if p != nil {
			return uint64(binary.BigEndian.Uint32(p))
		}
	case 8:
		if p != nil {
			return binary.BigEndian.Uint64(p)
		}
	}
	return 0
}

// takeNil consumes a nil and reports whether there was one.
func (r *reader) takeNil() bool {
	if r.err == nil && r.i < len(r.b) && r.b[r.i] == mpNil {
		r.i++
		return true
	}
	return false
}

// count checks a container's element count against the bytes left: every
// element takes at least one byte (a map entry two), so a larger count is a
// lie and is rejected before anything is sized by it.
func (r *reader) count(n uint64, per int, what string) int {
	if r.err != nil {
		return 0
	}
	if n > uint64(r.left()/per) {
		r.fail("%s of %d elements in %d bytes", what, n, r.left())
		return 0
	}
	return int(n)
}

func (r *reader) mapLen(what string) int {
	c := r.peek()
	switch {
	case r.err != nil:
		return 0
	case c&0xf0 == 0x80:
		r.i++
		return r.count(uint64(c&0x0f), 2, what)
	case c == mpMap16:
		r.i++
		return r.count(r.uintN(2), 2, what)
	case c == mpMap32:
		r.i++
		return r.count(r.uintN(4), 2, what)
	}
	r.fail("%s: want a map, got %s", what, codeName(c))
	return 0
}

func (r *reader) arrayLen(what string) int { return r.arrayOf(what, 1) }

// arrayOf reads an array header whose elements each take at least per
// bytes, so that a hostile count can make the decoder allocate at most a
// small multiple of the frame's size.
func (r *reader) arrayOf(what string, per int) int {
	c := r.peek()
	switch {
	case r.err != nil:
		return 0
	case c&0xf0 == 0x90:
		r.i++
		return r.count(uint64(c&0x0f), per, what)
	case c == mpArray16:
		r.i++
		return r.count(r.uintN(2), per, what)
	case c == mpArray32:
		r.i++
		return r.count(r.uintN(4), per, what)
	}
	r.fail("%s: want an array, got %s", what, codeName(c))
	return 0
}

// raw reads a str or bin value and returns its bytes, aliasing the frame.
// The two are interchangeable everywhere in this protocol.
func (r *reader) raw(what string) []byte {
	c := r.peek()
	var n uint64
	switch {
	case r.err != nil:
		return nil
	case c&0xe0 == 0xa0:
		r.i++
		n = uint64(c & 0x1f)
	case c == mpStr8 || c == mpBin8:
		r.i++
		n = r.uintN(1)
	case c == mpStr16 || c == mpBin16:
		r.i++
		n = r.uintN(2)
	case c == mpStr32 || c == mpBin32:
		r.i++
		n = r.uintN(4)
	default:
		r.fail("%s: want a string or bytes, got %s", what, codeName(c))
		return nil
	}
	if n > uint64(r.left()) {
		r.fail("%s: %d bytes claimed, %d left", what, n, r.left())
		return nil
	}
	return r.take(int(n))
}

func (r *reader) str(what string) string { return string(r.raw(what)) }

// bytes returns a copy of a str or bin value; an empty value gives an
// empty, non-nil slice.
func (r *reader) bytes(what string) []byte {
	p := r.raw(what)
	if r.err != nil {
		return nil
	}
	return append(make([]byte, 0, len(p)), p...)
}

// key reads a map key. Keys of the fixed messages are one byte; a longer
// key is returned as 0 and its value is skipped by the caller.
func (r *reader) key() byte {
	k := r.raw("map key")
	if len(k) != 1 {
		return 0
	}
	return k[0]
}

func (r *reader) int(what string) int64 {
	c := r.peek()
	switch {
	case r.err != nil:
		return 0
	case c <= 0x7f:
		r.i++
		return int64(c)
	case c >= 0xe0:
		r.i++
		return int64(int8(c))
	}
	r.i++
	switch c {
	case mpUint8:
		return int64(r.uintN(1))
	case mpUint16:
		return int64(r.uintN(2))
	case mpUint32:
		return int64(r.uintN(4))
	case mpUint64:
		v := r.uintN(8)
		if v > math.MaxInt64 {
			r.fail("%s: %d out of range", what, v)
			return 0
		}
		return int64(v)
	case mpInt8:
		return int64(int8(r.uintN(1)))
	case mpInt16:
		return int64(int16(r.uintN(2)))
	case mpInt32:
		return int64(int32(r.uintN(4)))
	case mpInt64:
		return int64(r.uintN(8))
	}
	r.i--
	r.fail("%s: want an integer, got %s", what, codeName(c))
	return 0
}

// intIn reads an integer and checks lo ≤ v ≤ hi.
func (r *reader) intIn(what string, lo, hi int64) int64 {
	v := r.int(what)
	if r.err == nil && (v < lo || v > hi) {
		r.fail("%s: %d out of range [%d, %d]", what, v, lo, hi)
		return 0
	}
	return v
}

func (r *reader) uint64(what string) uint64 {
	c := r.peek()
	if r.err == nil && c == mpUint64 {
		r.i++
		return r.uintN(8)
	}
	return uint64(r.intIn(what, 0, math.MaxInt64))
}

func (r *reader) bool(what string) bool {
	switch c := r.peek(); {
	case r.err != nil:
		return false
	case c == mpTrue:
		r.i++
		return true
	case c == mpFalse:
		r.i++
		return false
	default:
		r.fail("%s: want a bool, got %s", what, codeName(c))
		return false
	}
}

// skip consumes one value of any type, which may nest up to depth more
// levels. It is how unknown fields are ignored.
func (r *reader) skip(depth int) {
	c := r.peek()
	if r.err != nil {
		return
	}
	if depth <= 0 {
		r.fail("values nested deeper than %d", MaxDepth)
		return
	}
	switch {
	case c <= 0x7f || c >= 0xe0 || c == mpNil || c == mpFalse || c == mpTrue:
		r.i++
	case c&0xf0 == 0x80 || c == mpMap16 || c == mpMap32:
		for n := r.mapLen("map") * 2; n > 0 && r.err == nil; n-- {
			r.skip(depth - 1)
		}
	case c&0xf0 == 0x90 || c == mpArray16 || c == mpArray32:
		for n := r.arrayLen("array"); n > 0 && r.err == nil; n-- {
			r.skip(depth - 1)
		}
	case c&0xe0 == 0xa0, c >= mpStr8 && c <= mpStr32, c >= mpBin8 && c <= mpBin32:
		r.raw("value")
	default:
		r.skipFixed(c)
	}
}

// skipFixed consumes a number or an extension value.
func (r *reader) skipFixed(c byte) {
	r.i++
	switch c {
	case mpUint8, mpInt8:
		r.take(1)
	case mpUint16, mpInt16:
		r.take(2)
	case mpUint32, mpInt32, mpFloat32:
		r.take(4)
	case mpUint64, mpInt64, mpFloat64:
		r.take(8)
	case mpFixExt1, mpFixExt2, mpFixExt4, mpFixExt8, mpFixExt16:
		r.take(1 + 1<<(c-mpFixExt1))
	case mpExt8:
		r.take(1 + int(r.uintN(1)))
	case mpExt16:
		r.take(1 + int(r.uintN(2)))
	case mpExt32:
		n := r.uintN(4)
		if n >= uint64(r.left()) {
			r.fail("extension of %d bytes claimed, %d left", n, r.left())
			return
		}
		r.take(1 + int(n))
	default:
		r.i--
		r.fail("invalid msgpack code 0x%02x at byte %d", c, r.i)
	}
}

// end checks that the whole frame was consumed.
func (r *reader) end(what string) {
	if r.err == nil && r.i != len(r.b) {
		r.fail("%s: %d bytes after the value", what, len(r.b)-r.i)
	}
}

// checkValue reports whether b holds exactly one well-formed msgpack value
// nested at most MaxDepth deep, without decoding it.
func checkValue(b []byte) error {
	r := reader{b: b}
	r.skip(MaxDepth)
	r.end("message")
	return r.err
}

func codeName(c byte) string {
	switch {
	case c <= 0x7f || c >= 0xe0 || (c >= mpUint8 && c <= mpInt64):
		return "an integer"
	case c&0xf0 == 0x80 || c == mpMap16 || c == mpMap32:
		return "a map"
	case c&0xf0 == 0x90 || c == mpArray16 || c == mpArray32:
		return "an array"
	case c&0xe0 == 0xa0 || (c >= mpStr8 && c <= mpStr32):
		return "a string"
	case c >= mpBin8 && c <= mpBin32:
		return "bytes"
	case c == mpNil:
		return "nil"
	case c == mpTrue || c == mpFalse:
		return "a bool"
	case c == mpFloat32 || c == mpFloat64:
		return "a float"
	case c == 0xc1:
		return "the invalid code 0xc1"
	}
	return "an extension"
}
