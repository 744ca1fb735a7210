package replica

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/doozerfs/doozerfs/consensus"
)

// WAL record types written by the replica (docs/storage.md §7).
const (
	recHardState  uint8 = 1 // consensus.HardState
	recEntry      uint8 = 2 // one accepted consensus.Entry
	recCheckpoint uint8 = 3 // a snapshot was saved: its slot and WAL index
)

// errShort reports a record or header that ends too early or holds a value
// out of range. CRCs catch torn and flipped bytes; this catches a record
// that is intact but not one this version understands.
var errShort = errors.New("replica: truncated or malformed record")

// enc appends the binary forms used on disk: unsigned varints, with byte
// strings and lists prefixed by their length.
type enc struct{ b []byte }

func (e *enc) u(v uint64)     { e.b = binary.AppendUvarint(e.b, v) }
func (e *enc) i(v int64)      { e.b = binary.AppendVarint(e.b, v) }
func (e *enc) byte(v uint8)   { e.b = append(e.b, v) }
func (e *enc) bytes(p []byte) { e.u(uint64(len(p))); e.b = append(e.b, p...) }
func (e *enc) ids(v []uint64) {
	e.u(uint64(len(v)))
	for _, x := range v {
		e.u(x)
	}
}
func (e *enc) membership(m consensus.Membership) { e.ids(m.Voters); e.ids(m.Learners) }
func (e *enc) config(c consensus.ConfigState) {
	e.membership(c.Members)
	e.u(c.Since)
	e.membership(c.Prev)
}

// dec reads what enc wrote. The first error sticks; every read after it
// returns zero.
type dec struct {
	b   []byte
	err error
}

func (d *dec) fail() {
	if d.err == nil {
		d.err = errShort
	}
	d.b = nil
}

