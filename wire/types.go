package wire

import (
	"slices"

	"github.com/doozerfs/doozerfs/fs"
)

// File is one result of WALK: a file's path, stat and body.
type File struct {
	Path string  // p: the file's full path
	Stat fs.Stat // s: its stat at the revision walked
	Body []byte  // b: its body
}

// Member is one member of the cluster as the answering replica sees it.
type Member struct {
	Name    string // n: the replica's name
	ID      uint64 // i: the replica's id in consensus
	Addr    string // a: its address, host:port
	Role    string // o: RoleVoter or RoleLearner
	State   string // s: StateAlive, StateSuspect or StateDead (memberlist's view)
	Leader  bool   // l: whether it is the leader as far as the answering replica knows
	Applied int64  // r: the highest revision it has applied, as last heard
}

// Self describes the answering replica.
type Self struct {
	Name    string // n: its name
	ID      uint64 // i: its id in consensus
	Addr    string // a: its address, host:port
	Cluster string // c: the cluster's name
	Role    string // o: RoleVoter or RoleLearner
	Leader  string // L: the name of the leader it follows ("" if none is known)
	Applied int64  // r: the highest revision it has applied
	Lag     int64  // g: revisions known committed but not yet applied here
	Version string // v: its software version
}

// Roles and states of a Member.
const (
	RoleVoter    = "voter"
	RoleLearner  = "learner"
	StateAlive   = "alive"
	StateSuspect = "suspect"
	StateDead    = "dead"
)

// skipDepth bounds how deeply the value of an unknown field may nest.
const skipDepth = 8

// The fewest bytes one element of each array can take: its map header and
// its required fields with one-byte keys and the shortest values.
const (
	minOp       = 1 + 3*3 // k, p, r
	minEvent    = 1 + 3*3 // r, p, k
	minDirEntry = 1 + 2*3 // n, y
	minFile     = 1 + 3 + 2 + 4
	minMember   = 1 + 3 // n
)

// openMap starts a map whose entry count is filled in by closeMap.
func openMap(b []byte) ([]byte, int) { return append(b, 0x80), len(b) }

// closeMap writes the count of the map opened at start. Maps of the fixed
// messages rarely reach 16 entries; when they do the header widens.
func closeMap(b []byte, start, n int) []byte {
	if n < 16 {
		b[start] = 0x80 | byte(n)
		return b
	}
	b = slices.Insert(b, start+1, 0, 0)
	b[start], b[start+1], b[start+2] = mpMap16, byte(n>>8), byte(n)
	return b
}

// fieldInt appends key k with v unless v is zero.
func fieldInt(b []byte, n *int, k byte, v int64) []byte {
	if v == 0 {
		return b
	}
	*n++
	return appendInt(appendKey(b, k), v)
}

func fieldStr(b []byte, n *int, k byte, v string) []byte {
	if v == "" {
		return b
	}
	*n++
	return appendStr(appendKey(b, k), v)
}

func fieldBin(b []byte, n *int, k byte, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	*n++
	return appendBin(appendKey(b, k), v)
}

func fieldBool(b []byte, n *int, k byte, v bool) []byte {
	if !v {
		return b
	}
	*n++
	return appendBool(appendKey(b, k), v)
}

// forEachField reads a map, calling field for each key whose value is not
// nil (nil is the same as an absent field). field returns false for a key
// it does not know, whose value is then skipped.
func (r *reader) forEachField(what string, field func(k byte) bool) {
	for n := r.mapLen(what); n > 0 && r.err == nil; n-- {
		k := r.key()
		if r.takeNil() {
			continue
		}
		if !field(k) {
			r.skip(skipDepth)
		}
	}
}

func (r *reader) require(what string, has, want uint32, names string) {
	if r.err != nil || has&want == want {
		return
	}
	for i := 0; i < len(names); i++ {
		if want&(1<<i) != 0 && has&(1<<i) == 0 {
			r.fail("%s: missing field %q", what, names[i:i+1])
			return
		}
	}
}

// --- fs.Stat: {y type, z size, r rev, a time, h children, l lease} ---

