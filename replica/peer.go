package replica

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/doozerfs/doozerfs/consensus"
	"github.com/doozerfs/doozerfs/fs"
	"github.com/doozerfs/doozerfs/replica/wal"
	"github.com/doozerfs/doozerfs/wire"
)

// Peer frames: after HELLO with kind "peer", every frame's payload is one
// msgpack bin value whose first byte says what the rest is
// (docs/protocol.md, "Peer connections").
const (
	peerMsg       = 1 // a consensus message (encodeMessage)
	peerSnapBegin = 2 // uvarint from, uvarint size: a snapshot file follows
	peerSnapChunk = 3 // the next bytes of the snapshot file
	peerSnapEnd   = 4 // the snapshot file is complete
	peerSnapAck   = 5 // byte ok, then a reason: the receiver's verdict
)

// peerQueue bounds the frames waiting for one peer; past it messages are
// dropped, which consensus tolerates (it retransmits).
const peerQueue = 4096

// appendPeerFrame appends one complete frame of the given kind whose data
// body appends.
func appendPeerFrame(dst []byte, kind byte, body func([]byte) []byte) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, 0xc6, 0, 0, 0, 0, kind)
	if body != nil {
		dst = body(dst)
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	binary.BigEndian.PutUint32(dst[start+5:], uint32(len(dst)-start-9))
	return dst
}

// parsePeerFrame splits a peer frame's payload into its kind and data.
func parsePeerFrame(p []byte) (byte, []byte, error) {
	if len(p) < 6 || p[0] != 0xc6 || int(binary.BigEndian.Uint32(p[1:])) != len(p)-5 {
		return 0, nil, errors.New("replica: peer frame is not one msgpack bin32 value")
	}
	return p[5], p[6:], nil
}

// peers is the replica's side of the consensus transport: one outbound
// link per peer, dialled on demand and redialled after failures, and the
// address book that gossip keeps current.
type peers struct {
	r *Replica

	mu    sync.Mutex
	addrs map[uint64]string
	links map[uint64]*peerLink
	wake  chan struct{} // closed and replaced when an address changes

	toFlush []*wire.Conn // send's goroutine only: links written to by this send
}

func newPeers(r *Replica) *peers {
	return &peers{r: r, addrs: make(map[uint64]string), links: make(map[uint64]*peerLink), wake: make(chan struct{})}
}

// setAddr records where peer id listens.
func (p *peers) setAddr(id uint64, addr string) {
	if id == p.r.id || addr == "" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.addrs[id] == addr {
		return
	}
	p.addrs[id] = addr
	close(p.wake)
	p.wake = make(chan struct{})
}

func (p *peers) addr(id uint64) (string, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addrs[id], p.wake
}

// send encodes and queues the messages whose Type.NeedsPersist() is
// persisted, and writes them; it never blocks. On a link that is up (and
// not TLS) it encodes them straight into the connection's queue and writes
// them from this goroutine, as far as the socket takes them without
// waiting: no goroutine hand-off per message. The rest go to the link's
// goroutine.
func (p *peers) send(msgs []consensus.Message, persisted bool) {
	for i := range msgs {
		m := &msgs[i]
		if m.Type.NeedsPersist() != persisted {
			continue
		}
		if m.To == 0 || m.To == p.r.id || p.r.cfg.faults.blocked(p.r.id, m.To) {
			continue
		}
		l := p.link(m.To)
		if l == nil {
			break
		}
		l.queue(m)
	}
	for i, wc := range p.toFlush {
		wc.TryFlush()
		p.toFlush[i] = nil
	}
	p.toFlush = p.toFlush[:0]
}

// peerPending bounds the bytes queued on a link's connection; past it
// messages are dropped, which consensus tolerates (it retransmits).
const peerPending = 64 << 20

// queue queues m on the link (send's goroutine only).
func (l *peerLink) queue(m *consensus.Message) {
	l.mu.Lock()
	wc := l.conn
	l.mu.Unlock()
	if wc != nil {
		if wc.Pending() >= peerPending {
			l.dropped++
			return
		}
		err := wc.AppendNoWait(func(b []byte) []byte {
			return appendPeerFrame(b, peerMsg, func(b []byte) []byte { return encodeMessage(b, m) })
		})
		if err != nil {
			l.dropped++ // the connection broke; the link's goroutine redials
			return
		}
		for _, c := range l.p.toFlush {
			if c == wc {
				return
			}
		}
		l.p.toFlush = append(l.p.toFlush, wc)
		return
	}
	frame := appendPeerFrame(nil, peerMsg, func(b []byte) []byte { return encodeMessage(b, m) })
	select {
	case l.q <- frame:
	default:
		l.dropped++
	}
}

