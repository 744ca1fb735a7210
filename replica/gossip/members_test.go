package gossip

import (
	"bytes"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"testing"
	"time"

	"github.com/doozerfs/doozerfs/wire"
	"github.com/hashicorp/memberlist"
)

// TestLifecycle: three members join through the single-port transport and
// see each other alive; one killed is declared dead; restarted with the
// same name it rejoins; one that leaves is seen as left.
func TestLifecycle(t *testing.T) {
	a := startNode(t, "a", "", nodeOpts{id: 1})
	b := startNode(t, "b", "", nodeOpts{id: 2})
	c := startNode(t, "c", "", nodeOpts{id: 3})
	all := []*testNode{a, b, c}
	b.join(t, a)
	c.join(t, a) // c learns of b through gossip
	waitFor(t, 10*time.Second, "all alive everywhere", sees(all, StateAlive, "a", "b", "c"), all...)

	for _, o := range all {
		for i, want := range all {
			x, _ := o.node(want.name)
			if x.ID != uint64(i+1) || x.Addr != want.addr || x.Cluster != testCluster || x.Gossip != want.addr {
				t.Errorf("%s sees %+v; want id %d, addr and gossip %s, cluster %s", o.name, x, i+1, want.addr, testCluster)
			}
			if x.StateSince.IsZero() {
				t.Errorf("%s sees %s with no StateSince", o.name, x.Name)
			}
		}
		select {
		case <-o.changes:
		default:
			t.Errorf("%s: OnChange was not called", o.name)
		}
	}

	// Killed without leaving: dead.
	killed := time.Now()
	c.kill()
	waitFor(t, 15*time.Second, "c dead at a and b", sees([]*testNode{a, b}, StateDead, "c"), a, b)
	t.Logf("c declared dead after %v", time.Since(killed).Round(time.Millisecond))
	dead, _ := a.node("c")
	if dead.StateSince.Before(killed) {
		t.Errorf("c's StateSince %v is before it was killed (%v)", dead.StateSince, killed)
	}

	// Restarted with the same name and address: memberlist refutes the old
	// death with a new incarnation, and c is alive again.
	c2 := startNode(t, "c", c.addr, nodeOpts{id: 3})
	c2.join(t, a)
	all = []*testNode{a, b, c2}
	waitFor(t, 10*time.Second, "c back, everyone alive", sees(all, StateAlive, "a", "b", "c"), all...)
	if back, _ := b.node("c"); !back.StateSince.After(dead.StateSince) {
		t.Errorf("c alive since %v, not after it died (%v)", back.StateSince, dead.StateSince)
	}

	// Leave: seen as left, not dead, and stays so once b is gone.
	if err := b.m.Leave(5 * time.Second); err != nil {
		t.Fatalf("leave: %v", err)
	}
	waitFor(t, 10*time.Second, "b left at a and c", sees([]*testNode{a, c2}, StateLeft, "b"), a, c2)
	b.kill()
	barrier(t, a, 100, a, c2)
	barrier(t, c2, 300, a, c2)
	for _, o := range []*testNode{a, c2} {
		if x, _ := o.node("b"); x.State != StateLeft {
			t.Errorf("%s sees b %s after it left and stopped", o.name, x.State)
		}
	}
	if x, _ := b.node("b"); x.State != StateLeft {
		t.Errorf("b sees itself %s after leaving", x.State)
	}

	// Forget drops a departed member, not an alive one.
	if !a.m.Forget("b") || a.m.Forget("c") || a.m.Forget("nobody") {
		t.Error("Forget: wrong answers")
	}
	if got := names(a); !slices.Equal(got, []string{"a", "c"}) {
		t.Errorf("a sees %v after forgetting b", got)
	}

	// After Shutdown the methods fail cleanly.
	b.m.Shutdown()
	if _, err := b.m.Join([]string{a.addr}); err != ErrShutdown {
		t.Errorf("join after shutdown: %v", err)
	}
	if err := b.m.Leave(time.Second); err != ErrShutdown {
		t.Errorf("leave after shutdown: %v", err)
	}
}

// TestLeaveThenRejoin: a member that left can come back under its name.
func TestLeaveThenRejoin(t *testing.T) {
	a := startNode(t, "a", "", nodeOpts{})
	b := startNode(t, "b", "", nodeOpts{})
	b.join(t, a)
	both := []*testNode{a, b}
	waitFor(t, 10*time.Second, "both alive", sees(both, StateAlive, "a", "b"), both...)
	if err := b.m.Leave(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "b left", sees([]*testNode{a}, StateLeft, "b"), a)
	b.kill()
	b2 := startNode(t, "b", b.addr, nodeOpts{})
	b2.join(t, a)
	both = []*testNode{a, b2}
	waitFor(t, 10*time.Second, "b back", sees(both, StateAlive, "a", "b"), both...)
}

