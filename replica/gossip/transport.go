package gossip

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/doozerfs/doozerfs/wire"
	"github.com/hashicorp/memberlist"
)

const (
	// udpPacketBufSize holds the largest UDP payload.
	udpPacketBufSize = 65536
	// udpRecvBufSize is the socket receive buffer asked for (as memberlist's
	// own transport does), halved until the kernel accepts it.
	udpRecvBufSize = 2 << 20
	// handoffTimeout bounds how long HandleStream waits for memberlist to
	// take a connection (it takes them at once while it runs).
	handoffTimeout = 10 * time.Second
)

// TransportConfig configures a Transport.
type TransportConfig struct {
	// UDP is the replica's UDP socket, bound to the same port as its TCP
	// listener (see Listen). The Transport owns it from New on: Shutdown
	// closes it.
	UDP *net.UDPConn

	// Advertise is the address other members reach this one at, for UDP
	// and TCP alike. Its IP must be a specific one (not 0.0.0.0 or ::).
	Advertise *net.TCPAddr

	// DialStream opens a stream to another member: it dials TCP (with TLS
	// if configured), runs the HELLO handshake with kind gossip, and
	// returns the connection with nothing read past the HELLO reply, ready
	// for memberlist's stream protocol. ctx bounds all of it. HelloDialer
	// makes one.
	DialStream func(ctx context.Context, addr string) (net.Conn, error)

	// Logger receives the transport's own messages; nil means slog.Default().
	Logger *slog.Logger
}

// Transport is a memberlist.NodeAwareTransport over a replica's single
// address: packets on its UDP socket, streams dialled by DialStream and
// accepted by the replica's server. Create it with New, hand it to Start
// (or memberlist.Create), and let memberlist shut it down.
type Transport struct {
	udp        *net.UDPConn
	advertise  *net.TCPAddr
	dialStream func(ctx context.Context, addr string) (net.Conn, error)
	log        *slog.Logger

	packetCh chan *memberlist.Packet
	streamCh chan net.Conn

	shutdownOnce sync.Once
	done         chan struct{}   // closed by Shutdown
	ctx          context.Context // ended by Shutdown
	cancel       context.CancelFunc
	wg           sync.WaitGroup
}

var _ memberlist.NodeAwareTransport = (*Transport)(nil)

