package replica

import (
	"bufio"
	"bytes"
	"testing"

	"github.com/doozerfs/doozerfs/consensus"
	"github.com/doozerfs/doozerfs/fs"
)

// Fuzz targets of the replica's own decoders: the WAL records (hard state,
// entry), the consensus messages and frames of peer connections, and the
// replica snapshot header. Their seed corpora live in testdata/fuzz/<target>/,
// so a plain `go test` runs them as regression tests; `make fuzz` explores.
//
// Each decoder must never panic nor allocate more than its input justifies,
// and what it accepts must encode to a canonical form that decodes to the
// same thing (bytes compared, as nil and empty slices encode alike).

func seedEntries() []consensus.Entry {
	return []consensus.Entry{
		{Slot: 1, Ballot: consensus.Ballot{Round: 1, Node: 7}, Kind: consensus.EntryNoop},
		{Slot: 2, Ballot: consensus.Ballot{Round: 1, Node: 7}, Kind: consensus.EntryValues,
			Values: []consensus.Value{{ID: consensus.ProposalID{Node: 7, Seq: 1}, Data: []byte("mutation")}, {ID: consensus.ProposalID{Node: 9, Seq: 300}}}},
		{Slot: 3, Ballot: consensus.Ballot{Round: 2, Node: 9}, Kind: consensus.EntryConfig,
			Change: consensus.ConfChange{Type: consensus.ConfAddLearner, Node: 11}, Base: 2,
			Members: consensus.Membership{Voters: []uint64{7, 9}, Learners: []uint64{11}}},
	}
}

func FuzzDecodeEntry(f *testing.F) {
	for _, e := range seedEntries() {
		f.Add(encodeEntry(&e))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := decodeEntry(data)
		if err != nil {
			return
		}
		b := encodeEntry(&e)
		e2, err := decodeEntry(b)
		if err != nil {
			t.Fatalf("an entry that decoded re-encodes to %x, which does not decode: %v", b, err)
		}
		if b2 := encodeEntry(&e2); !bytes.Equal(b, b2) {
			t.Fatalf("round trip changed the entry: %x then %x", b, b2)
		}
	})
}

func FuzzDecodeHardState(f *testing.F) {
	f.Add(encodeHardState(consensus.HardState{}))
	f.Add(encodeHardState(consensus.HardState{Promised: consensus.Ballot{Round: 3, Node: 1 << 60}, Commit: 99, SeqCeiling: 1 << 40}))
	f.Fuzz(func(t *testing.T, data []byte) {
		hs, err := decodeHardState(data)
		if err != nil {
			return
		}
		b := encodeHardState(hs)
		if hs2, err := decodeHardState(b); err != nil || hs2 != hs {
			t.Fatalf("round trip: %+v, %v; want %+v", hs2, err, hs)
		}
	})
}

func seedMessages() []consensus.Message {
	es := seedEntries()
	return []consensus.Message{
		{Type: consensus.MsgProp, From: 2, To: 1, Values: es[1].Values},
		{Type: consensus.MsgAccept, From: 1, To: 2, Ballot: consensus.Ballot{Round: 1, Node: 7}, Commit: 1, Entries: es[:2]},
		{Type: consensus.MsgPromise, From: 3, To: 1, Ballot: consensus.Ballot{Round: 2, Node: 9}, Reject: true, Slot: 40},
		{Type: consensus.MsgHeartbeat, From: 1, To: 3, Ballot: consensus.Ballot{Round: 2, Node: 9}, Commit: 5, Round: 77, Force: true},
		{Type: consensus.MsgReadIndexResp, From: 1, To: 2, Slot: 12, Context: []byte("ctx")},
		{Type: consensus.MsgCatchup, From: 1, To: 4, Slot: 2, Entries: es[2:]},
	}
}

func FuzzDecodeMessage(f *testing.F) {
	for _, m := range seedMessages() {
		f.Add(encodeMessage(nil, &m))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := decodeMessage(data)
		if err != nil {
			return
		}
		c := cloneMessage(m)
		b := encodeMessage(nil, &c)
		m2, err := decodeMessage(b)
		if err != nil {
			t.Fatalf("a message that decoded re-encodes to %x, which does not decode: %v", b, err)
		}
		if b2 := encodeMessage(nil, &m2); !bytes.Equal(b, b2) {
			t.Fatalf("round trip changed the message: %x then %x", b, b2)
		}
	})
}

