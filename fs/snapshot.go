package fs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
)

// snapshotMagic starts every snapshot; snapshotVersion follows it.
const (
	snapshotMagic   = "DZFSSNAP"
	snapshotVersion = 1
)

// Record tags in a snapshot's tree.
const (
	tagEnd  = 0 // end of the current directory
	tagFile = 1
	tagDir  = 2
)

// WriteSnapshot writes the current state — revision, tree, leases and the
// lease counter, not the history window — to w; see docs/data-model.md,
// "Snapshot format". It streams the tree and is safe to call concurrently
// with Apply: it writes the revision current when it starts.
func (t *Tree) WriteSnapshot(w io.Writer) error { return t.Capture()(w) }

// Capture fixes the current state — as WriteSnapshot would write it — and
// returns a function that writes it later, from any goroutine, while the
// tree goes on applying. A replica captures at the exact point its log has
// applied and streams the snapshot to disk without holding up the log.
func (t *Tree) Capture() func(w io.Writer) error {
	t.mu.RLock()
	v := t.cur.Load()
	last := t.lastLease
	leases := make([]Lease, 0, len(t.leases))
	for id, ttl := range t.leases {
		leases = append(leases, Lease{ID: id, TTL: ttl})
	}
	t.mu.RUnlock()
	sort.Slice(leases, func(i, j int) bool { return leases[i].ID < leases[j].ID })
	return func(w io.Writer) error { return writeSnapshot(w, v, last, leases) }
}

func writeSnapshot(w io.Writer, v *View, last int64, leases []Lease) error {
	if _, err := io.WriteString(w, snapshotMagic+string(rune(snapshotVersion))); err != nil {
		return err
	}
	bw := newBlockWriter(w)
	bw.uvarint(uint64(v.rev))
	bw.uvarint(uint64(last))
	bw.uvarint(uint64(len(leases)))
	for _, l := range leases {
		bw.uvarint(uint64(l.ID))
		bw.varint(l.TTL)
	}
	bw.uvarint(uint64(v.root.rev))
	bw.varint(v.root.time)
	var files, dirs uint64
	writeKids(bw, v.root, &files, &dirs)
	bw.uvarint(files)
	bw.uvarint(dirs)
	return bw.close()
}

// writeKids writes the children of directory n, depth first, and the end
// tag.
func writeKids(bw *blockWriter, n *node, files, dirs *uint64) {
	n.kids.ascend(func(c *node) bool {
		if c.dir {
			*dirs++
			bw.byte(tagDir)
			bw.string(c.name)
			bw.uvarint(uint64(c.rev))
			bw.varint(c.time)
			writeKids(bw, c, files, dirs)
		} else {
			*files++
			bw.byte(tagFile)
			bw.string(c.name)
			bw.uvarint(uint64(c.rev))
			bw.varint(c.time)
			bw.uvarint(uint64(c.lease))
			bw.bytes(c.body)
		}
		return bw.err == nil
	})
	bw.byte(tagEnd)
}

// ReadSnapshot reads a snapshot written by WriteSnapshot into a new tree at
// the snapshot's revision, whose window starts there. Anything corrupt,
// truncated or inconsistent is an error (never a panic); it reads nothing
// past the snapshot's end.
func ReadSnapshot(r io.Reader, cfg Config) (*Tree, error) {
	t, err := readSnapshot(r, cfg)
	if err != nil {
		return nil, fmt.Errorf("fs: reading snapshot: %w", err)
	}
	return t, nil
}

func readSnapshot(r io.Reader, cfg Config) (*Tree, error) {
	var head [len(snapshotMagic) + 1]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return nil, truncated(err)
	}
	if string(head[:len(snapshotMagic)]) != snapshotMagic {
		return nil, errors.New("not a doozerfs snapshot (bad magic)")
	}
	if v := head[len(snapshotMagic)]; v != snapshotVersion {
		return nil, fmt.Errorf("unknown snapshot version %d", v)
	}
	sr := snapReader{br: &blockReader{r: r}}
	rev := sr.count("revision", uint64(MaxRev))
	sr.rev = rev
	t := newTree(cfg, &View{rev: rev})
	sr.leases(t)
	root := &node{dir: true, rev: sr.count("root rev", uint64(rev)), time: sr.varint()}
	sr.tree(root, t)
	files, dirs := sr.uvarint(), sr.uvarint()
	if sr.err == nil && (files != sr.files || dirs != sr.dirs) {
		sr.fail(fmt.Errorf("counts %d files, %d dirs; found %d, %d", files, dirs, sr.files, sr.dirs))
	}
	if sr.err == nil {
		sr.err = sr.br.finish()
	}
	if sr.err != nil {
		return nil, sr.err
	}
	t.cur.Load().root = root // nobody has seen t yet
	return t, nil
}