// New makes a Transport and starts reading cfg.UDP. On error cfg.UDP is
// left open.
func New(cfg TransportConfig) (*Transport, error) {
	switch {
	case cfg.UDP == nil:
		return nil, errors.New("gossip: transport: no UDP socket")
	case cfg.DialStream == nil:
		return nil, errors.New("gossip: transport: no DialStream")
	case cfg.Advertise == nil || cfg.Advertise.IP == nil || cfg.Advertise.IP.IsUnspecified() ||
		cfg.Advertise.Port <= 0 || cfg.Advertise.Port > 65535:
		return nil, fmt.Errorf("gossip: transport: advertise address %v is not a specific IP and port", cfg.Advertise)
	}
	t := &Transport{
		udp:        cfg.UDP,
		advertise:  cfg.Advertise,
		dialStream: cfg.DialStream,
		log:        cfg.Logger,
		packetCh:   make(chan *memberlist.Packet),
		streamCh:   make(chan net.Conn),
		done:       make(chan struct{}),
	}
	if t.log == nil {
		t.log = slog.Default()
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	for size := udpRecvBufSize; size > 0; size /= 2 {
		if cfg.UDP.SetReadBuffer(size) == nil {
			break
		}
	}
	t.wg.Add(1)
	go t.readPackets()
	return t, nil
}

// FinalAdvertiseAddr returns ip and port if memberlist was configured with
// an advertise address, else TransportConfig.Advertise.
func (t *Transport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	if ip != "" {
		a := net.ParseIP(ip)
		if a == nil {
			return nil, 0, fmt.Errorf("gossip: transport: bad advertise address %q", ip)
		}
		if a4 := a.To4(); a4 != nil {
			a = a4
		}
		return a, port, nil
	}
	a := t.advertise.IP
	if a4 := a.To4(); a4 != nil {
		a = a4
	}
	return a, t.advertise.Port, nil
}

// WriteTo sends b as one UDP packet to addr (host:port) and returns the time
// it was sent.
func (t *Transport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress sends b as one UDP packet to a.Addr and returns the time it
// was sent.
func (t *Transport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	ap, err := resolveUDP(a.Addr)
	if err != nil {
		return time.Time{}, err
	}
	_, err = t.udp.WriteToUDPAddrPort(b, ap)
	return time.Now(), err
}

func resolveUDP(addr string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
	}
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return netip.AddrPort{}, err
	}
	ap := ua.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// PacketCh returns the packets received on the UDP socket, each stamped
// with the time it was read.
func (t *Transport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

// DialTimeout opens a stream to addr through DialStream.
func (t *Transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout opens a stream to a.Addr through DialStream, giving it
// timeout (≤ 0: no limit but Shutdown, which ends dials in progress).
func (t *Transport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	ctx := t.ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	if t.stopped() {
		return nil, net.ErrClosed
	}
	c, err := t.dialStream(ctx, a.Addr)
	if err != nil {
		return nil, fmt.Errorf("gossip: dial %s: %w", a.String(), err)
	}
	return c, nil
}

// StreamCh returns the streams handed over by HandleStream.
func (t *Transport) StreamCh() <-chan net.Conn { return t.streamCh }

// HandleStream gives memberlist a TCP connection whose HELLO said gossip
// (the HELLO reply written, nothing read past the HELLO). It clears c's
// deadlines and returns when memberlist has finished with c and closed it,
// or, if the transport is shut down or memberlist does not take c in time,
// after closing c itself. So a server's accounting of its connections, and
// its closing of them when it stops, go on working; closing c again after
// HandleStream returns is harmless.
func (t *Transport) HandleStream(c net.Conn) {
	c.SetDeadline(time.Time{})
	sc := &streamConn{Conn: c, closed: make(chan struct{})}
	timer := time.NewTimer(handoffTimeout)
	defer timer.Stop()
	select {
	case <-t.done:
		c.Close()
		return
	default:
	}
	select {
	case t.streamCh <- sc:
	case <-t.done:
		c.Close()
		return
	case <-timer.C:
		t.log.Warn("gossip: memberlist did not take a stream; closing it", "remote", c.RemoteAddr().String())
		c.Close()
		return
	}
	select {
	case <-sc.closed:
	case <-t.done:
		c.Close()
	}
}

// HandleWireConn is HandleStream for a connection the server has wrapped in
// a wire.Conn and run wire.Accept on. A dialler that sent bytes after its
// HELLO before the reply broke the protocol (and those bytes are in c's
// buffer, not on the network): its connection is closed.
func (t *Transport) HandleWireConn(c *wire.Conn) {
	if n := c.Buffered(); n != 0 {
		t.log.Warn("gossip: stream sent data before the HELLO reply; closing it",
			"remote", c.NetConn().RemoteAddr().String(), "bytes", n)
		c.Close()
		return
	}
	t.HandleStream(c.NetConn())
}

// streamConn tells HandleStream when memberlist closes the connection.
type streamConn struct {
	net.Conn
	once   sync.Once
	closed chan struct{}
}

func (c *streamConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { close(c.closed) })
	return err
}

// Shutdown stops the transport: it closes the UDP socket, waits for the
// reading goroutine to end, ends dials in progress, and closes streams that
// HandleStream holds. It is safe to call more than once.
func (t *Transport) Shutdown() error {
	t.shutdownOnce.Do(func() {
		close(t.done)
		t.cancel()
		t.udp.Close()
		t.wg.Wait()
	})
	return nil
}

func (t *Transport) stopped() bool {
	select {
	case <-t.done:
		return true
	default:
		return false
	}
}

// readPackets reads the UDP socket until Shutdown, handing every non-empty
// packet to memberlist (which judges its contents).
func (t *Transport) readPackets() {
	defer t.wg.Done()
	buf := make([]byte, udpPacketBufSize)
	var delay time.Duration
	for {
		n, from, err := t.udp.ReadFromUDPAddrPort(buf)
		ts := time.Now()
		if err != nil {
			if t.stopped() {
				return
			}
			if errors.Is(err, net.ErrClosed) {
				t.log.Error("gossip: UDP socket closed under the transport; no more gossip packets")
				return
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			if !errors.Is(err, syscall.ECONNREFUSED) {
				t.log.Warn("gossip: reading UDP failed", "err", err, "retry_in", delay)
			}
			select {
			case <-time.After(delay):
			case <-t.done:
				return
			}
			continue
		}
		delay = 0
		if n < 1 {
			continue
		}
		p := &memberlist.Packet{
			Buf:       bytes.Clone(buf[:n]), // memberlist keeps slices of it
			From:      net.UDPAddrFromAddrPort(netip.AddrPortFrom(from.Addr().Unmap(), from.Port())),
			Timestamp: ts,
		}
		select {
		case t.packetCh <- p:
		case <-t.done:
			return
		}
	}
}

// HelloDialer returns a TransportConfig.DialStream that dials TCP, wraps
// it in TLS if tlsConfig is not nil (ServerName defaults to addr's host),
// and sends hello with Kind set to wire.ConnGossip. hello should carry the
// cluster's name and secret, and this replica's name.
func HelloDialer(hello wire.Hello, tlsConfig *tls.Config) func(ctx context.Context, addr string) (net.Conn, error) {
	hello.Kind = wire.ConnGossip
	return func(ctx context.Context, addr string) (net.Conn, error) {
		var d net.Dialer
		nc, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		if tlsConfig != nil {
			cfg := tlsConfig
			if cfg.ServerName == "" {
				cfg = cfg.Clone()
				if host, _, err := net.SplitHostPort(addr); err == nil {
					cfg.ServerName = host
				}
			}
			tc := tls.Client(nc, cfg)
			if err := tc.HandshakeContext(ctx); err != nil {
				nc.Close()
				return nil, err
			}
			nc = tc
		}
		c := wire.NewConn(nc, 0)
		if _, err := wire.Handshake(ctx, c, hello); err != nil {
			nc.Close()
			return nil, err
		}
		if c.Buffered() != 0 {
			// The server spoke after its HELLO reply, before memberlist
			// did: not a replica.
			nc.Close()
			return nil, errors.New("hello: unexpected data after the HELLO reply")
		}
		return nc, nil
	}
}

// Listen binds TCP and UDP on the same address, as a replica serves. With
// port 0 it picks a port free for both.
func Listen(addr string) (*net.TCPListener, *net.UDPConn, error) {
	ta, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	tries := 1
	if ta.Port == 0 {
		tries = 64
	}
	for i := 0; ; i++ {
		ln, err := net.ListenTCP("tcp", ta)
		if err != nil {
			return nil, nil, err
		}
		la := ln.Addr().(*net.TCPAddr)
		udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: la.IP, Port: la.Port, Zone: la.Zone})
		if err == nil {
			return ln, udp, nil
		}
		ln.Close()
		if i+1 >= tries || !errors.Is(err, syscall.EADDRINUSE) {
			return nil, nil, err
		}
	}
}
