package wal

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

const fuzzMaxRecord = 1 << 16

// FuzzScanSegment feeds arbitrary bytes to the segment reader, as a whole
// file or after a valid header: it must never panic, never report a good
// end past the file, and never size an allocation from a length field
// beyond MaxRecord (the scanner refuses those before allocating).
func FuzzScanSegment(f *testing.F) {
	f.Add([]byte{}, true)
	f.Add(appendFrame(nil, 1, 1, 1, []byte("hello")), true)
	f.Add(appendFrame(appendFrame(nil, 1, 1, 1, []byte("a")), typeCommit, 1, 1, nil), true)
	f.Fuzz(func(t *testing.T, body []byte, withHeader bool) {
		file := body
		if withHeader {
			file = append(segHeader{seq: 1, first: 1, gen: 1}.encode(), body...)
		}
		size := int64(len(file))
		r := bytes.NewReader(file)
		res, err := scanSegment(r, size, segExpect{seq: 1, first: 1}, fuzzMaxRecord)
		if err != nil {
			t.Fatalf("scanSegment on memory: %v", err)
		}
		if res.end > size {
			t.Fatalf("records end at %d, past the %d-byte file", res.end, size)
		}
		if res.headerOK && res.next-1 > uint64(res.frames) {
			t.Fatalf("index advanced to %d over %d frames", res.next, res.frames)
		}
		if res.damage != nil && res.headerOK {
			if _, _, err := laterBatch(r, size, res.end, res.gen, res.next, fuzzMaxRecord); err != nil {
				t.Fatalf("laterBatch on memory: %v", err)
			}
		}
	})
}

// FuzzOpenSegment writes arbitrary bytes as the only segment of a WAL and
// opens it, with and without Repair. Open may refuse; if it accepts, the
// log it leaves must replay, take a new record, and reopen cleanly without
// Repair showing the same records plus the new one.
func FuzzOpenSegment(f *testing.F) {
	f.Add([]byte{}, false)
	f.Add(segHeader{seq: 1, first: 1, gen: 1}.encode(), false)
	f.Fuzz(func(t *testing.T, file []byte, repair bool) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, segName(1, 1)), file, 0o600); err != nil {
			t.Fatal(err)
		}
		opts := Options{SegmentSize: minSegmentSize, MaxRecord: fuzzMaxRecord, Repair: repair, NoPreallocate: true}
		w, err := Open(dir, opts)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open failed with something other than ErrCorrupt: %v", err)
			}
			return
		}
		before := replayAll(t, w, 0)
		extra := Record{Type: 9, Data: []byte("after")}
		appendSynced(t, w, extra)
		mustClose(t, w)
		opts.Repair = false
		w, err = Open(dir, opts)
		if err != nil {
			t.Fatalf("reopening a log Open had accepted: %v", err)
		}
		defer w.Close()
		after := replayAll(t, w, 0)
		if len(after) != len(before)+1 {
			t.Fatalf("got %d records after reopening, want %d", len(after), len(before)+1)
		}
		for i, r := range before {
			if after[i].index != r.index || !bytes.Equal(after[i].rec.Data, r.rec.Data) {
				t.Fatalf("record %d changed across a reopen", i)
			}
		}
	})
}

// FuzzReadSnapshot checks the snapshot reader on arbitrary bytes: no
// panic, no allocation from the length field, and acceptance only of a
// stream whose size adds up.
func FuzzReadSnapshot(f *testing.F) {
	f.Add([]byte{})
	f.Add(encodeSnapHeader(1, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		index, size, err := VerifySnapshot(bytes.NewReader(b))
		if err != nil {
			return
		}
		if size != int64(len(b))-snapHeaderSize-snapTrailerSize {
			t.Fatalf("accepted a %d-byte stream with a payload of %d", len(b), size)
		}
		sr, err := ReadSnapshot(bytes.NewReader(b))
		if err != nil || sr.Index != index {
			t.Fatalf("ReadSnapshot disagrees with VerifySnapshot: %v", err)
		}
		p, err := io.ReadAll(sr)
		if err != nil || !bytes.Equal(p, b[snapHeaderSize:len(b)-snapTrailerSize]) {
			t.Fatalf("payload read back differs (%v)", err)
		}
	})
}