// A snapReader decodes a snapshot's payload, remembering the first error;
// after one, every read returns zero.
type snapReader struct {
	br          *blockReader
	rev         int64 // the snapshot's revision
	err         error
	files, dirs uint64
}

func (sr *snapReader) fail(err error) {
	if sr.err == nil {
		if err == errEndOfPayload {
			err = errors.New("payload ends early")
		}
		sr.err = err
	}
}

func (sr *snapReader) byte() byte {
	if sr.err != nil {
		return 0
	}
	c, err := sr.br.ReadByte()
	sr.fail(err)
	return c
}

func (sr *snapReader) uvarint() uint64 {
	if sr.err != nil {
		return 0
	}
	v, err := binary.ReadUvarint(sr.br)
	sr.fail(err)
	return v
}

func (sr *snapReader) varint() int64 {
	if sr.err != nil {
		return 0
	}
	v, err := binary.ReadVarint(sr.br)
	sr.fail(err)
	return v
}

// count reads an unsigned number that must not exceed most.
func (sr *snapReader) count(what string, most uint64) int64 {
	v := sr.uvarint()
	if v > most {
		sr.fail(fmt.Errorf("%s %d out of range (at most %d)", what, v, most))
		return 0
	}
	return int64(v)
}

// leases reads the lease counter and table into t.
func (sr *snapReader) leases(t *Tree) {
	t.lastLease = sr.count("lease counter", 1<<63-1)
	n := sr.uvarint()
	prev := int64(0)
	for i := uint64(0); i < n && sr.err == nil; i++ {
		id := sr.count("lease id", uint64(t.lastLease))
		ttl := sr.varint()
		if sr.err == nil && (id <= prev || ttl <= 0) {
			sr.fail(fmt.Errorf("lease %d (TTL %d) out of order or invalid", id, ttl))
		}
		t.leases[id] = ttl
		prev = id
	}
}

// A frame is a directory being read.
type frame struct {
	n    *node
	path string
	kids []*node // its children so far, in order
}

// tree reads the records below root, depth first, into root, binding
// leased files in t.
func (sr *snapReader) tree(root *node, t *Tree) {
	stack := []frame{{n: root, path: "/"}}
	for sr.err == nil {
		top := &stack[len(stack)-1]
		switch tag := sr.byte(); tag {
		case tagEnd:
			top.n.kids = buildSorted(top.kids)
			done := top.n
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				return
			}
			p := &stack[len(stack)-1]
			p.kids = append(p.kids, done)
		case tagFile:
			if f := sr.file(top, t); f != nil {
				top.kids = append(top.kids, f)
			}
		case tagDir:
			d := sr.nodeHead(top)
			if sr.err != nil {
				return
			}
			d.dir = true
			sr.dirs++
			path := child(top.path, d.name)
			if len(stack) < cap(stack) {
				stack = stack[:len(stack)+1] // reuse a popped frame's kids
			} else {
				stack = append(stack, frame{})
			}
			f := &stack[len(stack)-1]
			f.n, f.path, f.kids = d, path, f.kids[:0]
		default:
			sr.fail(fmt.Errorf("bad record tag %d", tag))
		}
	}
}

// nodeHead reads a child's name, rev and time.
func (sr *snapReader) nodeHead(dir *frame) *node {
	n := sr.uvarint()
	if sr.err == nil && (n == 0 || n > MaxComponent) {
		sr.fail(fmt.Errorf("name of %d bytes in %s", n, dir.path))
	}
	if sr.err != nil {
		return nil
	}
	b, err := sr.br.readN(n)
	sr.fail(err)
	name := string(b)
	rev := sr.count("rev", uint64(sr.rev))
	time := sr.varint()
	switch {
	case sr.err != nil:
		return nil
	case badComponent(name) != "":
		sr.fail(fmt.Errorf("bad name %q in %s: %s", name, dir.path, badComponent(name)))
	case len(dir.kids) > 0 && dir.kids[len(dir.kids)-1].name >= name:
		sr.fail(fmt.Errorf("names out of order in %s at %q", dir.path, name))
	case len(dir.path)+1+len(name) > MaxPath:
		sr.fail(fmt.Errorf("path longer than 4096 bytes in %s", dir.path))
	}
	return &node{name: name, rev: rev, time: time}
}

// file reads the rest of a file record.
func (sr *snapReader) file(dir *frame, t *Tree) *node {
	f := sr.nodeHead(dir)
	if f == nil {
		return nil
	}
	f.lease = sr.count("lease", 1<<63-1)
	n := sr.uvarint()
	if sr.err != nil {
		return nil
	}
	if n > 0 {
		b, err := sr.br.readN(n)
		sr.fail(err)
		f.body = b
	}
	if sr.err != nil {
		return nil
	}
	sr.files++
	if f.lease != 0 {
		t.bindLocked(child(dir.path, f.name), 0, f.lease)
	}
	return f
}
