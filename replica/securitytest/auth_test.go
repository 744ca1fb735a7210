package securitytest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/doozerfs/doozerfs/fs"
	"github.com/doozerfs/doozerfs/replica"
	"github.com/doozerfs/doozerfs/replica/gossip"
	"github.com/doozerfs/doozerfs/wire"
	"github.com/vmihailenco/msgpack/v5"
)

const (
	rwSecret = "rw-secret-4f1c"
	roSecret = "ro-secret-9a7e"
)

// tokens are what a dialler may present: nothing, the read-write secret,
// the read-only secret, or a guess.
var tokens = []struct{ name, token string }{
	{"none", ""}, {"rw", rwSecret}, {"ro", roSecret}, {"wrong", "guess"},
}

// TestClientAuth tries every token against a replica with no secret, with
// only --secret, and with --secret and --ro-secret: a refused client gets
// PERMISSION at HELLO and nothing else; a read-only one reads and watches
// but every mutation is PERMISSION; a read-write one does everything.
func TestClientAuth(t *testing.T) {
	t.Parallel()
	setups := []struct {
		name       string
		secret, ro string
		want       map[string]wire.Access // by token name; absent: PERMISSION
	}{
		{"open", "", "", map[string]wire.Access{"none": wire.AccessWrite, "rw": wire.AccessWrite, "ro": wire.AccessWrite, "wrong": wire.AccessWrite}},
		{"secret", rwSecret, "", map[string]wire.Access{"rw": wire.AccessWrite}},
		{"secret+ro", rwSecret, roSecret, map[string]wire.Access{"rw": wire.AccessWrite, "ro": wire.AccessRead}},
	}
	for _, s := range setups {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			cfg := config(t, "auth-"+s.name)
			cfg.Secret, cfg.ROSecret = s.secret, s.ro
			r := start(t, cfg)
			ctx := testCtx(t)
			admin := mustDial(t, r.Addr(), wire.Options{Secret: s.secret})
			if _, err := admin.Set(ctx, "/data", fs.Clobber, []byte("private")); err != nil {
				t.Fatal(err)
			}
			for _, tok := range tokens {
				want, ok := s.want[tok.name]
				c, err := dial(t, []string{r.Addr()}, wire.Options{Secret: tok.token})
				if !ok {
					if fs.KindOf(err) != fs.KindPermission {
						t.Errorf("token %s: dial = %v (%s), want PERMISSION", tok.name, err, kindOf(err))
					}
					continue
				}
				if err != nil {
					t.Errorf("token %s: dial: %v", tok.name, err)
					continue
				}
				body, _, err := c.Get(ctx, "/data", 0)
				if err != nil || string(body) != "private" {
					t.Errorf("token %s: get = %q, %v", tok.name, body, err)
				}
				w, err := c.Watch(ctx, "/**", 0)
				if err != nil {
					t.Errorf("token %s: watch: %v", tok.name, err)
				} else {
					w.Close()
				}
				_, serr := c.Set(ctx, "/by-"+tok.name, fs.Clobber, []byte("x"))
				_, lerr := c.LeaseGrant(ctx, time.Minute)
				nerr := c.Nop(ctx)
				for verb, err := range map[string]error{"SET": serr, "LEASE_GRANT": lerr, "NOP": nerr} {
					switch {
					case want == wire.AccessWrite && err != nil:
						t.Errorf("token %s: %s: %v", tok.name, verb, err)
					case want == wire.AccessRead && fs.KindOf(err) != fs.KindPermission:
						t.Errorf("token %s (read-only): %s = %v (%s), want PERMISSION", tok.name, verb, err, kindOf(err))
					}
				}
			}
			if s.secret == "" {
				return
			}
			// A refused connection gets the refusal, without the cluster's
			// name or the replica's, and nothing after it.
			rc := rawDial(t, r.Addr())
			reply, err := rc.hello(wire.Hello{Kind: wire.ConnClient, Token: "guess"})
			if fs.KindOf(err) != fs.KindPermission {
				t.Fatalf("raw HELLO with a wrong token: %v", err)
			}
			if reply.Cluster != "" || reply.Name != "" || reply.ID != 0 || reply.Access != wire.AccessNone {
				t.Errorf("the refusal tells %+v", reply)
			}
			rc.request(&wire.Request{Tag: 1, Verb: wire.VerbGet, Path: "/data"})
			if p, err := rc.frame(); err == nil {
				t.Errorf("a refused connection got a frame after the refusal: %x", p)
			}
		})
	}
}

