package consensus

// slotLog holds a node's accepted entries above its compaction point, indexed
// by slot. Holes (slots with nothing accepted) have a zero Ballot.
type slotLog struct {
	// first is the slot of entries[0]; every slot below it is compacted away
	// (it is ≤ the snapshot's slot and chosen).
	first uint64
	// entries[i] holds slot first+i. There is never a trailing hole: the last
	// element, if any, is an accepted entry.
	entries []Entry
}

func newSlotLog(after uint64) slotLog { return slotLog{first: after + 1} }

// get returns the entry at slot s, or nil for a hole or a compacted slot.
// The pointer is valid until the next put or compact.
func (l *slotLog) get(s uint64) *Entry {
	if s < l.first || s-l.first >= uint64(len(l.entries)) {
		return nil
	}
	e := &l.entries[s-l.first]
	if e.Ballot.IsZero() {
		return nil
	}
	return e
}

// last is the highest slot holding an entry, or first-1 if none does.
func (l *slotLog) last() uint64 { return l.first + uint64(len(l.entries)) - 1 }

// put stores e at e.Slot, replacing what was there. A slot below first is
// ignored. Amortised O(1) for slots at or near the end.
func (l *slotLog) put(e Entry) {
	if e.Slot < l.first {
		return
	}
	i := e.Slot - l.first
	for uint64(len(l.entries)) < i {
		l.entries = append(l.entries, Entry{})
	}
	if i == uint64(len(l.entries)) {
		l.entries = append(l.entries, e)
		return
	}
	l.entries[i] = e
}

// span returns the stored entries of slots lo..hi (clamped to what is held),
// sharing the log's array; the capacity is cut so appends cannot write into
// the log. Only slots that never change again (chosen ones) may be handed out
// this way.
func (l *slotLog) span(lo, hi uint64) []Entry {
	if lo < l.first {
		lo = l.first
	}
	if hi > l.last() {
		hi = l.last()
	}
	if lo > hi {
		return nil
	}
	a, b := lo-l.first, hi-l.first+1
	return l.entries[a:b:b]
}

// compact drops every slot ≤ upto.
func (l *slotLog) compact(upto uint64) {
	if upto < l.first {
		return
	}
	n := upto - l.first + 1
	if n >= uint64(len(l.entries)) {
		l.entries = nil
	} else {
		l.entries = l.entries[n:]
	}
	l.first = upto + 1
}
