package gossip

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/hashicorp/memberlist"
)

// Meta is what a replica tells the other members about itself, carried in
// memberlist's node metadata.
type Meta struct {
	ID      uint64 // the replica's id in consensus (0: not yet known)
	Addr    string // the address clients and peers reach it at, host:port
	Cluster string // the cluster's name; members of another cluster are refused
}

// MetaMaxSize is the most bytes an encoded Meta may take: memberlist's limit
// on node metadata.
const MetaMaxSize = memberlist.MetaMaxSize

// The encoding of Meta:
//
//	byte    version (metaVersion)
//	byte    flags (metaLeaving; unknown bits are ignored)
//	uvarint ID
//	uvarint len(Addr), Addr
//	uvarint len(Cluster), Cluster
//
// and nothing after.
const (
	metaVersion = 1

	// metaLeaving marks a member that has begun to leave on purpose.
	// memberlist v0.7.0 reports a left node and a dead one alike to its
	// event delegate (it never sets Node.State), so Members.Leave sets
	// this flag and gossips it before memberlist's own leave message; the
	// others then record the departure as left, not dead.
	metaLeaving = 1 << 0
)

// EncodeMeta encodes m for memberlist's node metadata. It fails if the
// result would be over MetaMaxSize.
func EncodeMeta(m Meta) ([]byte, error) { return encodeMeta(m, 0) }

// DecodeMeta decodes node metadata made by EncodeMeta. Anything else, a
// version other than this package's, or bytes left over, is an error.
func DecodeMeta(b []byte) (Meta, error) {
	m, _, err := decodeMeta(b)
	return m, err
}

func encodeMeta(m Meta, flags byte) ([]byte, error) {
	n := 2 + 3*binary.MaxVarintLen64 + len(m.Addr) + len(m.Cluster)
	if n > 4*MetaMaxSize {
		n = 4 * MetaMaxSize // the check below fails anyway
	}
	b := make([]byte, 0, n)
	b = append(b, metaVersion, flags)
	b = binary.AppendUvarint(b, m.ID)
	b = binary.AppendUvarint(b, uint64(len(m.Addr)))
	b = append(b, m.Addr...)
	b = binary.AppendUvarint(b, uint64(len(m.Cluster)))
	b = append(b, m.Cluster...)
	if len(b) > MetaMaxSize {
		return nil, fmt.Errorf("gossip: meta takes %d bytes, more than memberlist's limit of %d", len(b), MetaMaxSize)
	}
	return b, nil
}

var errMetaShort = errors.New("gossip: meta: truncated")

func decodeMeta(b []byte) (Meta, byte, error) {
	var m Meta
	if len(b) < 2 {
		return m, 0, errMetaShort
	}
	if b[0] != metaVersion {
		return m, 0, fmt.Errorf("gossip: meta: version %d not supported (this replica reads %d)", b[0], metaVersion)
	}
	flags := b[1]
	b = b[2:]
	id, n := uvarint(b)
	if n <= 0 {
		return m, 0, errMetaShort
	}
	b = b[n:]
	var err error
	if m.Addr, b, err = metaString(b); err != nil {
		return m, 0, err
	}
	if m.Cluster, b, err = metaString(b); err != nil {
		return m, 0, err
	}
	if len(b) != 0 {
		return m, 0, fmt.Errorf("gossip: meta: %d bytes left over", len(b))
	}
	m.ID = id
	return m, flags, nil
}

// uvarint is binary.Uvarint refusing (n = 0) a number in more bytes than
// it needs, so that each Meta has one encoding.
func uvarint(b []byte) (uint64, int) {
	v, n := binary.Uvarint(b)
	if n > 1 && b[n-1] == 0 {
		return 0, 0
	}
	return v, n
}

func metaString(b []byte) (string, []byte, error) {
	l, n := uvarint(b)
	if n <= 0 || l > uint64(len(b)-n) {
		return "", nil, errMetaShort
	}
	b = b[n:]
	return string(b[:l]), b[l:], nil
}