// TestOtherClusterRefused: a member whose Meta names another cluster is not
// admitted, even when its HELLO gets through; and with the HELLO naming its
// own cluster (what a replica sends), it never gets that far.
func TestOtherClusterRefused(t *testing.T) {
	a := startNode(t, "a", "", nodeOpts{})
	// f's HELLO and server say "test", its Meta says "other".
	f := startNode(t, "f", "", nodeOpts{cluster: "other", helloCluster: testCluster, policyCluster: testCluster})
	// g is a plain member of "other".
	g := startNode(t, "g", "", nodeOpts{cluster: "other"})

	if _, err := f.m.Join([]string{a.addr}); err == nil {
		t.Error("f (meta cluster other) joined a")
	}
	if _, err := a.m.Join([]string{f.addr}); err == nil {
		t.Error("a joined f (meta cluster other)")
	}
	if _, err := g.m.Join([]string{a.addr}); err == nil {
		t.Error("g (cluster other) joined a")
	}
	if _, err := a.m.Join([]string{g.addr}); err == nil {
		t.Error("a joined g (cluster other)")
	}

	b := startNode(t, "b", "", nodeOpts{})
	b.join(t, a)
	waitFor(t, 10*time.Second, "a and b alive", sees([]*testNode{a, b}, StateAlive, "a", "b"), a, b)
	barrier(t, a, 7, a, b)
	for _, o := range []*testNode{a, b} {
		if got := names(o); !slices.Equal(got, []string{"a", "b"}) {
			t.Errorf("%s sees %v", o.name, got)
		}
	}
	for _, o := range []*testNode{f, g} {
		if got := names(o); !slices.Equal(got, []string{o.name}) {
			t.Errorf("%s sees %v", o.name, got)
		}
	}

	// The delegates themselves.
	d := delegate{a.m}
	other, _ := EncodeMeta(Meta{ID: 9, Addr: "x:1", Cluster: "other"})
	same, _ := EncodeMeta(Meta{ID: 9, Addr: "x:1", Cluster: testCluster})
	if d.NotifyAlive(&memberlist.Node{Name: "x", Meta: other}) == nil {
		t.Error("NotifyAlive admitted another cluster")
	}
	if d.NotifyAlive(&memberlist.Node{Name: "x", Meta: []byte("junk")}) == nil {
		t.Error("NotifyAlive admitted undecodable meta")
	}
	if d.NotifyAlive(&memberlist.Node{Name: "x"}) == nil {
		t.Error("NotifyAlive admitted no meta")
	}
	if err := d.NotifyAlive(&memberlist.Node{Name: "x", Meta: same}); err != nil {
		t.Errorf("NotifyAlive refused this cluster: %v", err)
	}
	if d.NotifyMerge([]*memberlist.Node{{Name: "x", Meta: same}, {Name: "y", Meta: other}}) == nil {
		t.Error("NotifyMerge took a state with another cluster's member")
	}
}

// TestGossipKey: members sharing a key join; one with another key, or
// none, does not.
func TestGossipKey(t *testing.T) {
	key := bytes.Repeat([]byte{1}, 32)
	a := startNode(t, "a", "", nodeOpts{key: key})
	b := startNode(t, "b", "", nodeOpts{key: key[:16]})
	// b's key differs (16 bytes of it): show that a wrong key fails first.
	if _, err := b.m.Join([]string{a.addr}); err == nil {
		t.Error("b joined a with another key")
	}
	c := startNode(t, "c", "", nodeOpts{})
	if _, err := c.m.Join([]string{a.addr}); err == nil {
		t.Error("c joined a without a key")
	}
	if _, err := a.m.Join([]string{c.addr}); err == nil {
		t.Error("a joined c, which has no key")
	}
	d := startNode(t, "d", "", nodeOpts{key: key})
	e := startNode(t, "e", "", nodeOpts{key: key})
	d.join(t, a)
	e.join(t, d)
	good := []*testNode{a, d, e}
	waitFor(t, 10*time.Second, "a, d, e alive", sees(good, StateAlive, "a", "d", "e"), good...)
	barrier(t, e, 5, good...)
	for _, o := range good {
		if got := names(o); !slices.Equal(got, []string{"a", "d", "e"}) {
			t.Errorf("%s sees %v", o.name, got)
		}
	}
	for _, o := range []*testNode{b, c} {
		if got := names(o); !slices.Equal(got, []string{o.name}) {
			t.Errorf("%s sees %v", o.name, got)
		}
	}
}

