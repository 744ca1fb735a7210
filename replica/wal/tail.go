package wal

import (
	"errors"
	"fmt"
	"io"
)

// Telling a torn tail from corruption.
//
// Sync writes a batch (its records, then a commit frame), then fdatasyncs,
// and only after that returns may the next batch be written; every frame
// carries its batch's generation. So if any frame of a later batch than the
// damaged one is on disk and intact, the damaged batch had been synced and
// acknowledged: the damage is corruption. If none is, the damaged bytes
// belong to the last batch written, which the crash caught before its
// fdatasync returned: a torn tail, safe to cut. A torn batch may survive
// with holes (the kernel writes pages back in any order), so intact frames
// of the same batch after the damage do not make it corruption.

// verdict is what laterBatch concluded.
type verdict int

const (
	noLaterBatch    verdict = iota // a torn tail
	laterBatchFound                // corruption
	undecided                      // too much to check: treated as corruption
)

// laterBatch searches the bytes of r after the damage at from (the end of
// the last good frame) for an intact frame of a batch later than gen, the
// generation of the damaged batch. next is the index the damaged record
// would have had. It returns the offset of the first such frame found.
//
// Checking a candidate's CRC reads its whole claimed length, so data made
// to look like many long frames could make the search quadratic. The bytes
// it may check are capped; past the cap it gives up, undecided, and Open
// refuses the log rather than guess (--repair then cuts it).
func laterBatch(r io.ReaderAt, size, from int64, gen uint32, next uint64, maxRec int) (int64, verdict, error) {
	const chunk = 1 << 20
	buf := make([]byte, min(chunk+frameHeaderSize, max(size-from, 0)))
	// No frame is shorter than its header, which bounds how far indexes and
	// generations can have advanced by any offset in the file.
	ahead := uint64(size-from)/frameHeaderSize + 1
	budget := 4*(size-from) + 64<<20
	for base := from + frameAlign; base+frameHeaderSize <= size; base += chunk {
		b := buf[:min(int64(len(buf)), size-base)]
		if _, err := r.ReadAt(b, base); err != nil && !errors.Is(err, io.EOF) {
			return 0, noLaterBatch, fmt.Errorf("read at offset %d: %w", base, err)
		}
		for o := 0; o < chunk && o+frameHeaderSize <= len(b); o += frameAlign {
			h, why := parseHeader(b[o : o+frameHeaderSize])
			if why != "" || !plausible(h, gen, next, ahead, maxRec) {
				continue
			}
			at, flen := base+int64(o), frameLen(int64(h.size))
			if at+flen > size {
				continue
			}
			if budget -= flen; budget < 0 {
				return at, undecided, nil
			}
			ok, err := intactAt(r, at, h)
			if err != nil {
				return 0, noLaterBatch, err
			}
			if ok && int32(h.gen-gen) > 0 {
				return at, laterBatchFound, nil
			}
		}
	}
	return 0, noLaterBatch, nil
}

// plausible reports whether h could be a frame written after the damage.
func plausible(h frameHeader, gen uint32, next uint64, ahead uint64, maxRec int) bool {
	if int64(h.size) > int64(maxRec) || uint64(h.gen-gen) > ahead {
		return false
	}
	lowest := next
	if h.typ == typeCommit {
		lowest = next - 1
	}
	return h.index >= lowest && h.index-lowest <= ahead
}

// intactAt reports whether the frame with header h at off has a valid CRC.
func intactAt(r io.ReaderAt, off int64, h frameHeader) (bool, error) {
	b := make([]byte, frameLen(int64(h.size)))
	if _, err := r.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("read at offset %d: %w", off, err)
	}
	return frameCRC(b[:frameHeaderSize], b[frameHeaderSize:]) == h.crc, nil
}
