package gossip

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/doozerfs/doozerfs/fs"
	"github.com/doozerfs/doozerfs/wire"
	"github.com/hashicorp/memberlist"
)

// bareTransport is a Transport with no memberlist, and a server in front
// that counts the streams HandleWireConn holds.
type bareTransport struct {
	tr     *Transport
	tcp    *net.TCPListener
	addr   string
	active atomic.Int32
	wg     sync.WaitGroup
}

func newBare(t *testing.T, cluster string) *bareTransport {
	t.Helper()
	tcp, udp, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &bareTransport{tcp: tcp, addr: tcp.Addr().String()}
	b.tr, err = New(TransportConfig{
		UDP:        udp,
		Advertise:  tcp.Addr().(*net.TCPAddr),
		DialStream: HelloDialer(wire.Hello{Cluster: cluster, Name: "bare"}, nil),
		Logger:     testLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	policy := &wire.Policy{Cluster: testCluster, Name: "bare"}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			nc, err := tcp.Accept()
			if err != nil {
				return
			}
			b.wg.Add(1)
			go func() {
				defer b.wg.Done()
				defer nc.Close()
				c := wire.NewConn(nc, 0)
				nc.SetReadDeadline(time.Now().Add(2 * time.Second))
				h, _, err := wire.Accept(c, policy)
				if err != nil || h.Kind != wire.ConnGossip {
					return
				}
				b.active.Add(1)
				defer b.active.Add(-1)
				b.tr.HandleWireConn(c)
			}()
		}
	}()
	t.Cleanup(func() {
		b.tr.Shutdown()
		tcp.Close()
		b.wg.Wait()
	})
	return b
}

func recvPacket(t *testing.T, tr *Transport) *memberlist.Packet {
	t.Helper()
	select {
	case p := <-tr.PacketCh():
		return p
	case <-time.After(5 * time.Second):
		t.Fatal("no packet")
		return nil
	}
}

func recvStream(t *testing.T, tr *Transport) net.Conn {
	t.Helper()
	select {
	case c := <-tr.StreamCh():
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no stream")
		return nil
	}
}

func TestTransportPackets(t *testing.T) {
	a, b := newBare(t, testCluster), newBare(t, testCluster)

	before := time.Now()
	if _, err := a.tr.WriteToAddress([]byte("ping"), memberlist.Address{Addr: b.addr, Name: "b"}); err != nil {
		t.Fatal(err)
	}
	p := recvPacket(t, b.tr)
	if string(p.Buf) != "ping" || p.From.String() != a.addr {
		t.Errorf("got %q from %v; want ping from %s", p.Buf, p.From, a.addr)
	}
	if p.Timestamp.Before(before) || p.Timestamp.After(time.Now()) {
		t.Errorf("timestamp %v not between sending and now", p.Timestamp)
	}

	// An empty datagram is dropped; the loop goes on to the next, however big.
	raw, err := net.Dial("udp", b.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	big := bytes.Repeat([]byte{0xAB}, 65507)
	raw.Write(nil)
	raw.Write(big)
	if p := recvPacket(t, b.tr); !bytes.Equal(p.Buf, big) {
		t.Errorf("got %d bytes, want the %d-byte packet", len(p.Buf), len(big))
	}
	if _, err := a.tr.WriteTo([]byte("x"), "no-such-host.invalid:1"); err == nil {
		t.Error("WriteTo an unresolvable address")
	}

	ip, port, err := a.tr.FinalAdvertiseAddr("", 0)
	if err != nil || len(ip) != 4 || net.JoinHostPort(ip.String(), strconv.Itoa(port)) != a.addr {
		t.Errorf("FinalAdvertiseAddr: %v %d %v", ip, port, err)
	}
	if ip, port, err := a.tr.FinalAdvertiseAddr("10.1.2.3", 99); err != nil || ip.String() != "10.1.2.3" || port != 99 {
		t.Errorf("FinalAdvertiseAddr(10.1.2.3, 99): %v %d %v", ip, port, err)
	}
	if _, _, err := a.tr.FinalAdvertiseAddr("bogus", 1); err == nil {
		t.Error("FinalAdvertiseAddr(bogus)")
	}

	// After Shutdown: no reading, writes and dials fail, streams are closed.
	b.tr.Shutdown()
	b.tr.Shutdown()
	if _, err := b.tr.WriteTo([]byte("x"), a.addr); err == nil {
		t.Error("WriteTo after Shutdown")
	}
	if _, err := b.tr.DialTimeout(a.addr, time.Second); err == nil {
		t.Error("DialTimeout after Shutdown")
	}
	p1, p2 := net.Pipe()
	b.tr.HandleStream(p1)
	if _, err := p2.Read(make([]byte, 1)); err == nil {
		t.Error("HandleStream after Shutdown left the stream open")
	}
}

func TestNewErrors(t *testing.T) {
	_, udp, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	dial := HelloDialer(wire.Hello{}, nil)
	for _, cfg := range []TransportConfig{
		{Advertise: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, DialStream: dial},
		{UDP: udp, Advertise: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}},
		{UDP: udp, DialStream: dial},
		{UDP: udp, Advertise: &net.TCPAddr{IP: net.IPv4zero, Port: 1}, DialStream: dial},
		{UDP: udp, Advertise: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}, DialStream: dial},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) worked", cfg)
		}
	}
}

