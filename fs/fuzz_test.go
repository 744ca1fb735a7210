package fs

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// The fuzz targets run their seed corpora (testdata/fuzz/...) as regression
// tests in every plain `go test`; `go test -fuzz=FuzzX` explores further.

func FuzzValidPath(f *testing.F) {
	for _, p := range []string{"/", "/a/b", "", "a", "/a/", "//", "/.", "/..", "/a\x00", "/\xff", "/日本", "/" + strings.Repeat("x", 256)} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		err := ValidPath(p)
		if want := modelValidPath(p); (err == nil) != want {
			t.Fatalf("ValidPath(%q) = %v, spec says valid=%v", p, err, want)
		}
		if err != nil && !errors.Is(err, ErrBadPath) {
			t.Fatalf("ValidPath(%q) = %v, not BAD_PATH", p, err)
		}
	})
}

func FuzzGlob(f *testing.F) {
	for _, s := range [][2]string{
		{"/**", "/a/b"}, {"/a/*", "/a/b"}, {"/a?c", "/abc"}, {"/a/**/b", "/a/x/y/b"}, {"/*b*", "/abc"},
		{"/é?", "/éé"}, {"/a**", "/ab"}, {"/", "/"}, {"/**/**", "/"}, {"/*/*", "/a"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, path string) {
		g, err := CompileGlob(pattern)
		if err != nil {
			if !errors.Is(err, ErrBadPath) {
				t.Fatalf("CompileGlob(%q) = %v, not BAD_PATH", pattern, err)
			}
			return
		}
		got := g.Match(path)
		if strings.Count(pattern, "*") > 10 {
			return // the naive matcher is exponential
		}
		if want := naiveMatch(pattern, path); got != want {
			t.Fatalf("%q.Match(%q) = %v, naive matcher says %v", pattern, path, got, want)
		}
	})
}

func FuzzMutationUnmarshal(f *testing.F) {
	for _, m := range []*Mutation{
		fullMutation(), {Kind: MutNop}, {Kind: MutLeaseGrant, TTL: 1e9},
		{Kind: MutLeaseRevoke, Lease: 1}, tx(set("/a/b", 0, "x"), del("/a", -1), mkdir("/d", 0), check("/d", 3)),
	} {
		b, _ := m.MarshalBinary()
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{1, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Mutation
		if err := m.UnmarshalBinary(b); err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("UnmarshalBinary: %v, not BAD_REQUEST", err)
			}
			return
		}
		again, _ := m.MarshalBinary()
		var m2 Mutation
		if err := m2.UnmarshalBinary(again); err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip: %v\n%+v\n%+v", err, m, m2)
		}
		// Whatever decodes, Apply answers without panicking.
		tr := New(Config{History: 4})
		grantLease(t, tr, 1)
		mustOps(t, tr, set("/a/b", 0, "x"), mkdir("/d", 0))
		before := dump(t, tr.View())
		if _, err := tr.Apply(&m); err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Apply error %v is not an *Error", err)
			}
			if dump(t, tr.View()) != before {
				t.Fatalf("a failed Apply changed the tree")
			}
		}
	})
}

func FuzzReadSnapshot(f *testing.F) {
	f.Add(seedSnapshot(New(Config{})))
	small := New(Config{})
	small.Apply(&Mutation{Kind: MutLeaseGrant, TTL: 1})
	small.Apply(tx(set("/a/b", 0, "x"), mkdir("/d", 0), setLease("/e", 0, "y", 1)))
	f.Add(seedSnapshot(small))
	f.Add([]byte(snapshotMagic + "\x01"))
	f.Add(append([]byte{1}, snapshotPayload(seedSnapshot(small))...))
	f.Fuzz(func(t *testing.T, b []byte) {
		// An odd first byte means the rest is a payload to frame in valid
		// blocks, so that fuzzing reaches past the checksums.
		if len(b) > 0 && b[0]&1 == 1 {
			b = framePayload(b[1:])
		}
		tr, err := ReadSnapshot(bytes.NewReader(b), Config{History: 4})
		if err != nil {
			return
		}
		back, err := ReadSnapshot(bytes.NewReader(snapshotBytes(t, tr)), Config{History: 4})
		if err != nil {
			t.Fatalf("a snapshot written from an accepted one does not read back: %v", err)
		}
		if dump(t, back.View()) != dump(t, tr.View()) || back.Rev() != tr.Rev() {
			t.Fatalf("snapshot round trip differs")
		}
	})
}

// seedSnapshot returns tr's snapshot, for seeding a fuzz target.
func seedSnapshot(tr *Tree) []byte {
	var buf bytes.Buffer
	if err := tr.WriteSnapshot(&buf); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// snapshotPayload returns the payload of a snapshot: its blocks' data.
func snapshotPayload(snap []byte) []byte {
	br := &blockReader{r: bytes.NewReader(snap[len(snapshotMagic)+1:])}
	var out []byte
	for br.next() == nil {
		out = append(out, br.buf...)
	}
	return out
}

// framePayload wraps payload in a snapshot's magic, version and blocks.
func framePayload(payload []byte) []byte {
	var buf bytes.Buffer
	buf.WriteString(snapshotMagic + "\x01")
	bw := newBlockWriter(&buf)
	bw.Write(payload)
	bw.close()
	return buf.Bytes()
}