// TestROSecretNeedsSecret: a read-only secret without a read-write one
// would protect nothing (everyone may write); Open refuses it.
func TestROSecretNeedsSecret(t *testing.T) {
	t.Parallel()
	cfg := config(t, "ro-only")
	cfg.ROSecret = roSecret
	if r, err := replica.Open(cfg); err == nil {
		r.Close()
		t.Fatal("Open took --ro-secret without --secret")
	}
}

// TestPeerAndGossipHello tries every token with HELLO kinds peer and
// gossip: only the read-write secret opens them (the read-only secret is
// for clients only); a replica without a secret takes any.
func TestPeerAndGossipHello(t *testing.T) {
	t.Parallel()
	for _, secured := range []bool{false, true} {
		cfg := config(t, fmt.Sprint("hello-", secured))
		if secured {
			cfg.Secret, cfg.ROSecret = rwSecret, roSecret
		}
		r := start(t, cfg)
		for _, kind := range []wire.ConnKind{wire.ConnPeer, wire.ConnGossip} {
			for _, tok := range tokens {
				rc := rawDial(t, r.Addr())
				reply, err := rc.hello(wire.Hello{Kind: kind, Cluster: cfg.Cluster, Token: tok.token})
				wantOK := !secured || tok.name == "rw"
				switch {
				case wantOK && err != nil:
					t.Errorf("secret %v, %s HELLO with token %s: %v", secured, kind, tok.name, err)
				case !wantOK && fs.KindOf(err) != fs.KindPermission:
					t.Errorf("secret %v, %s HELLO with token %s: %v (%s), want PERMISSION", secured, kind, tok.name, err, kindOf(err))
				case !wantOK && !rc.closedWithin(5*time.Second):
					t.Errorf("secret %v, %s HELLO with token %s: refused but not closed", secured, kind, tok.name)
				case wantOK && reply.Access != wire.AccessWrite:
					t.Errorf("secret %v, %s HELLO with token %s: access %v", secured, kind, tok.name, reply.Access)
				}
				rc.nc.Close()
			}
		}
	}
}

// propFrame is a peer frame carrying a consensus MsgProp (docs/protocol.md
// §10.1) from a made-up node to the replica to, proposing mu: what a peer
// that got past HELLO could use to write anything.
func propFrame(from, to uint64, seq uint64, mu *fs.Mutation) []byte {
	data, err := mu.MarshalBinary()
	if err != nil {
		panic(err)
	}
	var m []byte
	m = append(m, 1) // MsgProp
	for _, v := range []uint64{from, to, 0, 0, 0, 0, 0, 0} {
		m = binary.AppendUvarint(m, v) // from to ballot.round ballot.node commit slot last round
	}
	m = append(m, 0)                  // flags
	m = binary.AppendUvarint(m, 0)    // no entries
	m = binary.AppendUvarint(m, 1)    // one value
	m = binary.AppendUvarint(m, from) // id.node
	m = binary.AppendUvarint(m, seq)  // id.seq
	m = binary.AppendUvarint(m, uint64(len(data)))
	m = append(m, data...)
	m = binary.AppendUvarint(m, 0) // no context
	payload := append([]byte{0xc6, 0, 0, 0, 0, 1}, m...)
	binary.BigEndian.PutUint32(payload[1:], uint32(len(payload)-5))
	return wire.AppendFrame(nil, payload)
}

