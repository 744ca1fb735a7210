package gossip

import (
	"context"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/doozerfs/doozerfs/wire"
)

// junkPayloads are bodies to put after a memberlist message-type byte:
// random bytes, and msgpack shapes that claim more than they hold.
func junkPayloads(r *rand.Rand) [][]byte {
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.UintN(256))
		}
		return b
	}
	return [][]byte{
		nil,
		random(1),
		random(40),
		random(1200),
		{0x80},                         // empty map
		{0xdf, 0xff, 0xff, 0xff, 0xff}, // map of 2³²-1 entries, none there
		{0xdd, 0xff, 0xff, 0xff, 0xff}, // array likewise
		{0xdb, 0x7f, 0xff, 0xff, 0xff}, // str of 2 GiB, none there
		{0x85, 0xa4, 'N', 'o', 'd', 'e', 0x05, 0xa4, 'A', 'd', 'd', 'r', 0xc0}, // wrong types
	}
}

// TestJunk: junk UDP packets and junk TCP streams, plain and encrypted,
// crash nothing, and the cluster goes on working.
func TestJunk(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  []byte
	}{{"plain", nil}, {"encrypted", []byte("0123456789abcdef")}} {
		t.Run(tc.name, func(t *testing.T) {
			a := startNode(t, "a", "", nodeOpts{key: tc.key})
			b := startNode(t, "b", "", nodeOpts{key: tc.key})
			b.join(t, a)
			waitFor(t, 10*time.Second, "a and b alive", sees([]*testNode{a, b}, StateAlive, "a", "b"), a, b)

			r := rand.New(rand.NewPCG(1, 2))
			sendJunkUDP(t, a.addr, r)
			sendJunkTCP(t, a.addr, r)

			c := startNode(t, "c", "", nodeOpts{key: tc.key})
			c.join(t, a)
			all := []*testNode{a, b, c}
			waitFor(t, 10*time.Second, "a, b, c alive", sees(all, StateAlive, "a", "b", "c"), all...)
			barrier(t, b, 42, all...)
			for _, o := range all {
				if got := names(o); !slices.Equal(got, []string{"a", "b", "c"}) {
					t.Errorf("%s sees %v", o.name, got)
				}
			}
		})
	}
}

func sendJunkUDP(t *testing.T, addr string, r *rand.Rand) {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sent := 0
	for typ := range 256 {
		for _, body := range junkPayloads(r) {
			c.Write(append([]byte{byte(typ)}, body...))
			sent++
			if sent%64 == 0 {
				time.Sleep(time.Millisecond) // let the receiver keep up; drops are fine either way
			}
		}
	}
	c.Write(nil)
	big := make([]byte, 65507)
	for i := range big {
		big[i] = byte(r.UintN(256))
	}
	c.Write(big)
}

func sendJunkTCP(t *testing.T, addr string, r *rand.Rand) {
	t.Helper()
	var wg sync.WaitGroup
	// Each junk stream must end: closed by the server or memberlist, within
	// memberlist's TCPTimeout at most.
	drain := func(c net.Conn) {
		defer wg.Done()
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.Copy(io.Discard, c); err != nil && isTimeout(err) {
			t.Errorf("a junk stream to %s stayed open", addr)
		}
	}
	raw := func(b []byte) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Error(err)
			return
		}
		c.Write(b)
		c.(*net.TCPConn).CloseWrite()
		wg.Add(1)
		go drain(c)
	}
	dial := HelloDialer(wire.Hello{Cluster: testCluster, Name: "junk"}, nil)
	gossip := func(b []byte, closeWrite bool) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := dial(ctx, addr)
		if err != nil {
			t.Error(err)
			return
		}
		c.Write(b)
		if closeWrite {
			c.(*net.TCPConn).CloseWrite()
		}
		wg.Add(1)
		go drain(c)
	}

	// No HELLO: the server refuses.
	raw([]byte("GET / HTTP/1.0\r\n\r\n"))
	raw([]byte{0, 0, 0, 3, 0xc1, 0xc1, 0xc1})
	raw([]byte{0xff, 0xff, 0xff, 0xff})
	// After a good HELLO, junk for memberlist, for every message type.
	for typ := range 256 {
		for _, body := range junkPayloads(r)[:5] {
			gossip(append([]byte{byte(typ)}, body...), true)
		}
	}
	gossip(nil, true)
	gossip([]byte{6}, false) // a push/pull that never comes: memberlist's timeout ends it
	wg.Wait()
}