func appendStat(b []byte, s *fs.Stat) []byte {
	b, start := openMap(b)
	n := 1
	b = appendUint(appendKey(b, 'y'), uint64(s.Type))
	b = fieldInt(b, &n, 'z', s.Size)
	b = fieldInt(b, &n, 'r', s.Rev)
	b = fieldInt(b, &n, 'a', s.Time)
	b = fieldInt(b, &n, 'h', int64(s.Children))
	b = fieldInt(b, &n, 'l', s.Lease)
	return closeMap(b, start, n)
}

func (r *reader) stat(s *fs.Stat) {
	var has uint32
	r.forEachField("stat", func(k byte) bool {
		switch k {
		case 'y':
			s.Type, has = fs.NodeType(r.intIn("stat.y", 1, 255)), has|1
		case 'z':
			s.Size = r.int("stat.z")
		case 'r':
			s.Rev = r.int("stat.r")
		case 'a':
			s.Time = r.int("stat.a")
		case 'h':
			s.Children = int(r.intIn("stat.h", 0, 1<<31-1))
		case 'l':
			s.Lease = r.int("stat.l")
		default:
			return false
		}
		return true
	})
	r.require("stat", has, 1, "y")
}

// --- fs.Event: {r rev, p path, k kind, b body, a time, l lease} ---

func appendEvent(b []byte, e *fs.Event) []byte {
	b, start := openMap(b)
	n := 3
	b = appendInt(appendKey(b, 'r'), e.Rev)
	b = appendStr(appendKey(b, 'p'), e.Path)
	b = appendUint(appendKey(b, 'k'), uint64(e.Kind))
	b = fieldBin(b, &n, 'b', e.Body)
	b = fieldInt(b, &n, 'a', e.Time)
	b = fieldInt(b, &n, 'l', e.Lease)
	return closeMap(b, start, n)
}

func (r *reader) event(e *fs.Event) {
	var has uint32
	r.forEachField("event", func(k byte) bool {
		switch k {
		case 'r':
			e.Rev, has = r.int("event.r"), has|1
		case 'p':
			e.Path, has = r.str("event.p"), has|2
		case 'k':
			e.Kind, has = fs.EventKind(r.intIn("event.k", 1, 255)), has|4
		case 'b':
			e.Body = r.bytes("event.b")
		case 'a':
			e.Time = r.int("event.a")
		case 'l':
			e.Lease = r.int("event.l")
		default:
			return false
		}
		return true
	})
	r.require("event", has, 7, "rpk")
}

func (r *reader) events() []fs.Event {
	evs := make([]fs.Event, r.arrayOf("events", minEvent))
	for i := range evs {
		r.event(&evs[i])
	}
	return evs
}

// --- fs.Op: {k kind, p path, r rev, b body, l lease} ---

func appendOp(b []byte, o *fs.Op) []byte {
	b, start := openMap(b)
	n := 3
	b = appendUint(appendKey(b, 'k'), uint64(o.Kind))
	b = appendStr(appendKey(b, 'p'), o.Path)
	b = appendInt(appendKey(b, 'r'), o.Rev)
	b = fieldBin(b, &n, 'b', o.Body)
	b = fieldInt(b, &n, 'l', o.Lease)
	return closeMap(b, start, n)
}

func (r *reader) op(o *fs.Op) {
	var has uint32
	r.forEachField("op", func(k byte) bool {
		switch k {
		case 'k':
			o.Kind, has = fs.OpKind(r.intIn("op.k", int64(fs.OpSet), int64(fs.OpCheck))), has|1
		case 'p':
			o.Path, has = r.str("op.p"), has|2
		case 'r':
			o.Rev, has = r.int("op.r"), has|4
		case 'b':
			o.Body = r.bytes("op.b")
		case 'l':
			o.Lease = r.int("op.l")
		default:
			return false
		}
		return true
	})
	r.require("op", has, 7, "kpr")
}

// --- fs.DirEntry: {n name, y type} ---

func appendDirEntry(b []byte, d *fs.DirEntry) []byte {
	b = append(b, 0x82)
	b = appendStr(appendKey(b, 'n'), d.Name)
	return appendUint(appendKey(b, 'y'), uint64(d.Type))
}

