package wire

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"

	"github.com/doozerfs/doozerfs/fs"
)

// The fuzz targets' seed corpora live in testdata/fuzz/<target>/; plain
// `go test` runs them as regression tests. `make fuzz` explores further.

// FuzzReadFrame: any byte stream gives a payload within the limit that is
// exactly the bytes after the prefix, or an error; never a panic.
func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 0x80})
	f.Fuzz(func(t *testing.T, data []byte) {
		const max = 1 << 12
		p, err := ReadFrame(bytes.NewReader(data), nil, max)
		if err != nil {
			if !errors.Is(err, ErrFrameTooBig) && !errors.Is(err, fs.ErrBadRequest) &&
				err != io.EOF && err != io.ErrUnexpectedEOF {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if len(p) == 0 || len(p) > max || !bytes.Equal(p, data[frameHeader:frameHeader+len(p)]) {
			t.Fatalf("got a payload of %d bytes that is not the frame's", len(p))
		}
	})
}

// FuzzDecodeHello: a HELLO that decodes encodes back to the same HELLO.
func FuzzDecodeHello(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		var h Hello
		if err := DecodeHello(data, &h); err != nil {
			if !errors.Is(err, fs.ErrBadRequest) {
				t.Fatalf("error of the wrong kind: %v", err)
			}
			return
		}
		var again Hello
		if err := DecodeHello(AppendHello(nil, &h)[frameHeader:], &again); err != nil || again != h {
			t.Fatalf("round trip: got %+v, %v; want %+v", again, err, h)
		}
	})
}

// FuzzDecodeRequest: decoding never panics, errors are BAD_REQUEST or
// UNKNOWN_VERB, and a request that decodes encodes back to itself.
func FuzzDecodeRequest(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		var req Request
		if err := DecodeRequest(data, &req); err != nil {
			if k := fs.KindOf(err); k != fs.KindBadRequest && k != fs.KindUnknownVerb {
				t.Fatalf("error of the wrong kind: %v", err)
			}
			return
		}
		b, err := AppendRequest(nil, &req, len(data)+frameHeader+64)
		if err != nil {
			t.Fatalf("a decoded request does not encode: %v", err)
		}
		var again Request
		if err := DecodeRequest(b[frameHeader:], &again); err != nil || !reflect.DeepEqual(normal(again), normal(req)) {
			t.Fatalf("round trip: got %+v, %v; want %+v", again, err, req)
		}
	})
}

// FuzzDecodeResponse: as FuzzDecodeRequest, for the client's side.
func FuzzDecodeResponse(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		var resp Response
		if err := DecodeResponse(data, &resp); err != nil {
			if !errors.Is(err, fs.ErrBadRequest) {
				t.Fatalf("error of the wrong kind: %v", err)
			}
			return
		}
		b, err := AppendResponse(nil, &resp, 1<<30)
		if err != nil {
			t.Fatalf("a decoded response does not encode: %v", err)
		}
		var again Response
		if err := DecodeResponse(b[frameHeader:], &again); err != nil {
			t.Fatalf("round trip: %v", err)
		}
		if b2, _ := AppendResponse(nil, &again, 1<<30); !bytes.Equal(b, b2) {
			t.Fatalf("round trip changed the response: %+v then %+v", resp, again)
		}
	})
}

// normal maps the empty bodies a decoder may give as []byte{} to nil, as
// the encoder leaves empty bodies out.
func normal(r Request) Request {
	if len(r.Body) == 0 {
		r.Body = nil
	}
	for i := range r.Ops {
		if len(r.Ops[i].Body) == 0 {
			r.Ops[i].Body = nil
		}
	}
	return r
}