// TestGossipKeyring: a member hears every member whose primary key is in
// its keyring, so the three steps of a rolling key rotation (add the new
// key, make it primary, drop the old one) each leave a cluster whose
// members all see each other; members whose primary key the other lacks
// do not.
func TestGossipKeyring(t *testing.T) {
	k1, k2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 16)
	ring := func(primary []byte, others ...[]byte) nodeOpts { return nodeOpts{key: primary, otherKeys: others} }
	for _, step := range []struct {
		name   string
		before nodeOpts // a member not restarted yet
		after  nodeOpts // a member restarted for the step
	}{
		{"add the new key", ring(k1), ring(k1, k2)},
		{"make it primary", ring(k1, k2), ring(k2, k1)},
		{"drop the old key", ring(k2, k1), ring(k2)},
	} {
		t.Run(step.name, func(t *testing.T) {
			a := startNode(t, "a", "", step.before)
			b := startNode(t, "b", "", step.after)
			c := startNode(t, "c", "", step.before)
			b.join(t, a)
			c.join(t, b)
			all := []*testNode{a, b, c}
			waitFor(t, 10*time.Second, "a, b, c alive", sees(all, StateAlive, "a", "b", "c"), all...)
			barrier(t, b, 7, all...)
		})
	}
	for _, bad := range []struct {
		name string
		x, y nodeOpts // y's keyring may hold x's primary key; not the reverse
	}{
		{"old and new", ring(k1), ring(k2)},
		{"old and new primary", ring(k1), ring(k2, k1)},
		{"new and old primary", ring(k2), ring(k1, k2)},
	} {
		t.Run(bad.name, func(t *testing.T) {
			x := startNode(t, "x", "", bad.x)
			y := startNode(t, "y", "", bad.y)
			if _, err := y.m.Join([]string{x.addr}); err == nil {
				t.Error("y joined x")
			}
			if _, err := x.m.Join([]string{y.addr}); err == nil {
				t.Error("x joined y")
			}
			// x cannot read y's gossip at all; y can read x's (x's
			// primary key is in y's keyring), so x's join attempt may
			// show it x, but x never answers y's probes.
			if got := names(x); !slices.Equal(got, []string{"x"}) {
				t.Errorf("x sees %v", got)
			}
			if _, ok := y.node("x"); ok {
				waitFor(t, 10*time.Second, "y to see x dead", sees([]*testNode{y}, StateDead, "x"), x, y)
			}
		})
	}
}

// TestGoroutines: a cluster started and shut down leaves no goroutines.
func TestGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		a := startNode(t, "a", "", nodeOpts{})
		b := startNode(t, "b", "", nodeOpts{})
		b.join(t, a)
		waitFor(t, 10*time.Second, "both alive", sees([]*testNode{a, b}, StateAlive, "a", "b"), a, b)
		barrier(t, a, 1, a, b)
		a.kill()
		b.kill()
	}()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
			t.Fatalf("%d goroutines before, %d after shutdown", before, runtime.NumGoroutine())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestStartErrors(t *testing.T) {
	tcp, udp, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	tr, err := New(TransportConfig{UDP: udp, Advertise: tcp.Addr().(*net.TCPAddr),
		DialStream: HelloDialer(wire.Hello{Cluster: testCluster}, nil), Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Start(MembersConfig{Name: "a", Transport: tr, GossipKey: []byte("short"), Logger: testLogger()}); err == nil {
		t.Fatal("Start took a 5-byte key")
	}
	if !tr.stopped() {
		t.Error("a failed Start left the transport running")
	}
	for _, c := range []MembersConfig{
		{OtherGossipKeys: [][]byte{make([]byte, 16)}},                              // no primary
		{GossipKey: make([]byte, 16), OtherGossipKeys: [][]byte{make([]byte, 7)}},  // a short one
		{GossipKey: make([]byte, 16), OtherGossipKeys: [][]byte{make([]byte, 16)}}, // the primary again
	} {
		tcp, udp, err := Listen("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		tcp.Close()
		c.Name, c.Logger = "a", testLogger()
		c.Transport, err = New(TransportConfig{UDP: udp, Advertise: tcp.Addr().(*net.TCPAddr),
			DialStream: HelloDialer(wire.Hello{Cluster: testCluster}, nil), Logger: testLogger()})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Start(c); err == nil {
			t.Errorf("Start took keys %d + %v", len(c.GossipKey), c.OtherGossipKeys)
		}
	}
	if _, err := Start(MembersConfig{Name: "a"}); err == nil {
		t.Error("Start without a transport")
	}
}
