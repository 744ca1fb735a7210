package chaos

import (
	"fmt"
	"sort"
	"strings"

	"github.com/anishathalye/porcupine"

	"github.com/doozerfs/doozerfs/fs"
)

// mstate is the sequential specification's state of one partition of the
// history: a KV key (A only) or the group (A and B). Floor is a lower bound
// of the store's revision learnt from this partition's writes: a later
// write must make a higher revision.
type mstate struct {
	A, B  FileState
	Floor int64
}

// unknownRev marks a file written by a write of unknown outcome that the
// event log could not place (only when the log is incomplete): any
// revision above the floor fits it.
const unknownRev = -1

// holds is the conditional-write rule (SPEC §1) on file f. For a file of
// unknown revision a revision condition may go either way: both.
func holds(f FileState, rev int64) (yes, no bool) {
	switch {
	case rev == fs.Clobber:
		return true, false
	case rev == fs.Missing:
		return !f.Present, f.Present
	case !f.Present:
		return false, true
	case f.Rev == unknownRev:
		return true, true
	}
	return f.Rev <= rev, f.Rev > rev
}

func (s mstate) readMatches(have, got FileState) (FileState, bool) {
	if !got.Present {
		return have, !have.Present
	}
	if !have.Present || have.Body != got.Body {
		return have, false
	}
	if have.Rev == unknownRev {
		if got.Rev >= s.Floor {
			return got, true
		}
		return have, false
	}
	return have, have.Rev == got.Rev
}

// step is the sequential specification: the states s may move to by the
// operation in with the outcome out (none: impossible).
func step(s mstate, in OpIn, out OpOut) []mstate {
	switch in.Kind {
	case KGet:
		switch out.Res {
		case ResOK, ResMissing:
			if a, ok := s.readMatches(s.A, out.A); ok {
				s.A = a
				return []mstate{s}
			}
		}
	case KWalk:
		if out.Res == ResOK {
			a, okA := s.readMatches(s.A, out.A)
			b, okB := s.readMatches(s.B, out.B)
			if okA && okB {
				s.A, s.B = a, b
				return []mstate{s}
			}
		}
	case KSet, KTxn:
		yes, no := holds(s.A, in.Rev)
		switch out.Res {
		case ResOK:
			if yes && out.Rev > s.Floor {
				f := FileState{true, in.Body, out.Rev}
				n := mstate{A: f, Floor: out.Rev}
				if in.Kind == KTxn {
					n.B = f
				}
				return []mstate{n}
			}
		case ResMismatch:
			if no {
				return []mstate{s}
			}
		case ResUnknown:
			// Only when the log could not say: it may not have happened,
			// or happened at a revision above the floor.
			out := []mstate{s}
			if yes {
				f := FileState{true, in.Body, unknownRev}
				n := mstate{A: f, Floor: s.Floor + 1}
				if in.Kind == KTxn {
					n.B = f
				}
				out = append(out, n)
			}
			return out
		}
	case KDel:
		yes, no := holds(s.A, in.Rev)
		switch out.Res {
		case ResOK:
			if s.A.Present && yes && out.Rev > s.Floor {
				return []mstate{{Floor: out.Rev}}
			}
		case ResMissing:
			if !s.A.Present {
				return []mstate{s}
			}
		case ResMismatch:
			if s.A.Present && no {
				return []mstate{s}
			}
		case ResUnknown:
			if s.A.Present && yes {
				return []mstate{s, {Floor: s.Floor + 1}}
			}
			return []mstate{s}
		}
	}
	return nil
}

var model = porcupine.NondeterministicModel{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Input.(OpIn).Key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() []any { return []any{mstate{}} },
	Step: func(state, input, output any) []any {
		next := step(state.(mstate), input.(OpIn), output.(OpOut))
		out := make([]any, len(next))
		for i, s := range next {
			out[i] = s
		}
		return out
	},
	Equal: func(a, b any) bool { return a.(mstate) == b.(mstate) },
	DescribeOperation: func(input, output any) string {
		in, out := input.(OpIn), output.(OpOut)
		var b strings.Builder
		switch in.Kind {
		case KGet, KWalk:
			fmt.Fprintf(&b, "%s(%s)", in.Kind, in.Key)
		case KSet, KTxn:
			fmt.Fprintf(&b, "%s(%s, %d, %q)", in.Kind, in.Key, in.Rev, in.Body)
		case KDel:
			fmt.Fprintf(&b, "del(%s, %d)", in.Key, in.Rev)
		}
		fmt.Fprintf(&b, " -> %s", out.Res)
		if out.Res == ResOK {
			switch in.Kind {
			case KGet:
				fmt.Fprintf(&b, " %s", out.A)
			case KWalk:
				fmt.Fprintf(&b, " a=%s b=%s", out.A, out.B)
			default:
				fmt.Fprintf(&b, " @%d", out.Rev)
			}
		}
		return b.String()
	},
	DescribeState: func(state any) string {
		s := state.(mstate)
		if s.B.Present {
			return fmt.Sprintf("a=%s b=%s (rev ≥ %d)", s.A, s.B, s.Floor)
		}
		return fmt.Sprintf("%s (rev ≥ %d)", s.A, s.Floor)
	},
}
