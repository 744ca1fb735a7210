package wire

import (
	"errors"
	"testing"

	"github.com/doozerfs/doozerfs/fs"
)

// FuzzDecodeHelloReply: the client's side of HELLO. A reply that decodes
// encodes back to the same reply (an error keeps only its kind and
// detail).
func FuzzDecodeHelloReply(f *testing.F) {
	for _, h := range []HelloReply{
		{Version: ProtocolVersion, Name: "r1", ID: 1 << 40, Cluster: "doozerfs", Access: AccessWrite},
		{Version: ProtocolVersion, Access: AccessRead},
		{Version: ProtocolVersion, Err: &fs.Error{Kind: fs.KindPermission, Detail: "hello: bad token"}},
		{Version: 2},
	} {
		f.Add(AppendHelloReply(nil, &h)[frameHeader:])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var h HelloReply
		if err := DecodeHelloReply(data, &h); err != nil {
			if !errors.Is(err, fs.ErrBadRequest) {
				t.Fatalf("error of the wrong kind: %v", err)
			}
			return
		}
		var again HelloReply
		if err := DecodeHelloReply(AppendHelloReply(nil, &h)[frameHeader:], &again); err != nil {
			t.Fatalf("round trip: %v", err)
		}
		same := again.Version == h.Version && again.Name == h.Name && again.ID == h.ID &&
			again.Cluster == h.Cluster && again.Access == h.Access && (again.Err == nil) == (h.Err == nil)
		if same && h.Err != nil {
			same = again.Err.Kind == h.Err.Kind && again.Err.Detail == h.Err.Detail
		}
		if !same {
			t.Fatalf("round trip: got %+v, want %+v", again, h)
		}
	})
}

// fuzzMsg is a generic message as peers and gossip may define them.
type fuzzMsg struct {
	Kind  string            `msgpack:"k"`
	Seq   uint64            `msgpack:"s"`
	Data  []byte            `msgpack:"d"`
	Names []string          `msgpack:"n"`
	Meta  map[string]string `msgpack:"m"`
	Next  *fuzzMsg          `msgpack:"x"`
}

// FuzzDecodeMsg: DecodeMsg checks a payload before msgpack decodes it, so
// that no input drives allocation past its size or recursion past
// MaxDepth; whatever it accepts into a struct or into any value, it
// accepts again after encoding.
func FuzzDecodeMsg(f *testing.F) {
	for _, v := range []any{
		&fuzzMsg{Kind: "ping", Seq: 7, Data: []byte{1, 2}, Names: []string{"a"}, Meta: map[string]string{"k": "v"}, Next: &fuzzMsg{Kind: "inner"}},
		map[string]any{"a": []any{1, "x", nil, true}},
		[]byte("raw"),
	} {
		b, err := AppendMsg(nil, v, 0)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[frameHeader:])
	}
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff}) // an array claiming 2^32-1 elements
	f.Fuzz(func(t *testing.T, data []byte) {
		var m fuzzMsg
		if err := DecodeMsg(data, &m); err == nil {
			b, err := AppendMsg(nil, &m, 1<<30)
			if err != nil {
				t.Fatalf("a decoded message does not encode: %v", err)
			}
			var again fuzzMsg
			if err := DecodeMsg(b[frameHeader:], &again); err != nil {
				t.Fatalf("round trip: %v", err)
			}
		} else if !errors.Is(err, fs.ErrBadRequest) {
			t.Fatalf("error of the wrong kind: %v", err)
		}
		var v any
		if err := DecodeMsg(data, &v); err != nil && !errors.Is(err, fs.ErrBadRequest) {
			t.Fatalf("error of the wrong kind: %v", err)
		}
	})
}