// TestPeerInjection: a peer connection that presents the secret can
// propose a write with one consensus message (the control: this test
// would see an injection); one without the secret, with the read-only
// secret or with a wrong one is refused at HELLO, and the same message
// sent anyway writes nothing.
func TestPeerInjection(t *testing.T) {
	t.Parallel()
	cfg := config(t, "inject")
	cfg.Secret, cfg.ROSecret = rwSecret, roSecret
	r := start(t, cfg)
	ctx := testCtx(t)
	c := mustDial(t, r.Addr(), wire.Options{Secret: rwSecret})
	if _, err := c.Set(ctx, "/warm", fs.Clobber, nil); err != nil { // a leader is known
		t.Fatal(err)
	}
	const fakeNode = 0x5eed
	inject := func(token, path string, seq uint64) error {
		rc := rawDial(t, r.Addr())
		_, herr := rc.hello(wire.Hello{Kind: wire.ConnPeer, Cluster: cfg.Cluster, Token: token})
		mu := &fs.Mutation{Kind: fs.MutTxn, Time: time.Now().UnixNano(),
			Ops: []fs.Op{{Kind: fs.OpSet, Path: path, Rev: fs.Clobber, Body: []byte("injected")}}}
		rc.send(propFrame(fakeNode, r.ID(), seq, mu)) // sent even after a refusal
		return herr
	}
	exists := func(path string) bool {
		_, _, err := r.Tree().View().Get(path)
		return err == nil
	}
	for i, tok := range tokens {
		if tok.name == "rw" {
			continue
		}
		path := "/injected-" + tok.name
		if err := inject(tok.token, path, uint64(i+1)); fs.KindOf(err) != fs.KindPermission {
			t.Errorf("peer HELLO with token %s: %v, want PERMISSION", tok.name, err)
		}
		defer func() {
			if exists(path) {
				t.Errorf("a peer with token %s wrote %s", tok.name, path)
			}
		}()
	}
	if err := inject(rwSecret, "/injected-rw", 100); err != nil {
		t.Fatalf("peer HELLO with the secret: %v", err)
	}
	waitFor(t, "the write proposed by a peer with the secret", 10*time.Second, func() bool { return exists("/injected-rw") })
	// The refused ones had as long, and more: their frames went first.
}

// TestGossipJoinNeedsSecret: replicas started without the cluster's
// secret, with another one, or with the secret but another gossip key
// (even with the cluster's in its keyring, but second), cannot join; one
// with the secret joins, and so does one that also accepts another key.
func TestGossipJoinNeedsSecret(t *testing.T) {
	t.Parallel()
	seed := config(t, "seed")
	seed.Secret = rwSecret
	r1 := start(t, seed)
	otherKey := bytes.Repeat([]byte{7}, 32)
	var outsiders []*replica.Replica
	derived := replica.GossipKeyFromSecret(rwSecret)
	for _, o := range []struct {
		name, secret string
		key          []byte
		others       [][]byte
	}{
		{"no-secret", "", nil, nil},
		{"wrong-secret", "another", nil, nil},
		{"ro-secret", roSecret, nil, nil},
		{"other-gossip-key", rwSecret, otherKey, nil},
		// The seed's key in its keyring, but another one first: the
		// seed cannot read what it sends.
		{"other-primary-gossip-key", rwSecret, otherKey, [][]byte{derived}},
	} {
		cfg := config(t, o.name)
		cfg.Secret, cfg.GossipKey, cfg.OtherGossipKeys, cfg.Join = o.secret, o.key, o.others, []string{r1.Addr()}
		outsiders = append(outsiders, start(t, cfg))
	}
	insiderCfg := config(t, "insider")
	insiderCfg.Secret, insiderCfg.Join = rwSecret, []string{r1.Addr()}
	insider := start(t, insiderCfg)
	waitFor(t, "the replica with the secret to join", 30*time.Second, func() bool { return isMember(r1, insider.ID()) })
	// The first round of a key rotation: the seed's key first, a new one
	// accepted too.
	rotCfg := config(t, "rotating")
	rotCfg.Secret, rotCfg.OtherGossipKeys, rotCfg.Join = rwSecret, [][]byte{otherKey}, []string{r1.Addr()}
	rotating := start(t, rotCfg)
	waitFor(t, "the replica with a second gossip key to join", 30*time.Second, func() bool { return isMember(r1, rotating.ID()) })
	alone := func() bool {
		for _, o := range outsiders {
			if isMember(r1, o.ID()) || isMember(o, r1.ID()) || len(o.Members()) != 1 {
				return false
			}
		}
		return true
	}
	if !holdsFor(2*time.Second, alone) {
		for _, o := range outsiders {
			t.Errorf("%s: members %+v; the seed's: %+v", o.Name(), o.Members(), r1.Members())
		}
	}
}

