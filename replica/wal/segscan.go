package wal

import (
	"errors"
	"fmt"
	"io"
)

// segExpect is what the log so far says a segment must start with.
type segExpect struct {
	seq, first uint64 // from the file name
	follows    bool   // there is a previous segment, and:
	next       uint64 // the index its records end before
	gen        uint32 // the batch generation its frames end with
}

// segScan is what scanning one segment found.
type segScan struct {
	hdr      segHeader
	headerOK bool
	end      int64  // offset just past the last good frame
	next     uint64 // index of the record after the last good one
	gen      uint32 // batch generation of the frame that would follow
	frames   int    // good frames
	open     bool   // the last good frame is a record, not a commit
	damage   *damage
}

// scanSegment reads a whole segment, checking every frame's checksum and
// that indexes and batch generations run in sequence. It stops at the end
// of the records or at the first damage, which it reports in segScan; the
// error is for read failures only.
func scanSegment(r io.ReaderAt, size int64, exp segExpect, maxRec int) (segScan, error) {
	var res segScan
	hb := make([]byte, segHeaderSize)
	n, err := r.ReadAt(hb, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return res, fmt.Errorf("read segment header: %w", err)
	}
	h, why := decodeSegHeader(hb[:n])
	if why == "" {
		why = checkSegHeader(h, exp)
	}
	if why != "" {
		res.damage = &damage{off: 0, reason: why, definite: true}
		return res, nil
	}
	res.hdr, res.headerOK = h, true
	res.end, res.next, res.gen = segHeaderSize, h.first, h.gen
	sc := newScanner(r, segHeaderSize, size, maxRec, false)
	for {
		fr, err := sc.next()
		var d *damage
		switch {
		case errors.Is(err, io.EOF):
			return res, nil
		case errors.As(err, &d):
			res.damage = d
			return res, nil
		case err != nil:
			return res, err
		}
		if d := res.accept(fr); d != nil {
			res.damage = d
			return res, nil
		}
	}
}

func checkSegHeader(h segHeader, exp segExpect) string {
	switch {
	case h.seq != exp.seq || h.first != exp.first:
		return fmt.Sprintf("header says sequence %d, first index %d; the file name says %d, %d", h.seq, h.first, exp.seq, exp.first)
	case exp.follows && h.first != exp.next:
		return fmt.Sprintf("first index %d does not follow the previous segment, whose records end before index %d", h.first, exp.next)
	case exp.follows && h.gen != exp.gen:
		return fmt.Sprintf("first batch generation %d does not follow the previous segment's %d", h.gen, exp.gen)
	}
	return ""
}

// accept checks that fr continues the sequence and advances past it.
func (res *segScan) accept(fr frame) *damage {
	h := fr.hdr
	want := res.next
	if h.typ == typeCommit {
		want = res.next - 1
	}
	if h.index != want || h.gen != res.gen {
		return &damage{off: fr.off, definite: true, reason: fmt.Sprintf(
			"record has index %d, batch %d where index %d, batch %d was due", h.index, h.gen, want, res.gen)}
	}
	if h.typ == typeCommit {
		res.gen++
		res.open = false
	} else {
		res.next++
		res.open = true
	}
	res.frames++
	res.end = fr.off + frameLen(int64(h.size))
	return nil
}