// link returns the outbound link to id, starting it if needed.
func (p *peers) link(id uint64) *peerLink {
	p.mu.Lock()
	defer p.mu.Unlock()
	if l := p.links[id]; l != nil {
		return l
	}
	select {
	case <-p.r.stopc:
		return nil
	default:
	}
	l := &peerLink{p: p, id: id, q: make(chan []byte, peerQueue), stop: make(chan struct{})}
	p.links[id] = l
	p.r.bg.Add(1)
	go l.run()
	return l
}

// drop stops the links to peers that are no longer members.
func (p *peers) retain(keep func(id uint64) bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, l := range p.links {
		if !keep(id) {
			close(l.stop)
			delete(p.links, id)
		}
	}
}

// dial connects to a peer and runs HELLO as a peer; the reply must come
// from the replica expected (id 0: any).
func (p *peers) dial(ctx context.Context, addr string, id uint64) (net.Conn, *wire.Conn, error) {
	r := p.r
	d := net.Dialer{Timeout: 3 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	if r.cfg.PeerTLS != nil {
		nc = tls.Client(nc, peerTLSFor(r.cfg.PeerTLS, addr))
	}
	c := wire.NewConn(nc, r.peerMaxFrame())
	hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	reply, err := wire.Handshake(hctx, c, wire.Hello{Kind: wire.ConnPeer, Cluster: r.cfg.Cluster, Token: r.cfg.Secret, Name: r.cfg.Name})
	cancel()
	if err == nil && reply.Err != nil {
		err = reply.Err
	}
	if err == nil && id != 0 && reply.ID != id {
		err = fmt.Errorf("%s is replica %d, not %d", addr, reply.ID, id)
	}
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, c, nil
}

// peerTLSFor is the TLS configuration for dialling the peer at addr: the
// peer's certificate must name the host of addr (an IP address is checked
// against the certificate's IP SANs), unless cfg names the server to
// verify in every peer's certificate (serve --tls-peer-name).
func peerTLSFor(cfg *tls.Config, addr string) *tls.Config {
	if cfg.ServerName != "" {
		return cfg
	}
	cfg = cfg.Clone()
	if host, _, err := net.SplitHostPort(addr); err == nil {
		cfg.ServerName = host
	}
	return cfg
}

// peerMaxFrame is the frame limit on peer connections: a consensus message
// carries up to MaxMsgBytes of values plus their framing.
func (r *Replica) peerMaxFrame() int { return 2*r.cfg.maxFrame() + 1<<20 }

// peerLink is one outbound connection to a peer.
type peerLink struct {
	p       *peers
	id      uint64
	q       chan []byte // frames for the link's goroutine to write
	stop    chan struct{}
	dropped int // written only by the loop goroutine; for debugging

	mu   sync.Mutex
	conn *wire.Conn // the connection up, if send may write to it itself (no TLS); nil otherwise
}

func (l *peerLink) run() {
	r := l.p.r
	defer r.bg.Done()
	backoff := 20 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-l.stop:
		case <-r.stopc:
		}
		cancel()
	}()
	for ctx.Err() == nil {
		addr, changed := l.p.addr(l.id)
		if addr == "" {
			select {
			case <-changed:
			case <-ctx.Done():
			}
			continue
		}
		nc, _, err := l.p.dial(ctx, addr, l.id)
		if err != nil {
			r.log.Debug("peer dial failed", "peer", l.id, "addr", addr, "err", err)
			select {
			case <-time.After(backoff):
			case <-changed:
			case <-ctx.Done():
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 20 * time.Millisecond
		l.pump(ctx, nc)
		nc.Close()
	}
}

// pump writes queued frames to nc until an error or the end of ctx. Once
// what was queued while the link was down is written, it lets send write
// to the connection itself (conn), unless it is TLS.
func (l *peerLink) pump(ctx context.Context, nc net.Conn) {
	// Reading tells us when the peer closes the connection.
	closed := make(chan struct{})
	go func() {
		io.Copy(io.Discard, nc)
		close(closed)
	}()
	// A failed write (the timeout ran out, the peer is gone) closes nc,
	// which ends the reader above and so this pump: the link redials.
	wc := wire.NewConn(&sendGuard{Conn: nc, raw: nc}, l.p.r.peerMaxFrame())
	wc.SetWriteTimeout(10 * time.Second)
	wc.SetRawConn(nc) // finds no socket under TLS: then everything goes through q
	defer func() {
		l.mu.Lock()
		if l.conn == wc {
			l.conn = nil
		}
		l.mu.Unlock()
		wc.Close()
	}()
	write := func(f []byte) error {
		return wc.AppendNoWait(func(b []byte) []byte { return append(b, f...) })
	}
	// drain writes what q holds now.
	drain := func() error {
		for range 1024 {
			select {
			case f := <-l.q:
				if err := write(f); err != nil {
					return err
				}
			default:
				return wc.Flush()
			}
		}
		return wc.Flush()
	}
	if err := drain(); err != nil {
		return
	}
	if wc.CanWriteNoWait() {
		l.mu.Lock()
		l.conn = wc
		l.mu.Unlock()
	}
	for {
		select {
		case f := <-l.q:
			if err := write(f); err != nil {
				return
			}
			if err := drain(); err != nil {
				return
			}
		case <-closed:
			return
		case <-ctx.Done():
			return
		}
	}
}

// servePeer reads a peer connection: consensus messages go to the loop;
// a snapshot transfer is staged, checked and offered to consensus.
func (r *Replica) servePeer(c *wire.Conn, nc net.Conn) {
	var snap *snapRecv
	defer func() {
		if snap != nil {
			snap.abort()
		}
	}()
	for {
		if snap == nil {
			nc.SetReadDeadline(time.Time{})
		} else {
			nc.SetReadDeadline(time.Now().Add(time.Minute))
		}
		p, err := c.ReadFrame()
		if err != nil {
			return
		}
		kind, data, err := parsePeerFrame(p)
		if err != nil {
			r.log.Warn("bad peer frame; closing", "remote", nc.RemoteAddr().String(), "err", err)
			return
		}
		switch kind {
		case peerMsg:
			m, err := decodeMessage(data)
			if err != nil {
				r.log.Warn("bad peer message; closing", "remote", nc.RemoteAddr().String(), "err", err)
				return
			}
			if m.To != r.id || r.cfg.faults.blocked(m.From, r.id) {
				continue
			}
			// The message's slices alias the read buffer: copy them out.
			m = cloneMessage(m)
			select {
			case r.stepc <- m:
			case <-r.stopc:
				return
			}
		case peerSnapBegin:
			d := dec{b: data}
			from, size := d.u(), d.u()
			if err := d.end("snapshot begin"); err != nil || snap != nil {
				return
			}
			snap, err = r.newSnapRecv(from, int64(size))
			if err != nil {
				r.log.Warn("cannot receive a snapshot", "err", err)
				writeAck(c, false, err.Error())
				return
			}
		case peerSnapChunk:
			if snap == nil {
				return
			}
			if err := snap.write(data); err != nil {
				writeAck(c, false, err.Error())
				return
			}
		case peerSnapEnd:
			if snap == nil {
				return
			}
			err := r.finishSnapRecv(snap)
			snap = nil
			if err != nil {
				r.log.Warn("snapshot transfer refused", "err", err)
				writeAck(c, false, err.Error())
				return
			}
			writeAck(c, true, "")
		default:
			return
		}
	}
}

func writeAck(c *wire.Conn, ok bool, reason string) {
	b := appendPeerFrame(nil, peerSnapAck, func(b []byte) []byte {
		v := byte(0)
		if ok {
			v = 1
		}
		return append(append(b, v), reason...)
	})
	c.WriteFrame(b[4:])
}

func cloneMessage(m consensus.Message) consensus.Message {
	for i := range m.Entries {
		for j := range m.Entries[i].Values {
			m.Entries[i].Values[j].Data = append([]byte(nil), m.Entries[i].Values[j].Data...)
		}
	}
	for i := range m.Values {
		m.Values[i].Data = append([]byte(nil), m.Values[i].Data...)
	}
	if m.Context != nil {
		m.Context = append([]byte(nil), m.Context...)
	}
	return m
}

// snapRecv is a snapshot file being received into a staging file.
type snapRecv struct {
	from int64
	size int64
	got  int64
	f    *os.File
}

func (r *Replica) newSnapRecv(from uint64, size int64) (*snapRecv, error) {
	f, err := os.CreateTemp(r.cfg.DataDir, "snapshot-recv-*.tmp")
	if err != nil {
		return nil, err
	}
	return &snapRecv{from: int64(from), size: size, f: f}, nil
}

func (s *snapRecv) write(b []byte) error {
	if s.got+int64(len(b)) > s.size {
		return fmt.Errorf("snapshot transfer is longer than the %d bytes announced", s.size)
	}
	s.got += int64(len(b))
	_, err := s.f.Write(b)
	return err
}

func (s *snapRecv) abort() {
	s.f.Close()
	os.Remove(s.f.Name())
}

// pendingInstall is a received, checked snapshot waiting for consensus.
type pendingInstall struct {
	hdr  *snapHeader
	tree *fs.Tree
	path string // the staged snapshot file
	done chan bool
}

// finishSnapRecv checks the staged file completely, reads its state and
// offers it to consensus through the loop.
func (r *Replica) finishSnapRecv(s *snapRecv) error {
	if s.got != s.size {
		s.abort()
		return fmt.Errorf("snapshot transfer ended after %d of %d bytes", s.got, s.size)
	}
	if err := s.f.Sync(); err != nil {
		s.abort()
		return err
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		s.abort()
		return err
	}
	sr, err := wal.ReadSnapshot(s.f)
	if err != nil {
		s.abort()
		return err
	}
	hdr, tree, err := readStateSnapshot(sr, fs.Config{History: r.cfg.History, HistoryBytes: r.cfg.HistoryBytes})
	if err == nil {
		_, err = io.Copy(io.Discard, sr) // the CRC is checked at the end
	}
	s.f.Close()
	if err != nil {
		os.Remove(s.f.Name())
		return err
	}
	p := &pendingInstall{hdr: hdr, tree: tree, path: s.f.Name(), done: make(chan bool, 1)}
	select {
	case r.installc <- p:
	case <-r.stopc:
		os.Remove(p.path)
		return errStopped
	}
	<-p.done
	return nil
}

// sendSnapshot streams the newest saved snapshot to peer to, and reports
// the outcome to the loop.
func (r *Replica) sendSnapshot(to uint64) {
	defer r.bg.Done()
	ok := false
	defer func() {
		select {
		case r.snapReportc <- snapReport{to: to, ok: ok}:
		case <-r.stopc:
		}
	}()
	addr, _ := r.peers.addr(to)
	if addr == "" || r.cfg.faults.blocked(r.id, to) {
		return
	}
	sn, found, err := r.dd.Snapshots.Latest()
	if err != nil || !found {
		r.log.Warn("no snapshot to send", "peer", to, "err", err)
		return
	}
	f, err := os.Open(sn.Path)
	if err != nil {
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-r.stopc:
			cancel()
		case <-ctx.Done():
		}
	}()
	nc, c, err := r.peers.dial(ctx, addr, to)
	if err != nil {
		r.log.Warn("snapshot transfer: dial failed", "peer", to, "err", err)
		return
	}
	defer nc.Close()
	size := st.Size()
	nc.SetDeadline(time.Now().Add(10 * time.Minute))
	bw := bufio.NewWriterSize(nc, 512<<10)
	bw.Write(appendPeerFrame(nil, peerSnapBegin, func(b []byte) []byte {
		b = binary.AppendUvarint(b, r.id)
		return binary.AppendUvarint(b, uint64(size))
	}))
	buf := make([]byte, snapshotChunk)
	var frame []byte
	for sent := int64(0); sent < size; {
		n, err := io.ReadFull(f, buf[:min(int64(len(buf)), size-sent)])
		if err != nil {
			return
		}
		frame = appendPeerFrame(frame[:0], peerSnapChunk, func(b []byte) []byte { return append(b, buf[:n]...) })
		if _, err := bw.Write(frame); err != nil {
			return
		}
		sent += int64(n)
	}
	bw.Write(appendPeerFrame(nil, peerSnapEnd, nil))
	if err := bw.Flush(); err != nil {
		return
	}
	p, err := c.ReadFrame()
	if err != nil {
		r.log.Warn("snapshot transfer: no answer", "peer", to, "err", err)
		return
	}
	kind, data, err := parsePeerFrame(p)
	if err != nil || kind != peerSnapAck || len(data) < 1 {
		return
	}
	ok = data[0] == 1
	if ok {
		r.log.Info("snapshot sent", "peer", to, "bytes", size)
	} else {
		r.log.Warn("peer refused the snapshot", "peer", to, "reason", string(data[1:]))
	}
}

type snapReport struct {
	to uint64
	ok bool
}