// alivePacket is memberlist's UDP "alive" message (message type 4, then a
// msgpack map) announcing a member called name at addr:port with meta: what
// anyone who can send a UDP packet to a replica's port could forge when
// gossip is not encrypted.
func alivePacket(t *testing.T, name string, ip net.IP, port int, meta []byte) []byte {
	t.Helper()
	type alive struct {
		Incarnation uint32
		Node        string
		Addr        []byte
		Port        uint16
		Meta        []byte
		Vsn         []uint8
	}
	b, err := msgpack.Marshal(&alive{Incarnation: 1, Node: name, Addr: ip.To4(), Port: uint16(port), Meta: meta,
		Vsn: []uint8{1, 5, 2, 0, 0, 0}})
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte{4}, b...)
}

// helloTrap listens for the connections a replica makes to a forged member
// and reports the tokens their HELLOs carry.
func helloTrap(t *testing.T) (net.Listener, <-chan string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 64)
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)               // after the close below (cleanups run last first)
	t.Cleanup(func() { ln.Close() }) // ends the accepting goroutine
	wg.Go(func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer nc.Close()
				nc.SetDeadline(time.Now().Add(5 * time.Second))
				p, err := wire.ReadFrame(nc, nil, 0)
				var h wire.Hello
				if err == nil && wire.DecodeHello(p, &h) == nil {
					select {
					case got <- h.Token:
					default:
					}
				}
			})
		}
	})
	return ln, got
}

// TestForgedGossipMember is the regression test of a hole: with --secret
// but no --gossip-key, gossip went in the clear, and one forged UDP packet
// announcing a member made the leader add it as a learner and dial it,
// presenting the cluster's secret in HELLO (and then streaming it every
// write). Now the secret also keys gossip: a replica with a secret, or
// with a gossip key, ignores the packet. A replica with neither (an open
// cluster, the loopback default) takes it — the control that shows the
// forged packet is a real one.
func TestForgedGossipMember(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		secret string
		key    []byte
		open   bool
	}{
		{"open", "", nil, true},
		{"secret", rwSecret, nil, false},
		{"gossip-key", "", bytes.Repeat([]byte{9}, 16), false},
		{"secret-and-gossip-key", rwSecret, bytes.Repeat([]byte{9}, 24), false},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := config(t, "forge-"+tc.name)
			cfg.Secret, cfg.GossipKey = tc.secret, tc.key
			r := start(t, cfg)
			c := mustDial(t, r.Addr(), wire.Options{Secret: tc.secret})
			if _, err := c.Set(testCtx(t), "/warm", fs.Clobber, nil); err != nil {
				t.Fatal(err)
			}
			trap, tokensc := helloTrap(t)
			fakeID := uint64(0xbad0 + i)
			meta, err := gossip.EncodeMeta(gossip.Meta{ID: fakeID, Addr: trap.Addr().String(), Cluster: cfg.Cluster})
			if err != nil {
				t.Fatal(err)
			}
			udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer udp.Close()
			to, err := net.ResolveUDPAddr("udp", r.Addr())
			if err != nil {
				t.Fatal(err)
			}
			pkt := alivePacket(t, "forged", net.IPv4(127, 0, 0, 1), udp.LocalAddr().(*net.UDPAddr).Port, meta)
			send := func() { udp.WriteToUDP(pkt, to) }
			send()
			if tc.open {
				select {
				case tok := <-tokensc:
					t.Logf("open cluster: the forged member was dialled (token %q), as documented", tok)
				case <-time.After(15 * time.Second):
					t.Fatal("control failed: an open replica did not take the forged member; the test proves nothing")
				}
				return
			}
			deadline := time.After(3 * time.Second)
			tick := time.NewTicker(200 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case tok := <-tokensc:
					t.Fatalf("the replica dialled a member forged by UDP and sent it the token %q", tok)
				case <-tick.C:
					send()
					if isMember(r, fakeID) {
						t.Fatal("a member forged by UDP joined the membership")
					}
					continue
				case <-deadline:
				}
				break
			}
		})
	}
}