// FuzzPeerFrame: what servePeer does with one frame's payload, short of
// acting on it: split it into kind and data, and decode a message or a
// snapshot's begin.
func FuzzPeerFrame(f *testing.F) {
	for _, m := range seedMessages() {
		f.Add(appendPeerFrame(nil, peerMsg, func(b []byte) []byte { return encodeMessage(b, &m) })[4:])
	}
	f.Add(appendPeerFrame(nil, peerSnapBegin, func(b []byte) []byte { return append(b, 7, 0x80, 0x01) })[4:])
	f.Add(appendPeerFrame(nil, peerSnapChunk, func(b []byte) []byte { return append(b, "chunk"...) })[4:])
	f.Add(appendPeerFrame(nil, peerSnapEnd, nil)[4:])
	f.Add(appendPeerFrame(nil, peerSnapAck, func(b []byte) []byte { return append(b, 0, 'n', 'o') })[4:])
	f.Fuzz(func(t *testing.T, p []byte) {
		kind, data, err := parsePeerFrame(p)
		if err != nil {
			return
		}
		if len(data) != len(p)-6 {
			t.Fatalf("data of %d bytes from a payload of %d", len(data), len(p))
		}
		switch kind {
		case peerMsg:
			decodeMessage(data)
		case peerSnapBegin:
			d := dec{b: data}
			d.u()
			d.u()
			d.end("snapshot begin")
		}
	})
}

func seedSnapHeaders() [][]byte {
	d := make(dedup)
	for i := range uint64(5) {
		d.add(consensus.ProposalID{Node: 7, Seq: 10 - i})
	}
	d.add(consensus.ProposalID{Node: 9, Seq: 1})
	var out [][]byte
	for _, h := range []*snapHeader{
		{Dedup: make(dedup)},
		{Slot: 42, LastTime: -5, Config: consensus.ConfigState{Members: consensus.Membership{Voters: []uint64{7, 9}}, Since: 3,
			Prev: consensus.Membership{Voters: []uint64{7}}}, Dedup: d},
	} {
		var b bytes.Buffer
		h.write(&b)
		out = append(out, b.Bytes())
	}
	return out
}

func FuzzReadSnapHeader(f *testing.F) {
	for _, s := range seedSnapHeaders() {
		f.Add(s)
	}
	f.Add([]byte{0x80, 0x80, 0x80, 0x80, 0x04}) // claims 1 GiB of header
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := readSnapHeader(bufio.NewReader(bytes.NewReader(data)))
		if err != nil {
			return
		}
		var b bytes.Buffer
		if err := h.write(&b); err != nil {
			t.Fatal(err)
		}
		h2, err := readSnapHeader(bufio.NewReader(bytes.NewReader(b.Bytes())))
		if err != nil {
			t.Fatalf("a header that decoded re-encodes to %x, which does not decode: %v", b.Bytes(), err)
		}
		var b2 bytes.Buffer
		h2.write(&b2)
		if !bytes.Equal(b.Bytes(), b2.Bytes()) {
			t.Fatalf("round trip changed the header: %x then %x", b.Bytes(), b2.Bytes())
		}
	})
}

// FuzzReadStateSnapshot: a whole replica snapshot payload (header, then
// the tree), as a peer's snapshot transfer or a restore delivers it.
func FuzzReadStateSnapshot(f *testing.F) {
	tr := fs.New(fs.Config{})
	tr.Apply(&fs.Mutation{Kind: fs.MutTxn, Ops: []fs.Op{{Kind: fs.OpSet, Path: "/a/b", Rev: fs.Clobber, Body: []byte("body")}}})
	for _, h := range seedSnapHeaders() {
		var b bytes.Buffer
		b.Write(h)
		if err := tr.Capture()(&b); err != nil {
			f.Fatal(err)
		}
		f.Add(b.Bytes())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h, tree, err := readStateSnapshot(bytes.NewReader(data), fs.Config{})
		if err == nil && (h == nil || tree == nil) {
			t.Fatal("no error and no state")
		}
	})
}
