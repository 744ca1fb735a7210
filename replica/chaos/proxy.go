package chaos

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/doozerfs/doozerfs/wire"
)

// Net is the network between the replicas of a chaos run: one Proxy per
// replica, listening on the address the replica advertises (serve
// --advertise), so that every byte one replica sends another, consensus
// and gossip alike, passes through the proxy of the receiver. A link
// (from, to) can be cut, in one direction only or both: while it is cut,
// TCP bytes from `from` to `to` are held (as a partitioned network holds
// them: TCP retransmits once it heals) and UDP packets are dropped.
//
// The proxy tells who is on the other end of a TCP connection by its first
// frame, the HELLO that names the replica that dialled (a client's
// connection names no replica and is never cut; clients dial the replicas'
// own addresses anyway), and who sent a UDP packet by its source address,
// the sending replica's own address.
type Net struct {
	logf func(string, ...any)

	mu      sync.Mutex
	cut     map[link]bool
	byAddr  map[netip.AddrPort]string // a replica's own address → its name
	proxies map[string]*Proxy
	changed chan struct{} // closed and replaced at every change of cut
	closed  bool
}

type link struct{ from, to string }

// NewNet returns an empty network; logf may be nil.
func NewNet(logf func(string, ...any)) *Net {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	return &Net{logf: logf, cut: map[link]bool{}, byAddr: map[netip.AddrPort]string{},
		proxies: map[string]*Proxy{}, changed: make(chan struct{})}
}

// Proxy forwards to one replica what the others send it.
type Proxy struct {
	n      *Net
	name   string // the replica behind it
	listen string // its address: what the replica advertises
	target string // the replica's own address
	ln     net.Listener
	udp    *net.UDPConn
	tgtUDP netip.AddrPort
	done   chan struct{}
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]bool

	// Counters, for the report and for tests of the proxy.
	TCPBytes   atomic.Int64
	UDPPackets atomic.Int64
	UDPDropped atomic.Int64
}

// AddNode starts the proxy of the replica called name, listening on listen
// (TCP and UDP) and forwarding to target, the replica's own address.
func (n *Net) AddNode(name, listen, target string) (*Proxy, error) {
	tap, err := netip.ParseAddrPort(target)
	if err != nil {
		return nil, fmt.Errorf("chaos: proxy target %q: %w", target, err)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	ua, err := net.ResolveUDPAddr("udp", listen)
	if err != nil {
		ln.Close()
		return nil, err
	}
	udp, err := net.ListenUDP("udp", ua)
	if err != nil {
		ln.Close()
		return nil, err
	}
	p := &Proxy{n: n, name: name, listen: listen, target: target, ln: ln, udp: udp, tgtUDP: tap,
		done: make(chan struct{}), conns: map[net.Conn]bool{}}
	n.mu.Lock()
	if old := n.proxies[name]; old != nil {
		n.mu.Unlock()
		p.close()
		return nil, fmt.Errorf("chaos: a proxy for %s exists", name)
	}
	n.proxies[name] = p
	n.byAddr[tap] = name
	n.mu.Unlock()
	p.wg.Add(2)
	go p.acceptLoop()
	go p.udpLoop()
	return p, nil
}

// RemoveNode stops the proxy of name.
func (n *Net) RemoveNode(name string) {
	n.mu.Lock()
	p := n.proxies[name]
	delete(n.proxies, name)
	if p != nil {
		delete(n.byAddr, p.tgtUDP)
	}
	n.mu.Unlock()
	if p != nil {
		p.close()
	}
}

// Proxy returns the proxy of name, or nil.
func (n *Net) Proxy(name string) *Proxy {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proxies[name]
}

// Close stops every proxy.
func (n *Net) Close() {
	n.mu.Lock()
	ps := make([]*Proxy, 0, len(n.proxies))
	for _, p := range n.proxies {
		ps = append(ps, p)
	}
	n.proxies = map[string]*Proxy{}
	n.closed = true
	n.mu.Unlock()
	for _, p := range ps {
		p.close()
	}
}

func (n *Net) changedLocked() {
	close(n.changed)
	n.changed = make(chan struct{})
}

// Cut cuts the link from → to (one way).
func (n *Net) Cut(from, to string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cut[link{from, to}] = true
	n.changedLocked()
}

// Partition cuts every link between replicas of different groups (both
// ways); a replica in no group keeps its links.
func (n *Net) Partition(groups ...[]string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for i, g := range groups {
		for j, h := range groups {
			if i == j {
				continue
			}
			for _, a := range g {
				for _, b := range h {
					n.cut[link{a, b}] = true
				}
			}
		}
	}
	n.changedLocked()
}

// Heal restores every link.
func (n *Net) Heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.cut)
	n.changedLocked()
}

