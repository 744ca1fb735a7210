package mount

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/doozerfs/doozerfs/fs"
)

// The SNAPSHOT stream is a snapshot file (docs/protocol.md §5.5,
// docs/storage.md §3): a 40-byte header, the payload, and the payload's
// CRC-32C. The payload is the replica's (docs/storage.md §7.2): a
// length-prefixed replica header, then the fs tree snapshot.
const (
	snapFileMagic   = "dzfssnap"
	snapFileVersion = 1
	snapFileHeader  = 40
	snapFileTrailer = 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// readSnapshotStream checks a whole SNAPSHOT stream and reads its tree.
func readSnapshotStream(b []byte, cfg fs.Config) (*fs.Tree, error) {
	if len(b) < snapFileHeader+snapFileTrailer {
		return nil, fmt.Errorf("snapshot of %d bytes is shorter than its header and trailer", len(b))
	}
	h := b[:snapFileHeader]
	if string(h[:8]) != snapFileMagic {
		return nil, fmt.Errorf("bad magic %q: not a doozerfs snapshot file", h[:8])
	}
	if got, want := binary.LittleEndian.Uint32(h[36:]), crc32.Checksum(h[:36], castagnoli); got != want {
		return nil, errors.New("snapshot header CRC mismatch")
	}
	if v := binary.LittleEndian.Uint32(h[8:]); v != snapFileVersion {
		return nil, fmt.Errorf("unsupported snapshot format version %d", v)
	}
	size := binary.LittleEndian.Uint64(h[24:])
	if size != uint64(len(b)-snapFileHeader-snapFileTrailer) {
		return nil, fmt.Errorf("snapshot payload of %d bytes in a stream of %d", size, len(b))
	}
	payload := b[snapFileHeader : len(b)-snapFileTrailer]
	if got, want := binary.LittleEndian.Uint32(b[len(b)-snapFileTrailer:]), crc32.Checksum(payload, castagnoli); got != want {
		return nil, errors.New("snapshot payload CRC mismatch")
	}
	hlen, n := binary.Uvarint(payload)
	if n <= 0 || hlen > uint64(len(payload)-n) {
		return nil, errors.New("snapshot: bad replica header length")
	}
	return fs.ReadSnapshot(bytes.NewReader(payload[n+int(hlen):]), cfg)
}
