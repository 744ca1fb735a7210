package gossip

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/doozerfs/doozerfs/wire"
)

// testLogger discards logs unless GOSSIP_TEST_LOG is set (memberlist's
// goroutines may log after a test has ended, so t.Log cannot be used).
func testLogger() *slog.Logger {
	if os.Getenv("GOSSIP_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

const testCluster = "test"

// nodeOpts say how a test node differs from a plain one.
type nodeOpts struct {
	cluster       string // in its Meta; default testCluster
	helloCluster  string // in the HELLO it sends; default cluster
	policyCluster string // what its server accepts; default cluster
	secret        string
	key           []byte
	otherKeys     [][]byte // accepted besides key
	serverTLS     *tls.Config
	clientTLS     *tls.Config
	id            uint64
}

// testNode is a replica's gossip side with a tiny server in front, as the
// replica will have: TCP accept → wire.Accept → HandleWireConn for gossip.
type testNode struct {
	t      *testing.T
	name   string
	addr   string
	opts   nodeOpts
	policy wire.Policy
	ln     net.Listener
	tr     *Transport
	m      *Members

	changes chan struct{} // poked by OnChange

	srv     sync.WaitGroup
	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	stopped bool
}

// startNode starts a node named name on addr ("" for a new port on
// 127.0.0.1). It is killed when the test ends.
func startNode(t *testing.T, name, addr string, o nodeOpts) *testNode {
	t.Helper()
	if o.cluster == "" {
		o.cluster = testCluster
	}
	if o.helloCluster == "" {
		o.helloCluster = o.cluster
	}
	if o.policyCluster == "" {
		o.policyCluster = o.cluster
	}
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	tcp, udp, err := listenRetry(addr)
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	n := &testNode{
		t:       t,
		name:    name,
		addr:    tcp.Addr().String(),
		opts:    o,
		policy:  wire.Policy{Cluster: o.policyCluster, Secret: o.secret, Name: name, ID: o.id},
		changes: make(chan struct{}, 1),
		conns:   make(map[net.Conn]struct{}),
	}
	n.ln = tcp
	if o.serverTLS != nil {
		n.ln = tls.NewListener(tcp, o.serverTLS)
	}
	n.tr, err = New(TransportConfig{
		UDP:        udp,
		Advertise:  tcp.Addr().(*net.TCPAddr),
		DialStream: HelloDialer(wire.Hello{Cluster: o.helloCluster, Token: o.secret, Name: name}, o.clientTLS),
		Logger:     testLogger().With("self", name),
	})
	if err != nil {
		tcp.Close()
		udp.Close()
		t.Fatal(err)
	}
	n.srv.Add(1)
	go n.serve()
	n.m, err = Start(MembersConfig{
		Name:            name,
		Transport:       n.tr,
		Meta:            Meta{ID: o.id, Addr: n.addr, Cluster: o.cluster},
		GossipKey:       o.key,
		OtherGossipKeys: o.otherKeys,
		Timings:         FastTimings(),
		OnChange: func() {
			select {
			case n.changes <- struct{}{}:
			default:
			}
		},
		Logger: testLogger().With("self", name),
	})
	if err != nil {
		n.stopServer()
		t.Fatal(err)
	}
	t.Cleanup(n.kill)
	return n
}

// listenRetry binds addr, retrying a little while a just-closed port is
// still busy (a restart on the same address).
func listenRetry(addr string) (*net.TCPListener, *net.UDPConn, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		tcp, udp, err := Listen(addr)
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			return tcp, udp, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (n *testNode) serve() {
	defer n.srv.Done()
	for {
		nc, err := n.ln.Accept()
		if err != nil {
			return
		}
		n.mu.Lock()
		if n.stopped {
			n.mu.Unlock()
			nc.Close()
			return
		}
		n.conns[nc] = struct{}{}
		n.srv.Add(1)
		n.mu.Unlock()
		go n.handle(nc)
	}
}

// handle is what the replica's server does with a connection.
func (n *testNode) handle(nc net.Conn) {
	defer func() {
		nc.Close()
		n.mu.Lock()
		delete(n.conns, nc)
		n.mu.Unlock()
		n.srv.Done()
	}()
	c := wire.NewConn(nc, 0)
	nc.SetReadDeadline(time.Now().Add(2 * time.Second))
	hello, _, err := wire.Accept(c, &n.policy)
	if err != nil {
		return
	}
	nc.SetReadDeadline(time.Time{})
	if hello.Kind == wire.ConnGossip {
		n.tr.HandleWireConn(c)
	}
}

func (n *testNode) stopServer() {
	n.mu.Lock()
	n.stopped = true
	for c := range n.conns {
		c.Close()
	}
	n.mu.Unlock()
	n.ln.Close()
	n.srv.Wait()
}

// kill stops the node without leaving: memberlist, transport, server.
func (n *testNode) kill() {
	n.m.Shutdown()
	n.stopServer()
}

func (n *testNode) join(t *testing.T, others ...*testNode) {
	t.Helper()
	var addrs []string
	for _, o := range others {
		addrs = append(addrs, o.addr)
	}
	if k, err := n.m.Join(addrs); err != nil || k != len(addrs) {
		t.Fatalf("%s joins %v: reached %d, %v", n.name, addrs, k, err)
	}
}

// node returns what n knows of the member named name.
func (n *testNode) node(name string) (Node, bool) {
	for _, x := range n.m.Nodes() {
		if x.Name == name {
			return x, true
		}
	}
	return Node{}, false
}

func (n *testNode) view() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s sees:", n.name)
	for _, x := range n.m.Nodes() {
		fmt.Fprintf(&b, " %s=%s", x.Name, x.State)
	}
	return b.String()
}

// waitFor polls cond until it holds, failing the test after d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool, views ...*testNode) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			var vs []string
			for _, v := range views {
				vs = append(vs, v.view())
			}
			t.Fatalf("after %v still waiting for %s; %s", d, what, strings.Join(vs, "; "))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sees reports whether every observer sees every named member in state st.
func sees(observers []*testNode, st State, names ...string) func() bool {
	return func() bool {
		for _, o := range observers {
			for _, name := range names {
				if x, ok := o.node(name); !ok || x.State != st {
					return false
				}
			}
		}
		return true
	}
}

// barrier changes a's Meta and waits until every observer has it: a gossip
// round trip, after which what was not gossiped before is not going to be.
func barrier(t *testing.T, a *testNode, id uint64, observers ...*testNode) {
	t.Helper()
	meta := Meta{ID: id, Addr: a.addr, Cluster: a.opts.cluster}
	if err := a.m.SetMeta(meta, 5*time.Second); err != nil {
		t.Fatalf("SetMeta: %v", err)
	}
	waitFor(t, 10*time.Second, fmt.Sprintf("%s's id %d to reach everyone", a.name, id), func() bool {
		for _, o := range observers {
			if x, ok := o.node(a.name); !ok || x.ID != id {
				return false
			}
		}
		return true
	}, observers...)
}

func names(n *testNode) []string {
	var out []string
	for _, x := range n.m.Nodes() {
		out = append(out, x.Name)
	}
	return out
}