func (d *dec) u() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) i() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) byte() uint8 {
	if len(d.b) < 1 {
		d.fail()
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

// count reads a length that must fit in what is left at per bytes each.
func (d *dec) count(per int) int {
	n := d.u()
	if n > uint64(len(d.b)/per) {
		d.fail()
		return 0
	}
	return int(n)
}

func (d *dec) bytes() []byte {
	n := d.count(1)
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

func (d *dec) ids() []uint64 {
	n := d.count(1)
	if n == 0 {
		return nil
	}
	v := make([]uint64, n)
	for i := range v {
		v[i] = d.u()
	}
	if !slices.IsSorted(v) {
		d.fail()
	}
	return v
}

func (d *dec) membership() consensus.Membership {
	return consensus.Membership{Voters: d.ids(), Learners: d.ids()}
}

func (d *dec) config() consensus.ConfigState {
	var c consensus.ConfigState
	c.Members = d.membership()
	c.Since = d.u()
	c.Prev = d.membership()
	return c
}

func (d *dec) end(what string) error {
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("replica: %d stray bytes after %s", len(d.b), what)
	}
	if d.err != nil && errors.Is(d.err, errShort) {
		return fmt.Errorf("replica: malformed %s", what)
	}
	return d.err
}

func encodeHardState(hs consensus.HardState) []byte {
	var e enc
	e.u(hs.Promised.Round)
	e.u(hs.Promised.Node)
	e.u(hs.Commit)
	e.u(hs.SeqCeiling)
	return e.b
}

func decodeHardState(b []byte) (consensus.HardState, error) {
	d := dec{b: b}
	var hs consensus.HardState
	hs.Promised.Round = d.u()
	hs.Promised.Node = d.u()
	hs.Commit = d.u()
	hs.SeqCeiling = d.u()
	return hs, d.end("hard state record")
}

func appendEntry(e *enc, x *consensus.Entry) {
	e.u(x.Slot)
	e.u(x.Ballot.Round)
	e.u(x.Ballot.Node)
	e.byte(uint8(x.Kind))
	switch x.Kind {
	case consensus.EntryValues:
		e.u(uint64(len(x.Values)))
		for _, v := range x.Values {
			e.u(v.ID.Node)
			e.u(v.ID.Seq)
			e.bytes(v.Data)
		}
	case consensus.EntryConfig:
		e.byte(uint8(x.Change.Type))
		e.u(x.Change.Node)
		e.u(x.Base)
		e.membership(x.Members)
	}
}

func encodeEntry(x *consensus.Entry) []byte {
	var e enc
	appendEntry(&e, x)
	return e.b
}

func readEntry(d *dec) consensus.Entry {
	var x consensus.Entry
	x.Slot = d.u()
	x.Ballot.Round = d.u()
	x.Ballot.Node = d.u()
	x.Kind = consensus.EntryKind(d.byte())
	switch x.Kind {
	case consensus.EntryNoop:
	case consensus.EntryValues:
		n := d.count(3)
		x.Values = make([]consensus.Value, n)
		for i := range x.Values {
			x.Values[i].ID.Node = d.u()
			x.Values[i].ID.Seq = d.u()
			x.Values[i].Data = d.bytes()
		}
	case consensus.EntryConfig:
		x.Change.Type = consensus.ConfChangeType(d.byte())
		x.Change.Node = d.u()
		x.Base = d.u()
		x.Members = d.membership()
	default:
		d.fail()
	}
	return x
}

func decodeEntry(b []byte) (consensus.Entry, error) {
	d := dec{b: b}
	x := readEntry(&d)
	return x, d.end("entry record")
}

func encodeCheckpoint(slot, index uint64) []byte {
	var e enc
	e.u(slot)
	e.u(index)
	return e.b
}

// Message flags, one byte.
const (
	msgReject = 1 << iota
	msgForce
)

// maxMsgEntries bounds the entries and values a decoded message may claim,
// on top of the bytes it has left.
const maxMsgEntries = 1 << 20

// encodeMessage appends the binary form of a consensus message
// (docs/protocol.md, "Peer connections").
func encodeMessage(dst []byte, m *consensus.Message) []byte {
	e := enc{b: dst}
	e.byte(uint8(m.Type))
	e.u(m.From)
	e.u(m.To)
	e.u(m.Ballot.Round)
	e.u(m.Ballot.Node)
	e.u(m.Commit)
	e.u(m.Slot)
	e.u(m.Last)
	e.u(m.Round)
	var fl uint8
	if m.Reject {
		fl |= msgReject
	}
	if m.Force {
		fl |= msgForce
	}
	e.byte(fl)
	e.u(uint64(len(m.Entries)))
	for i := range m.Entries {
		appendEntry(&e, &m.Entries[i])
	}
	e.u(uint64(len(m.Values)))
	for _, v := range m.Values {
		e.u(v.ID.Node)
		e.u(v.ID.Seq)
		e.bytes(v.Data)
	}
	e.bytes(m.Context)
	return e.b
}

// decodeMessage reads what encodeMessage wrote. The message's byte slices
// alias b.
func decodeMessage(b []byte) (consensus.Message, error) {
	d := dec{b: b}
	var m consensus.Message
	m.Type = consensus.MsgType(d.byte())
	m.From = d.u()
	m.To = d.u()
	m.Ballot.Round = d.u()
	m.Ballot.Node = d.u()
	m.Commit = d.u()
	m.Slot = d.u()
	m.Last = d.u()
	m.Round = d.u()
	fl := d.byte()
	m.Reject = fl&msgReject != 0
	m.Force = fl&msgForce != 0
	if n := d.count(4); n > 0 && n <= maxMsgEntries {
		m.Entries = make([]consensus.Entry, n)
		for i := range m.Entries {
			m.Entries[i] = readEntry(&d)
		}
	}
	if n := d.count(3); n > 0 && n <= maxMsgEntries {
		m.Values = make([]consensus.Value, n)
		for i := range m.Values {
			m.Values[i].ID.Node = d.u()
			m.Values[i].ID.Seq = d.u()
			m.Values[i].Data = d.bytes()
		}
	}
	if c := d.bytes(); len(c) > 0 {
		m.Context = c
	}
	return m, d.end("peer message")
}
