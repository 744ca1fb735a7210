package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"

	"github.com/doozerfs/doozerfs/fs"
)

func TestFramesRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	want := [][]byte{[]byte("a"), bytes.Repeat([]byte("b"), 100000), []byte("\x00\x01")}
	for _, p := range want {
		if err := WriteFrame(&buf, p); err != nil {
			t.Fatal(err)
		}
	}
	var scratch []byte
	for _, w := range want {
		got, err := ReadFrame(&buf, scratch, 0)
		if err != nil || !bytes.Equal(got, w) {
			t.Fatalf("got %d bytes, %v; want %d bytes", len(got), err, len(w))
		}
	}
	if _, err := ReadFrame(&buf, nil, 0); err != io.EOF {
		t.Errorf("after the last frame: got %v, want io.EOF", err)
	}
}

func TestFrameOverLimitIsErrFrameTooBig(t *testing.T) {
	frame := AppendFrame(nil, make([]byte, 101))
	_, err := ReadFrame(bytes.NewReader(frame), nil, 100)
	if !errors.Is(err, ErrFrameTooBig) {
		t.Errorf("got %v, want ErrFrameTooBig", err)
	}
	if k := AsError(err).Kind; k != fs.KindTooBig {
		t.Errorf("AsError kind: got %v, want TOO_BIG", k)
	}
}

func TestGiantLengthPrefixAllocatesNoBuffer(t *testing.T) {
	hdr := []byte{0xff, 0xff, 0xff, 0xff}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 100 {
		if _, err := ReadFrame(bytes.NewReader(hdr), nil, 0); !errors.Is(err, ErrFrameTooBig) {
			t.Fatalf("got %v, want ErrFrameTooBig", err)
		}
	}
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 64<<10 {
		t.Errorf("100 giant prefixes allocated %d bytes, want under 64 KiB", got)
	}
}

// TestAnnouncedButMissingPayloadCostsLittleMemory: a peer that announces a
// frame at the limit and then sends 10 bytes makes the reader grow its
// buffer by one step, not by the announced size.
func TestAnnouncedButMissingPayloadCostsLittleMemory(t *testing.T) {
	frame := binary.BigEndian.AppendUint32(nil, DefaultMaxFrame)
	frame = append(frame, "0123456789"...)
	var sizes []int
	r := readerFunc(func(p []byte) (int, error) {
		sizes = append(sizes, len(p))
		if len(frame) == 0 {
			return 0, io.EOF
		}
		n := copy(p, frame)
		frame = frame[n:]
		return n, nil
	})
	if _, err := ReadFrame(r, nil, 0); err != io.ErrUnexpectedEOF {
		t.Fatalf("got %v, want io.ErrUnexpectedEOF", err)
	}
	for _, n := range sizes {
		if n > growStep {
			t.Errorf("a read asked for %d bytes, want at most %d", n, growStep)
		}
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

func TestEmptyFrameIsBadRequestAndTheStreamGoesOn(t *testing.T) {
	var buf bytes.Buffer
	buf.Write([]byte{0, 0, 0, 0})
	WriteFrame(&buf, []byte("next"))
	if _, err := ReadFrame(&buf, nil, 0); !errors.Is(err, fs.ErrBadRequest) {
		t.Fatalf("empty frame: got %v, want BAD_REQUEST", err)
	}
	got, err := ReadFrame(&buf, nil, 0)
	if err != nil || string(got) != "next" {
		t.Errorf("next frame: got %q, %v; want %q", got, err, "next")
	}
}

func TestTruncatedFrameIsUnexpectedEOF(t *testing.T) {
	for _, b := range []string{"\x00\x00", "\x00\x00\x00\x05abc"} {
		if _, err := ReadFrame(bytes.NewReader([]byte(b)), nil, 0); err != io.ErrUnexpectedEOF {
			t.Errorf("%q: got %v, want io.ErrUnexpectedEOF", b, err)
		}
	}
}

func TestConnCarriesFramesFromManyWriters(t *testing.T) {
	a, b := net.Pipe()
	ca, cb := NewConn(a, 0), NewConn(b, 0)
	defer ca.Close()
	defer cb.Close()
	const writers, each = 8, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				resp := Response{Tag: uint32(w*each + i + 1), Rev: int64(i)}
				if err := ca.WriteResponse(&resp); err != nil {
					t.Errorf("WriteResponse: %v", err)
					return
				}
			}
		}()
	}
	seen := make(map[uint32]bool)
	for range writers * each {
		var resp Response
		if err := cb.ReadResponse(&resp); err != nil {
			t.Fatalf("ReadResponse: %v", err)
		}
		seen[resp.Tag] = true
	}
	wg.Wait()
	if len(seen) != writers*each {
		t.Errorf("got %d distinct tags, want %d", len(seen), writers*each)
	}
}

func TestConnWriteAfterCloseIsErrClosed(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	c := NewConn(a, 0)
	c.Close()
	if err := c.WriteFrame([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("got %v, want ErrClosed", err)
	}
}

func TestConnRefusesToWriteAFrameOverItsLimit(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	c := NewConn(a, 10)
	defer c.Close()
	if err := c.WriteFrame(make([]byte, 11)); !errors.Is(err, fs.ErrTooBig) {
		t.Errorf("got %v, want TOO_BIG", err)
	}
}
