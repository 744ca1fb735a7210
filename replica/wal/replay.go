package wal

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// Replay calls fn for every durable record with an index of at least from,
// in index order: the records found by Open plus those synced since.
// Records appended but not yet synced are not visited. fn owns rec.Data.
// Replay holds the WAL's lock while it runs, so fn must not call the WAL.
// It stops at the first error from fn and returns it, wrapped with the
// record's index. Every record is checked again as it is read.
func (w *WAL) Replay(from uint64, fn func(index uint64, rec Record) error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	for i, s := range w.segs {
		if i+1 < len(w.segs) && w.segs[i+1].first <= from {
			continue
		}
		if err := w.replaySegment(s, from, fn); err != nil {
			return err
		}
	}
	return nil
}

func (w *WAL) replaySegment(s *segment, from uint64, fn func(uint64, Record) error) error {
	path := w.path(s)
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("wal: open %s: %w", path, err)
	}
	defer f.Close()
	sc := newScanner(f, segHeaderSize, s.end, w.opts.MaxRecord, true)
	next, end := s.first, int64(segHeaderSize)
	for {
		fr, err := sc.next()
		var d *damage
		switch {
		case errors.Is(err, io.EOF):
			if end < s.end {
				return &CorruptError{File: path, Offset: end, Reason: fmt.Sprintf("records end early; they reached offset %d when the WAL was opened or last synced", s.end)}
			}
			return nil
		case errors.As(err, &d):
			return &CorruptError{File: path, Offset: d.off, Reason: d.reason + " (found on replay; the file changed after it was checked)"}
		case err != nil:
			return fmt.Errorf("wal: replay %s: %w", path, err)
		}
		end = fr.off + frameLen(int64(fr.hdr.size))
		if fr.hdr.typ == typeCommit {
			continue
		}
		if fr.hdr.index != next {
			return &CorruptError{File: path, Offset: fr.off, Reason: fmt.Sprintf("record has index %d where %d was due (found on replay)", fr.hdr.index, next)}
		}
		next++
		if fr.hdr.index < from {
			continue
		}
		if err := fn(fr.hdr.index, Record{Type: fr.hdr.typ, Data: fr.data}); err != nil {
			return fmt.Errorf("wal: replay stopped at index %d: %w", fr.hdr.index, err)
		}
	}
}
