package fs

import (
	"encoding/binary"
	"math"
)

// mutationVersion is the first byte of every encoded Mutation. A decoder
// refuses versions it does not know.
const mutationVersion = 1

// The flags byte of an encoded Mutation.
const flagSystem = 1 << 0

// MarshalBinary encodes m compactly; see docs/data-model.md, "Mutation
// encoding". It never fails.
func (m *Mutation) MarshalBinary() ([]byte, error) {
	size := 4 + 3*binary.MaxVarintLen64 + binary.MaxVarintLen64
	for i := range m.Ops {
		o := &m.Ops[i]
		size += 1 + 4*binary.MaxVarintLen64 + len(o.Path) + len(o.Body)
	}
	b := make([]byte, 0, size)
	b = append(b, mutationVersion, byte(m.Kind))
	var flags byte
	if m.System {
		flags |= flagSystem
	}
	b = append(b, flags)
	b = binary.AppendVarint(b, m.Time)
	b = binary.AppendVarint(b, m.Lease)
	b = binary.AppendVarint(b, m.TTL)
	b = binary.AppendUvarint(b, uint64(len(m.Ops)))
	for i := range m.Ops {
		o := &m.Ops[i]
		b = append(b, byte(o.Kind))
		b = binary.AppendVarint(b, o.Rev)
		b = binary.AppendVarint(b, o.Lease)
		b = binary.AppendUvarint(b, uint64(len(o.Path)))
		b = append(b, o.Path...)
		b = binary.AppendUvarint(b, uint64(len(o.Body)))
		b = append(b, o.Body...)
	}
	return b, nil
}

// minOpSize is the fewest bytes an encoded Op takes: kind, rev, lease and
// two lengths of one byte each.
const minOpSize = 5

// UnmarshalBinary decodes b, which may be hostile, into m. Anything but a
// complete, well-formed encoding of a known version is BAD_REQUEST; no
// length field makes it allocate more than b's size. It copies what it
// keeps, so b may be reused. Paths and kinds are not checked here: Apply
// rejects what it cannot apply.
func (m *Mutation) UnmarshalBinary(b []byte) error {
	d := decoder{b: b}
	if v := d.byte(); d.err == nil && v != mutationVersion {
		return Errorf(KindBadRequest, "", "mutation: unknown encoding version %d", v)
	}
	out := Mutation{Kind: MutationKind(d.byte())}
	flags := d.byte()
	if d.err == nil && flags&^flagSystem != 0 {
		return Errorf(KindBadRequest, "", "mutation: unknown flags %#x", flags)
	}
	out.System = flags&flagSystem != 0
	out.Time = d.varint()
	out.Lease = d.varint()
	out.TTL = d.varint()
	n := d.uvarint()
	if d.err == nil && n > uint64(len(d.b)/minOpSize) {
		return Errorf(KindBadRequest, "", "mutation: %d ops cannot fit in %d bytes", n, len(d.b))
	}
	if n > 0 && d.err == nil {
		out.Ops = make([]Op, n)
		for i := range out.Ops {
			o := &out.Ops[i]
			o.Kind = OpKind(d.byte())
			o.Rev = d.varint()
			o.Lease = d.varint()
			o.Path = string(d.bytes())
			if body := d.bytes(); len(body) > 0 {
				o.Body = append([]byte(nil), body...)
			}
		}
	}
	if d.err == nil && len(d.b) > 0 {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return d.err
	}
	*m = out
	return nil
}

// A decoder reads fields from a byte slice, remembering the first error;
// after an error every read returns zero.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = &Error{Kind: KindBadRequest, Detail: "mutation: " + what}
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) == 0 {
		d.fail("truncated")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad length")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// bytes reads a length and that many bytes, which alias d's input.
func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) || n > math.MaxInt32 {
		d.fail("length past the end")
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}
