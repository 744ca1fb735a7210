package chaos

// Tests of the harness's own parts, without a cluster: the schedule is
// reproducible, the proxy cuts and heals links, and the checks catch what
// they are meant to catch.

import (
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/doozerfs/doozerfs/fs"
	"github.com/doozerfs/doozerfs/wire"
)

func TestTheSameSeedGivesTheSameSchedule(t *testing.T) {
	o := ScheduleOptions{FaultTime: time.Minute}
	for seed := uint64(1); seed < 50; seed++ {
		a, b := NewSchedule(seed, o), NewSchedule(seed, o)
		if a.String() != b.String() {
			t.Fatalf("seed %d gave two schedules:\n%s\n%s", seed, a, b)
		}
		var total time.Duration
		for _, e := range a.Episodes {
			total += e.Hold + e.Gap
			if e.Fault == FaultBridge && a.Nodes < 5 {
				t.Errorf("seed %d: a bridge with %d replicas", seed, a.Nodes)
			}
			if e.Fault == FaultPause && e.Hold < time.Second {
				t.Errorf("seed %d: a pause of %v is not longer than an election timeout", seed, e.Hold)
			}
		}
		if total < o.FaultTime {
			t.Errorf("seed %d: %v of episodes, want at least %v", seed, total, o.FaultTime)
		}
	}
	if NewSchedule(1, o).String() == NewSchedule(2, o).String() {
		t.Error("seeds 1 and 2 gave the same schedule")
	}
	seen := map[FaultKind]bool{}
	for seed := uint64(1); seed < 200; seed++ {
		for _, e := range NewSchedule(seed, o).Episodes {
			seen[e.Fault] = true
		}
	}
	for _, f := range AllFaults {
		if !seen[f.Kind] {
			t.Errorf("no schedule of seeds 1..199 has a %s", f.Kind)
		}
	}
}

// echoServer accepts TCP connections on a port that is free for UDP too,
// echoes what they send, and counts UDP packets.
type echoServer struct {
	addr string
	ln   net.Listener
	udp  *net.UDPConn
	pkts chan []byte
}

func newEchoServer(t *testing.T) *echoServer {
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	s := &echoServer{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), pkts: make(chan []byte, 100)}
	if s.ln, err = net.Listen("tcp", s.addr); err != nil {
		t.Fatal(err)
	}
	ua, _ := net.ResolveUDPAddr("udp", s.addr)
	if s.udp, err = net.ListenUDP("udp", ua); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.ln.Close(); s.udp.Close() })
	go func() {
		for {
			c, err := s.ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, _, err := s.udp.ReadFromUDP(buf)
			if err != nil {
				return
			}
			s.pkts <- append([]byte(nil), buf[:n]...)
		}
	}()
	return s
}

