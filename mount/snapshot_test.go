package mount

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"testing"

	"github.com/doozerfs/doozerfs/fs"
	"github.com/doozerfs/doozerfs/mount/internal/teststore"
)

// snapshotFile encodes t as a replica's SNAPSHOT stream does
// (docs/storage.md §3 and §7.2): the file header, a replica header the
// mount skips, the tree, and the payload's CRC-32C.
func snapshotFile(t *fs.Tree) ([]byte, error) {
	var tree bytes.Buffer
	if err := t.WriteSnapshot(&tree); err != nil {
		return nil, err
	}
	replicaHeader := []byte("DZREPL\x00\x01 whatever the replica keeps")
	payload := binary.AppendUvarint(nil, uint64(len(replicaHeader)))
	payload = append(payload, replicaHeader...)
	payload = append(payload, tree.Bytes()...)
	h := make([]byte, snapFileHeader)
	copy(h, snapFileMagic)
	binary.LittleEndian.PutUint32(h[8:], snapFileVersion)
	binary.LittleEndian.PutUint64(h[16:], 7)
	binary.LittleEndian.PutUint64(h[24:], uint64(len(payload)))
	binary.LittleEndian.PutUint32(h[36:], crc32.Checksum(h[:36], castagnoli))
	out := append(h, payload...)
	return binary.LittleEndian.AppendUint32(out, crc32.Checksum(payload, castagnoli)), nil
}

// A Mirror used to read the SNAPSHOT stream as a bare fs snapshot, so
// `doozerfs mount` failed against a real replica with "bad magic".
func TestMirrorReadsTheSnapshotFileFormatOfTheProtocol(t *testing.T) {
	s := teststore.New()
	s.Set("/a", []byte("x"))
	b, err := snapshotFile(s.Tree())
	if err != nil {
		t.Fatal(err)
	}
	got, err := readSnapshotStream(b, fs.Config{})
	if err != nil {
		t.Fatalf("readSnapshotStream: %v", err)
	}
	if got.Rev() != s.Rev() {
		t.Errorf("rev %d, want %d", got.Rev(), s.Rev())
	}
	if body, _, err := got.View().Get("/a"); err != nil || string(body) != "x" {
		t.Errorf("/a: %q, %v", body, err)
	}

	var bare bytes.Buffer
	if err := s.Tree().WriteSnapshot(&bare); err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string][]byte{
		"bare fs snapshot": bare.Bytes(),
		"header CRC":       flip(b, 16),
		"payload CRC":      flip(b, snapFileHeader+5),
		"cut short":        b[:len(b)-1],
	} {
		if _, err := readSnapshotStream(bad, fs.Config{}); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// flip returns a copy of b with byte i changed.
func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i]++
	return c
}