// Cuts describes the links cut, for logs.
func (n *Net) Cuts() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var s []string
	for l := range n.cut {
		s = append(s, l.from+"→"+l.to)
	}
	sort.Strings(s)
	return strings.Join(s, " ")
}

// Blocked reports whether the link from → to is cut.
func (n *Net) Blocked(from, to string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cut[link{from, to}]
}

// waitOpen waits while the link from → to is cut; false if stop came first.
func (n *Net) waitOpen(from, to string, stop <-chan struct{}) bool {
	for {
		n.mu.Lock()
		blocked := from != "" && n.cut[link{from, to}]
		ch := n.changed
		n.mu.Unlock()
		if !blocked {
			return true
		}
		select {
		case <-ch:
		case <-stop:
			return false
		}
	}
}

func (p *Proxy) close() {
	select {
	case <-p.done:
		return
	default:
	}
	close(p.done)
	p.ln.Close()
	p.udp.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *Proxy) track(c net.Conn, on bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on {
		select {
		case <-p.done:
			return false
		default:
		}
		p.conns[c] = true
	} else {
		delete(p.conns, c)
	}
	return true
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			select {
			case <-p.done:
				return
			default:
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if !p.track(c, true) {
			c.Close()
			return
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

// serve forwards one TCP connection: it reads the HELLO to learn who
// dialled, dials the replica and pumps both ways, honouring cuts.
func (p *Proxy) serve(down net.Conn) {
	defer p.wg.Done()
	defer p.track(down, false)
	defer down.Close()
	down.SetReadDeadline(time.Now().Add(15 * time.Second))
	var hdr [4]byte
	if _, err := io.ReadFull(down, hdr[:]); err != nil {
		return
	}
	size := binary.BigEndian.Uint32(hdr[:])
	if size == 0 || size > 1<<20 {
		return
	}
	payload := make([]byte, size)
	if _, err := io.ReadFull(down, payload); err != nil {
		return
	}
	down.SetReadDeadline(time.Time{})
	var h wire.Hello
	from := ""
	if wire.DecodeHello(payload, &h) == nil && h.Kind != wire.ConnClient {
		from = h.Name
	}
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return
	}
	if !p.track(up, true) {
		up.Close()
		return
	}
	defer p.track(up, false)
	defer up.Close()
	first := append(hdr[:], payload...)
	done := make(chan struct{})
	var once sync.Once
	stop := func() { once.Do(func() { close(done); down.Close(); up.Close() }) }
	go func() {
		p.pump(down, up, from, p.name, first, done)
		stop()
	}()
	p.pump(up, down, p.name, from, nil, done)
	stop()
}

// pump copies src to dst, holding each chunk while the link from → to is
// cut. first is sent ahead of what src reads.
func (p *Proxy) pump(src, dst net.Conn, from, to string, first []byte, done chan struct{}) {
	stop := func() <-chan struct{} { return mergeDone(done, p.done) }()
	if len(first) > 0 {
		if !p.n.waitOpen(from, to, stop) {
			return
		}
		if _, err := dst.Write(first); err != nil {
			return
		}
		p.TCPBytes.Add(int64(len(first)))
	}
	buf := make([]byte, 32<<10)
	for {
		k, err := src.Read(buf)
		if k > 0 {
			if !p.n.waitOpen(from, to, stop) {
				return
			}
			if _, werr := dst.Write(buf[:k]); werr != nil {
				return
			}
			p.TCPBytes.Add(int64(k))
		}
		if err != nil {
			return
		}
	}
}

// mergeDone returns a channel closed when either a or b is.
func mergeDone(a, b <-chan struct{}) <-chan struct{} {
	c := make(chan struct{})
	go func() {
		select {
		case <-a:
		case <-b:
		}
		close(c)
	}()
	return c
}

// udpLoop forwards gossip packets to the replica, dropping those on a cut
// link. The replica answers to the sender's advertised address, that is
// through the sender's proxy.
func (p *Proxy) udpLoop() {
	defer p.wg.Done()
	buf := make([]byte, 65536)
	for {
		k, src, err := p.udp.ReadFromUDPAddrPort(buf)
		if err != nil {
			select {
			case <-p.done:
				return
			default:
			}
			continue
		}
		p.n.mu.Lock()
		from := p.n.byAddr[netip.AddrPortFrom(src.Addr().Unmap(), src.Port())]
		blocked := from != "" && p.n.cut[link{from, p.name}]
		p.n.mu.Unlock()
		if blocked {
			p.UDPDropped.Add(1)
			continue
		}
		p.UDPPackets.Add(1)
		p.udp.WriteToUDPAddrPort(buf[:k], p.tgtUDP)
	}
}
