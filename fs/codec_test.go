package fs

import (
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"testing"
)

func fullMutation() *Mutation {
	return &Mutation{
		Kind: MutTxn, Time: 1_700_000_000_123456789, Lease: 3, TTL: -5, System: true,
		Ops: []Op{
			{Kind: OpSet, Path: "/a/b", Rev: -1, Body: []byte("hello\x00world"), Lease: 9},
			{Kind: OpDel, Path: "/c", Rev: 12345678901},
			{Kind: OpMkdir, Path: "/d", Rev: 0},
			{Kind: OpCheck, Path: "/日本", Rev: 7},
		},
	}
}

func TestMutationRoundTripsThroughItsEncoding(t *testing.T) {
	for _, m := range []*Mutation{
		fullMutation(),
		{Kind: MutNop},
		{Kind: MutLeaseGrant, TTL: 10e9, Time: -1},
		{Kind: MutLeaseExpire, Lease: 1 << 62},
		{Kind: MutTxn, Ops: []Op{set("/e", 0, "")}},
	} {
		b, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var got Mutation
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatalf("UnmarshalBinary(%x): %v", b, err)
		}
		normalizeBodies(m)
		if !reflect.DeepEqual(&got, m) {
			t.Errorf("round trip:\n%+v\nwant\n%+v", got, *m)
		}
	}
}

// normalizeBodies makes empty bodies nil, as decoding does.
func normalizeBodies(m *Mutation) {
	for i := range m.Ops {
		if len(m.Ops[i].Body) == 0 {
			m.Ops[i].Body = nil
		}
	}
}

// TestMutationEncodingIsStable pins the format documented in
// docs/data-model.md: a change here breaks every WAL on disk.
func TestMutationEncodingIsStable(t *testing.T) {
	m := &Mutation{Kind: MutTxn, Time: 5, System: true, Ops: []Op{{Kind: OpSet, Path: "/a", Rev: -1, Body: []byte("x"), Lease: 2}}}
	b, _ := m.MarshalBinary()
	// version 1, kind 1, flags 1, time 5 (zigzag 0a), lease 0, ttl 0, 1 op:
	// kind 1, rev -1 (zigzag 01), lease 2 (zigzag 04), path "/a", body "x".
	want := "01" + "01" + "01" + "0a" + "00" + "00" + "01" + "01" + "01" + "04" + "022f61" + "0178"
	if got := hex.EncodeToString(b); got != want {
		t.Errorf("encoding %s, want %s", got, want)
	}
}

func TestUnmarshalCopiesWhatItKeeps(t *testing.T) {
	b, _ := fullMutation().MarshalBinary()
	var m Mutation
	if err := m.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 0xEE
	}
	if string(m.Ops[0].Body) != "hello\x00world" || m.Ops[0].Path != "/a/b" {
		t.Errorf("decoded mutation changed with its input: %q %q", m.Ops[0].Path, m.Ops[0].Body)
	}
}

func TestUnmarshalRejectsEveryTruncation(t *testing.T) {
	b, _ := fullMutation().MarshalBinary()
	for n := 0; n < len(b); n++ {
		var m Mutation
		if err := m.UnmarshalBinary(b[:n]); !errors.Is(err, ErrBadRequest) {
			t.Fatalf("UnmarshalBinary of %d/%d bytes: %v, want BAD_REQUEST", n, len(b), err)
		}
	}
}

func TestUnmarshalRejectsMalformedInput(t *testing.T) {
	good, _ := fullMutation().MarshalBinary()
	tests := map[string][]byte{
		"unknown version":  append([]byte{2}, good[1:]...),
		"unknown flags":    append([]byte{1, 1, 0x82}, good[3:]...),
		"trailing bytes":   append(append([]byte(nil), good...), 0),
		"huge op count":    {1, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"op count > bytes": {1, 1, 0, 0, 0, 0, 100, 1, 0, 0, 0, 0},
		"huge path length": {1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 0},
		"overlong varint":  {1, 1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"empty":            {},
	}
	for name, b := range tests {
		m := Mutation{Kind: MutNop, Time: 42}
		err := m.UnmarshalBinary(b)
		if !errors.Is(err, ErrBadRequest) {
			t.Errorf("%s: %v, want BAD_REQUEST", name, err)
		}
		if m.Kind != MutNop || m.Time != 42 {
			t.Errorf("%s: a failed decode changed the mutation: %+v", name, m)
		}
	}
}

func TestUnmarshalLeavesPathsAndKindsToApply(t *testing.T) {
	m := &Mutation{Kind: 77, Ops: []Op{{Kind: 9, Path: "not a path"}}}
	b, _ := m.MarshalBinary()
	var got Mutation
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatalf("UnmarshalBinary: %v", err)
	}
	if _, err := New(Config{}).Apply(&got); !errors.Is(err, ErrBadRequest) {
		t.Errorf("Apply of a decoded unknown kind: %v, want BAD_REQUEST", err)
	}
}

func TestEncodingIsCompact(t *testing.T) {
	body := bytes.Repeat([]byte("x"), 256)
	m := &Mutation{Kind: MutTxn, Time: 1_700_000_000_000_000_000, Ops: []Op{{Kind: OpSet, Path: "/svc/web/10.0.0.1", Rev: -1, Body: body}}}
	b, _ := m.MarshalBinary()
	if overhead := len(b) - len(body) - len(m.Ops[0].Path); overhead > 24 {
		t.Errorf("a SET costs %d bytes beyond path and body", overhead)
	}
}
