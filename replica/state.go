package replica

import (
	"bufio"
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/doozerfs/doozerfs/consensus"
	"github.com/doozerfs/doozerfs/fs"
)

// dedupWindow is how many of an origin's most recent proposal sequence
// numbers the replicated state remembers. A value whose id is among them,
// or older than all of them, is a duplicate delivery (a proposal resent
// after a leader change that had already been chosen) and is skipped.
const dedupWindow = 4096

// origin is what the replicated state remembers of one node's proposals.
type origin struct {
	floor uint64              // every seq ≤ floor counts as applied
	seen  map[uint64]struct{} // applied seqs above floor
	order []uint64            // seen, in the order applied (FIFO)
}

// dedup is the table of applied proposal ids, per origin node. It is part
// of the replicated state: every replica builds the same one by applying
// the same log, and snapshots carry it.
type dedup map[uint64]*origin

// seen reports whether id was applied already.
func (d dedup) seen(id consensus.ProposalID) bool {
	o := d[id.Node]
	if o == nil {
		return false
	}
	if id.Seq <= o.floor {
		return true
	}
	_, ok := o.seen[id.Seq]
	return ok
}

// add records id as applied.
func (d dedup) add(id consensus.ProposalID) {
	o := d[id.Node]
	if o == nil {
		o = &origin{seen: make(map[uint64]struct{})}
		d[id.Node] = o
	}
	o.seen[id.Seq] = struct{}{}
	o.order = append(o.order, id.Seq)
	if len(o.order) > dedupWindow {
		old := o.order[0]
		o.order = o.order[1:]
		delete(o.seen, old)
		o.floor = max(o.floor, old)
	}
}

func (d dedup) clone() dedup {
	c := make(dedup, len(d))
	for n, o := range d {
		c[n] = &origin{floor: o.floor, seen: maps.Clone(o.seen), order: slices.Clone(o.order)}
	}
	return c
}

// snapHeaderMagic starts the replica's snapshot payload; the fs snapshot
// follows the header (docs/storage.md §7).
const snapHeaderMagic = "DZREPL\x00\x01"

// snapHeader is the replicated state that is not the tree.
type snapHeader struct {
	Slot     uint64                // the last slot applied
	Config   consensus.ConfigState // the membership as of Slot
	LastTime int64                 // the commit time of the last mutation applied
	Dedup    dedup
}

func (h *snapHeader) write(w io.Writer) error {
	var e enc
	e.b = append(e.b, snapHeaderMagic...)
	e.u(h.Slot)
	e.config(h.Config)
	e.i(h.LastTime)
	nodes := slices.Sorted(maps.Keys(h.Dedup))
	e.u(uint64(len(nodes)))
	for _, n := range nodes {
		o := h.Dedup[n]
		e.u(n)
		e.u(o.floor)
		e.ids(o.order) // in applied order; not sorted
	}
	var hdr enc
	hdr.bytes(e.b)
	_, err := w.Write(hdr.b)
	return err
}

// readSnapHeader reads the header and leaves r at the fs snapshot.
func readSnapHeader(r *bufio.Reader) (*snapHeader, error) {
	n, err := readUvarint(r)
	if err != nil {
		return nil, fmt.Errorf("replica: snapshot header: %w", err)
	}
	if n > 1<<30 {
		return nil, fmt.Errorf("replica: snapshot header of %d bytes is not believable", n)
	}
	// Read what is there rather than allocate what the length claims: a
	// damaged or forged length would cost up to 1 GiB before the read
	// found the stream short.
	b, err := io.ReadAll(io.LimitReader(r, int64(n)))
	if err == nil && uint64(len(b)) != n {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return nil, fmt.Errorf("replica: snapshot header: %w", err)
	}
	if len(b) < len(snapHeaderMagic) || string(b[:len(snapHeaderMagic)]) != snapHeaderMagic {
		return nil, fmt.Errorf("replica: not a doozerfs replica snapshot (bad magic)")
	}
	d := dec{b: b[len(snapHeaderMagic):]}
	h := &snapHeader{Dedup: make(dedup)}
	h.Slot = d.u()
	h.Config = d.config()
	h.LastTime = d.i()
	nodes := d.count(2)
	for range nodes {
		id := d.u()
		o := &origin{floor: d.u(), seen: make(map[uint64]struct{})}
		cnt := d.count(1)
		for range cnt {
			s := d.u()
			o.order = append(o.order, s)
			o.seen[s] = struct{}{}
		}
		h.Dedup[id] = o
	}
	if err := d.end("snapshot header"); err != nil {
		return nil, err
	}
	return h, nil
}

func readUvarint(r *bufio.Reader) (uint64, error) {
	var v uint64
	for shift := uint(0); ; shift += 7 {
		c, err := r.ReadByte()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		if shift >= 64 {
			return 0, errShort
		}
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v, nil
		}
	}
}

// readStateSnapshot reads a whole replica snapshot payload: the header and
// the tree.
func readStateSnapshot(r io.Reader, cfg fs.Config) (*snapHeader, *fs.Tree, error) {
	br := bufio.NewReaderSize(r, 256<<10)
	h, err := readSnapHeader(br)
	if err != nil {
		return nil, nil, err
	}
	t, err := fs.ReadSnapshot(br, cfg)
	if err != nil {
		return nil, nil, err
	}
	return h, t, nil
}