func TestTransportStreams(t *testing.T) {
	a, b := newBare(t, testCluster), newBare(t, testCluster)

	// A stream through HELLO carries bytes both ways, and the server's
	// handler returns when memberlist closes it.
	ca, err := a.tr.DialAddressTimeout(memberlist.Address{Addr: b.addr, Name: "b"}, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	sb := recvStream(t, b.tr)
	echo(t, ca, sb, "hi")
	echo(t, sb, ca, "there")
	if b.active.Load() != 1 {
		t.Errorf("%d streams held, want 1", b.active.Load())
	}
	sb.Close()
	waitFor(t, 5*time.Second, "the handler to return", func() bool { return b.active.Load() == 0 })
	expectEOF(t, ca)

	// A HELLO naming another cluster is refused.
	o := newBare(t, "other")
	_, err = o.tr.DialTimeout(b.addr, 2*time.Second)
	var fe *fs.Error
	if !errors.As(err, &fe) || fe.Kind != fs.KindBadRequest {
		t.Errorf("dial with another cluster: %v", err)
	}

	// Data sent with HELLO, before its reply, is refused.
	nc, err := net.Dial("tcp", b.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	hello := wire.AppendHello(nil, &wire.Hello{Version: wire.ProtocolVersion, Kind: wire.ConnGossip, Cluster: testCluster})
	nc.Write(append(hello, "early"...))
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	io.Copy(io.Discard, nc) // the reply, then EOF
	select {
	case c := <-b.tr.StreamCh():
		t.Errorf("a stream with early data reached memberlist: %v", c.RemoteAddr())
	default:
	}

	// A stream memberlist holds is closed by Shutdown, and the handler returns.
	ca2, err := a.tr.DialTimeout(b.addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer ca2.Close()
	recvStream(t, b.tr)
	b.tr.Shutdown()
	expectEOF(t, ca2)
	waitFor(t, 5*time.Second, "the handler to return", func() bool { return b.active.Load() == 0 })

	// Dials end when their context does: a server that never answers HELLO.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	start := time.Now()
	if _, err := a.tr.DialTimeout(silent.Addr().String(), 200*time.Millisecond); err == nil {
		t.Error("dial to a silent server worked")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("dial took %v with a 200ms timeout", d)
	}
}

func echo(t *testing.T, from, to net.Conn, msg string) {
	t.Helper()
	if _, err := from.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(msg))
	to.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(to, buf); err != nil || string(buf) != msg {
		t.Fatalf("read %q, %v; want %q", buf, err, msg)
	}
}

func expectEOF(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
		t.Errorf("read: %v; want the connection closed", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