func freeAddr(t *testing.T) string {
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

// readWithin reads len(want) bytes from c within d; false if they did not
// all come.
func readWithin(c net.Conn, n int, d time.Duration) ([]byte, bool) {
	c.SetReadDeadline(time.Now().Add(d))
	defer c.SetReadDeadline(time.Time{})
	buf := make([]byte, n)
	k, err := io.ReadFull(c, buf)
	return buf[:k], err == nil
}

func TestProxyHoldsTCPAndDropsUDPOnACutLinkUntilHealed(t *testing.T) {
	b := newEchoServer(t)
	n := NewNet(t.Logf)
	defer n.Close()
	proxyB := freeAddr(t)
	if _, err := n.AddNode("b", proxyB, b.addr); err != nil {
		t.Fatal(err)
	}
	// "a" is a replica whose own address is aUDP's: packets from it are
	// known to come from a.
	aUDP, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer aUDP.Close()
	if _, err := n.AddNode("a", freeAddr(t), aUDP.LocalAddr().String()); err != nil {
		t.Fatal(err)
	}

	c, err := net.Dial("tcp", proxyB)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	hello := wire.AppendHello(nil, &wire.Hello{Version: wire.ProtocolVersion, Kind: wire.ConnPeer, Name: "a"})
	c.Write(hello)
	if got, ok := readWithin(c, len(hello), 2*time.Second); !ok || string(got) != string(hello) {
		t.Fatalf("the HELLO did not come back through the proxy: %q", got)
	}

	n.Cut("a", "b")
	c.Write([]byte("held"))
	if got, ok := readWithin(c, 4, 300*time.Millisecond); ok {
		t.Fatalf("bytes crossed a cut link a→b: %q", got)
	}
	n.Heal()
	if got, ok := readWithin(c, 4, 2*time.Second); !ok || string(got) != "held" {
		t.Fatalf("after healing, got %q; want the held bytes", got)
	}

	n.Cut("b", "a") // one way: a's bytes reach b, b's answers do not
	c.Write([]byte("echo"))
	if got, ok := readWithin(c, 4, 300*time.Millisecond); ok {
		t.Fatalf("the answer crossed a cut link b→a: %q", got)
	}
	n.Heal()
	if got, ok := readWithin(c, 4, 2*time.Second); !ok || string(got) != "echo" {
		t.Fatalf("after healing, got %q", got)
	}

	pb, _ := net.ResolveUDPAddr("udp", proxyB)
	n.Cut("a", "b")
	aUDP.WriteToUDP([]byte("dropped"), pb)
	for i := 0; n.Proxy("b").UDPDropped.Load() == 0 && i < 200; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	n.Heal()
	aUDP.WriteToUDP([]byte("passed"), pb)
	select {
	case p := <-b.pkts:
		if string(p) != "passed" {
			t.Fatalf("b got the packet %q sent while the link was cut", p)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no packet reached b after healing")
	}
	if d := n.Proxy("b").UDPDropped.Load(); d != 1 {
		t.Errorf("%d packets dropped, want 1", d)
	}

	// A client's connection names no replica and is never cut.
	n.Partition([]string{"a"}, []string{"b"})
	cc, err := net.Dial("tcp", proxyB)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ch := wire.AppendHello(nil, &wire.Hello{Version: wire.ProtocolVersion, Kind: wire.ConnClient, Name: "a"})
	cc.Write(ch)
	if _, ok := readWithin(cc, len(ch), 2*time.Second); !ok {
		t.Fatal("a client connection was held by a partition")
	}
}

// history builds a History from ops given as (client, in, out, call, ret).
func op(client int, in OpIn, out OpOut, call, ret int64) Op {
	return Op{Client: client, In: in, Out: out, Call: call, Ret: ret}
}

func setEv(rev int64, path, body string) fs.Event {
	return fs.Event{Rev: rev, Path: path, Kind: fs.EventSet, Body: []byte(body)}
}

func TestPorcupineCatchesAStaleConsistentReadButNotAStalePlainOne(t *testing.T) {
	k := "/chaos/kv/k0"
	base := []Op{
		op(1, OpIn{Kind: KSet, Key: k, Rev: fs.Clobber, Body: "v1"}, OpOut{Res: ResOK, Rev: 1}, 0, 10),
		op(1, OpIn{Kind: KSet, Key: k, Rev: fs.Clobber, Body: "v2"}, OpOut{Res: ResOK, Rev: 2}, 20, 30),
	}
	stale := OpOut{Res: ResOK, A: FileState{true, "v1", 1}}
	log := []fs.Event{setEv(1, k, "v1"), setEv(2, k, "v2")}
	for _, consistent := range []bool{true, false} {
		h := &History{Ops: append(append([]Op(nil), base...),
			op(2, OpIn{Kind: KGet, Key: k, Consistent: consistent}, stale, 40, 50))}
		c := newChecker(t.TempDir())
		c.checkPorcupine(h, newEventLog(c, log, 1, 2), 10*time.Second)
		if got := len(c.violations()) > 0; got != consistent {
			t.Errorf("consistent=%v: violations %v", consistent, c.violations())
		}
	}
}

func TestPorcupineTakesAWriteOfUnknownOutcomeFromTheLog(t *testing.T) {
	k := "/chaos/kv/k0"
	h := &History{Ops: []Op{
		op(1, OpIn{Kind: KSet, Key: k, Rev: fs.Clobber, Body: "v1"}, OpOut{Res: ResUnknown}, 0, 10),
		op(2, OpIn{Kind: KGet, Key: k, Consistent: true}, OpOut{Res: ResOK, A: FileState{true, "v1", 1}}, 20, 30),
		op(2, OpIn{Kind: KSet, Key: k, Rev: 1, Body: "v2"}, OpOut{Res: ResOK, Rev: 2}, 40, 50),
	}}
	log := []fs.Event{setEv(1, k, "v1"), setEv(2, k, "v2")}
	c := newChecker(t.TempDir())
	c.checkPorcupine(h, newEventLog(c, log, 1, 2), 10*time.Second)
	if v := c.violations(); len(v) > 0 {
		t.Errorf("a linearizable history: %v", v)
	}
	// And if the log says it never happened, the read is impossible.
	c = newChecker(t.TempDir())
	c.checkPorcupine(h, newEventLog(c, log[1:], 1, 2), 10*time.Second)
	if len(c.violations()) == 0 {
		t.Error("a read of a write that never happened passed")
	}
}

func TestLogChecksCatchLostWritesPhantomsAndHalfTransactions(t *testing.T) {
	k := "/chaos/kv/k0"
	h := &History{Ops: []Op{
		op(1, OpIn{Kind: KSet, Key: k, Rev: fs.Clobber, Body: "lost"}, OpOut{Res: ResOK, Rev: 1}, 0, 10),
		op(1, OpIn{Kind: KTxn, Key: groupDir, Rev: fs.Clobber, Body: "half"}, OpOut{Res: ResOK, Rev: 2}, 20, 30),
		op(1, OpIn{Kind: KSet, Key: k, Rev: 5, Body: "refused"}, OpOut{Res: ResMismatch}, 40, 50),
	}}
	log := []fs.Event{setEv(2, groupA, "half"), setEv(3, k, "refused"), setEv(4, k, "nobody")}
	c := newChecker(t.TempDir())
	c.checkAgainstLog(h, newEventLog(c, log, 1, 4), nil)
	got := ""
	for _, v := range c.violations() {
		got += v.String() + "\n"
	}
	for _, want := range []string{"acknowledged write lost", "transaction half applied", "answered mismatch was applied", "a set no client made"} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q among:\n%s", want, got)
		}
	}
}

func TestWatchCheckCatchesRepeatsAndGaps(t *testing.T) {
	k := "/chaos/kv/k0"
	log := []fs.Event{setEv(1, k, "a"), setEv(2, k, "b"), setEv(3, k, "c")}
	for name, got := range map[string][]fs.Event{
		"repeat": {log[0], log[1], log[1], log[2]},
		"gap":    {log[0], log[2]},
		"order":  {log[0], log[2], log[1]},
	} {
		c := newChecker(t.TempDir())
		c.checkWatches(&History{Watches: []*WatchRec{{Name: name, Glob: "/chaos/**", From: 1, Events: got}}}, newEventLog(c, log, 1, 3), 3)
		if len(c.violations()) == 0 {
			t.Errorf("a watch stream with a %s passed", name)
		}
	}
	c := newChecker(t.TempDir())
	c.checkWatches(&History{Watches: []*WatchRec{{Name: "ok", Glob: "/chaos/**", From: 1, Events: log}}}, newEventLog(c, log, 1, 3), 3)
	if v := c.violations(); len(v) > 0 {
		t.Errorf("a whole stream: %v", v)
	}
}
