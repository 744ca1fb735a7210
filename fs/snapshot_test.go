package fs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

// snapTree is a small tree with every kind of state a snapshot holds.
func snapTree(t *testing.T) *Tree {
	t.Helper()
	tr := New(Config{})
	a := grantLease(t, tr, 7e9)
	grantLease(t, tr, 8e9)
	dead := grantLease(t, tr, 9e9)
	mustApply(t, tr, &Mutation{Kind: MutLeaseRevoke, Lease: dead})
	mustApply(t, tr, &Mutation{Kind: MutTxn, Time: 100, Ops: []Op{set("/a/b/c", 0, "abc"), mkdir("/empty", 0)}})
	mustApply(t, tr, &Mutation{Kind: MutTxn, Time: 200, Ops: []Op{setLease("/svc/web", 0, "10.0.0.1", a), set("/e", 0, "")}})
	mustApply(t, tr, &Mutation{Kind: MutTxn, Time: 300, System: true, Ops: []Op{set("/ctl/cluster", 0, "c1"), set("/big", 0, strings.Repeat("z", 70_000))}})
	mustApply(t, tr, &Mutation{Kind: MutTxn, Time: 400, Ops: []Op{del("/e", -1)}})
	return tr
}

func snapshotBytes(t *testing.T, tr *Tree) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := tr.WriteSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestSnapshotRoundTripsTheWholeState(t *testing.T) {
	src := snapTree(t)
	back, err := ReadSnapshot(bytes.NewReader(snapshotBytes(t, src)), Config{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := dump(t, back.View()), dump(t, src.View()); got != want {
		t.Errorf("tree:\n%s\nwant\n%s", got, want)
	}
	if back.Rev() != src.Rev() || fmt.Sprint(back.Leases()) != fmt.Sprint(src.Leases()) {
		t.Errorf("rev %d leases %v, want %d %v", back.Rev(), back.Leases(), src.Rev(), src.Leases())
	}
	if got := back.LeaseFiles(1); len(got) != 1 || got[0] != "/svc/web" {
		t.Errorf("LeaseFiles(1) = %v", got)
	}
	// The lease counter survives: the next id is 4, not 3 or 1.
	for _, tr := range []*Tree{src, back} {
		if id := grantLease(t, tr, 1); id != 4 {
			t.Errorf("next lease id %d, want 4", id)
		}
	}
	// Both go on identically.
	m := &Mutation{Kind: MutLeaseExpire, Lease: 1, Time: 500}
	r1, r2 := mustApply(t, src, m), mustApply(t, back, m)
	if describeResult(r1) != describeResult(r2) || dump(t, src.View()) != dump(t, back.View()) {
		t.Errorf("trees diverge after the snapshot")
	}
}

func TestSnapshotOfAnEmptyTreeRoundTrips(t *testing.T) {
	back, err := ReadSnapshot(bytes.NewReader(snapshotBytes(t, New(Config{}))), Config{})
	if err != nil {
		t.Fatal(err)
	}
	if back.Rev() != 0 || dump(t, back.View()) != dump(t, New(Config{}).View()) {
		t.Errorf("empty snapshot read back as rev %d", back.Rev())
	}
}

func TestReadSnapshotStopsAtTheSnapshotsEnd(t *testing.T) {
	b := snapshotBytes(t, snapTree(t))
	r := bytes.NewReader(append(append([]byte(nil), b...), "after"...))
	if _, err := ReadSnapshot(r, Config{}); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(r)
	if string(rest) != "after" {
		t.Errorf("ReadSnapshot left %q unread, want %q", rest, "after")
	}
}

func TestReadSnapshotRejectsEveryTruncation(t *testing.T) {
	b := snapshotBytes(t, snapTree(t))
	// Every length outside the big body; inside it, a sample.
	for n := 0; n < len(b); n++ {
		if n > 400 && n < len(b)-400 && n%4099 != 0 {
			continue
		}
		if _, err := ReadSnapshot(bytes.NewReader(b[:n]), Config{}); err == nil {
			t.Fatalf("a snapshot cut to %d of %d bytes was accepted", n, len(b))
		}
	}
}

func TestReadSnapshotRejectsEveryFlippedByte(t *testing.T) {
	b := snapshotBytes(t, snapTree(t))
	// Every byte outside the big body; inside it, a sample.
	for i := 0; i < len(b); i++ {
		if i > 400 && i < len(b)-400 && i%4099 != 0 {
			continue
		}
		c := append([]byte(nil), b...)
		c[i] ^= 0x5a
		if _, err := ReadSnapshot(bytes.NewReader(c), Config{}); err == nil {
			t.Fatalf("a snapshot with byte %d flipped was accepted", i)
		}
	}
}

func TestReadSnapshotRejectsWellFramedNonsense(t *testing.T) {
	tests := map[string]func(bw *blockWriter){
		"names out of order": func(bw *blockWriter) {
			header(bw, 5)
			file(bw, "b", 1)
			file(bw, "a", 1)
			bw.byte(tagEnd)
			counts(bw, 2, 0)
		},
		"duplicate names": func(bw *blockWriter) {
			header(bw, 5)
			file(bw, "a", 1)
			file(bw, "a", 1)
			bw.byte(tagEnd)
			counts(bw, 2, 0)
		},
		"bad name": func(bw *blockWriter) {
			header(bw, 5)
			file(bw, "..", 1)
			bw.byte(tagEnd)
			counts(bw, 1, 0)
		},
		"rev after the snapshot's": func(bw *blockWriter) {
			header(bw, 5)
			file(bw, "a", 6)
			bw.byte(tagEnd)
			counts(bw, 1, 0)
		},
		"wrong counts": func(bw *blockWriter) {
			header(bw, 5)
			file(bw, "a", 1)
			bw.byte(tagEnd)
			counts(bw, 2, 0)
		},
		"unclosed directory": func(bw *blockWriter) {
			header(bw, 5)
			bw.byte(tagDir)
			bw.string("d")
			bw.uvarint(1)
			bw.varint(0)
		},
		"unknown tag": func(bw *blockWriter) {
			header(bw, 5)
			bw.byte(7)
		},
		"data after the tree": func(bw *blockWriter) {
			header(bw, 5)
			bw.byte(tagEnd)
			counts(bw, 0, 0)
			bw.byte(0)
		},
		"huge body length": func(bw *blockWriter) {
			header(bw, 5)
			bw.byte(tagFile)
			bw.string("a")
			bw.uvarint(1)
			bw.varint(0)
			bw.uvarint(0)
			bw.uvarint(1 << 50)
		},
	}
	for name, write := range tests {
		var buf bytes.Buffer
		buf.WriteString(snapshotMagic + "\x01")
		bw := newBlockWriter(&buf)
		write(bw)
		bw.close()
		if _, err := ReadSnapshot(&buf, Config{}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// header writes rev, no leases and the root's rev and time.
func header(bw *blockWriter, rev uint64) {
	bw.uvarint(rev)
	bw.uvarint(0)
	bw.uvarint(0)
	bw.uvarint(0)
	bw.varint(0)
}

func file(bw *blockWriter, name string, rev uint64) {
	bw.byte(tagFile)
	bw.string(name)
	bw.uvarint(rev)
	bw.varint(0)
	bw.uvarint(0)
	bw.bytes(nil)
}

func counts(bw *blockWriter, files, dirs uint64) {
	bw.uvarint(files)
	bw.uvarint(dirs)
}

func TestReadSnapshotRejectsOtherFiles(t *testing.T) {
	for name, b := range map[string]string{
		"empty":           "",
		"bad magic":       "NOTASNAP\x01",
		"unknown version": snapshotMagic + "\x02",
		"no blocks":       snapshotMagic + "\x01",
		"giant block":     snapshotMagic + "\x01\xff\xff\xff\xff\x00\x00\x00\x00",
	} {
		if _, err := ReadSnapshot(strings.NewReader(b), Config{}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

type failWriter struct{ after int }

func (w *failWriter) Write(p []byte) (int, error) {
	if w.after -= len(p); w.after < 0 {
		return 0, errors.New("disk full")
	}
	return len(p), nil
}

func TestWriteSnapshotReportsWriteErrors(t *testing.T) {
	tr := snapTree(t)
	for _, after := range []int{0, 10, 50_000} {
		if err := tr.WriteSnapshot(&failWriter{after: after}); err == nil || err.Error() != "disk full" {
			t.Errorf("writer failing after %d bytes: %v", after, err)
		}
	}
}