func (r *reader) dirEntry(d *fs.DirEntry) {
	var has uint32
	r.forEachField("entry", func(k byte) bool {
		switch k {
		case 'n':
			d.Name, has = r.str("entry.n"), has|1
		case 'y':
			d.Type, has = fs.NodeType(r.intIn("entry.y", 1, 255)), has|2
		default:
			return false
		}
		return true
	})
	r.require("entry", has, 3, "ny")
}

// --- File: {p path, s stat, b body} ---

func appendFile(b []byte, f *File) []byte {
	b, start := openMap(b)
	n := 2
	b = appendStr(appendKey(b, 'p'), f.Path)
	b = appendStat(appendKey(b, 's'), &f.Stat)
	b = fieldBin(b, &n, 'b', f.Body)
	return closeMap(b, start, n)
}

func (r *reader) file(f *File) {
	var has uint32
	r.forEachField("file", func(k byte) bool {
		switch k {
		case 'p':
			f.Path, has = r.str("file.p"), has|1
		case 's':
			r.stat(&f.Stat)
			has |= 2
		case 'b':
			f.Body = r.bytes("file.b")
		default:
			return false
		}
		return true
	})
	r.require("file", has, 3, "ps")
}

// --- Member: {n name, i id, a addr, o role, s state, l leader, r applied} ---

func appendMember(b []byte, m *Member) []byte {
	b, start := openMap(b)
	n := 1
	b = appendStr(appendKey(b, 'n'), m.Name)
	if m.ID != 0 {
		n++
		b = appendUint(appendKey(b, 'i'), m.ID)
	}
	b = fieldStr(b, &n, 'a', m.Addr)
	b = fieldStr(b, &n, 'o', m.Role)
	b = fieldStr(b, &n, 's', m.State)
	b = fieldBool(b, &n, 'l', m.Leader)
	b = fieldInt(b, &n, 'r', m.Applied)
	return closeMap(b, start, n)
}

func (r *reader) member(m *Member) {
	var has uint32
	r.forEachField("member", func(k byte) bool {
		switch k {
		case 'n':
			m.Name, has = r.str("member.n"), has|1
		case 'i':
			m.ID = r.uint64("member.i")
		case 'a':
			m.Addr = r.str("member.a")
		case 'o':
			m.Role = r.str("member.o")
		case 's':
			m.State = r.str("member.s")
		case 'l':
			m.Leader = r.bool("member.l")
		case 'r':
			m.Applied = r.int("member.r")
		default:
			return false
		}
		return true
	})
	r.require("member", has, 1, "n")
}

// --- Self: {n, i, a, c cluster, o role, L leader, r applied, g lag, v version} ---

func appendSelf(b []byte, s *Self) []byte {
	b, start := openMap(b)
	n := 1
	b = appendStr(appendKey(b, 'n'), s.Name)
	if s.ID != 0 {
		n++
		b = appendUint(appendKey(b, 'i'), s.ID)
	}
	b = fieldStr(b, &n, 'a', s.Addr)
	b = fieldStr(b, &n, 'c', s.Cluster)
	b = fieldStr(b, &n, 'o', s.Role)
	b = fieldStr(b, &n, 'L', s.Leader)
	b = fieldInt(b, &n, 'r', s.Applied)
	b = fieldInt(b, &n, 'g', s.Lag)
	b = fieldStr(b, &n, 'v', s.Version)
	return closeMap(b, start, n)
}

func (r *reader) self(s *Self) {
	var has uint32
	r.forEachField("self", func(k byte) bool {
		switch k {
		case 'n':
			s.Name, has = r.str("self.n"), has|1
		case 'i':
			s.ID = r.uint64("self.i")
		case 'a':
			s.Addr = r.str("self.a")
		case 'c':
			s.Cluster = r.str("self.c")
		case 'o':
			s.Role = r.str("self.o")
		case 'L':
			s.Leader = r.str("self.L")
		case 'r':
			s.Applied = r.int("self.r")
		case 'g':
			s.Lag = r.int("self.g")
		case 'v':
			s.Version = r.str("self.v")
		default:
			return false
		}
		return true
	})
	r.require("self", has, 1, "n")
}
