package consensus

import (
	"testing"
)

func TestBatchesAreBoundedByCountAndBytes(t *testing.T) {
	tests := []struct {
		name      string
		count     int
		bytes     int
		values    []string
		wantSlots []int // values per slot
	}{
		{"many small values share a slot", 100, 1 << 10, []string{"a", "b", "c", "d"}, []int{4}},
		{"count bounds a slot", 2, 1 << 10, []string{"a", "b", "c", "d", "e"}, []int{2, 2, 1}},
		{"bytes bound a slot", 100, 8, []string{"aaaa", "bbbb", "cccc"}, []int{2, 1}},
		{"a value over the byte limit gets a slot of its own", 100, 2, []string{"aaaaaa", "b"}, []int{1, 1}},
		{"batching off: one value per slot", 1, 1 << 10, []string{"a", "b", "c"}, []int{1, 1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(1)
			cfg.MaxBatchCount, cfg.MaxBatchBytes = tt.count, tt.bytes
			n, _ := New(cfg, Founding(1))
			for i := 0; i < 3 && n.role != RoleLeader; i++ {
				n.Tick()
				drain(n)
			}
			if n.role != RoleLeader {
				t.Fatal("a lone founder did not lead")
			}
			for _, v := range tt.values {
				if _, err := n.Propose([]byte(v)); err != nil {
					t.Fatal(err)
				}
			}
			rd := drain(n)
			var got []int
			for _, e := range rd.Entries {
				got = append(got, len(e.Values))
			}
			if !equalInts(got, tt.wantSlots) {
				t.Errorf("values per slot %v, want %v", got, tt.wantSlots)
			}
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// windowConfig is testConfig with the given pipeline window and batch size.
func windowConfig(inflight, batch int) func(uint64) Config {
	return func(id uint64) Config {
		cfg := testConfig(id)
		cfg.MaxInflightSlots, cfg.MaxBatchCount = inflight, batch
		return cfg
	}
}

// TestPipelineIsBoundedByTheWindow: a batch smaller than MaxBatchCount gets
// a slot only while fewer than MaxInflightSlots are in flight; meanwhile the
// queue grows, and a full batch is not held back.
func TestPipelineIsBoundedByTheWindow(t *testing.T) {
	c := electLeaderWith(t, windowConfig(2, 4), 1, 2, 3)
	l := c.nodes[1].node
	if got := l.lead.next - l.commit - 1; got != 0 {
		t.Fatalf("%d slots in flight after settling", got)
	}
	inFlight := func() uint64 { return l.lead.next - l.commit - 1 }
	for i := range 2 {
		c.propose(t, 1, "v")
		c.process(1)
		if got := inFlight(); got != uint64(i+1) {
			t.Fatalf("after proposal %d: %d slots in flight, want %d", i+1, got, i+1)
		}
	}
	for range 3 {
		c.propose(t, 1, "v")
	}
	c.process(1)
	if got, q := inFlight(), len(l.lead.queue); got != 2 || q != 3 {
		t.Fatalf("window full: %d slots in flight and %d values queued, want 2 and 3", got, q)
	}
	c.propose(t, 1, "v") // the queue now holds a full batch
	c.process(1)
	if got, q := inFlight(), len(l.lead.queue); got != 3 || q != 0 {
		t.Fatalf("full batch: %d slots in flight and %d values queued, want 3 and 0", got, q)
	}
	c.settle(100)
	if got := c.nodes[3].app.values; got != 6 {
		t.Errorf("node 3 applied %d values, want 6", got)
	}
}

// TestFullBatchesPipelineToAlpha: with batches of one value every batch is
// full, so slots are assigned past MaxInflightSlots, up to Alpha.
func TestFullBatchesPipelineToAlpha(t *testing.T) {
	c := electLeaderWith(t, windowConfig(4, 1), 1, 2, 3)
	for range Alpha + 10 {
		c.propose(t, 1, "v")
	}
	c.process(1)
	l := c.nodes[1].node
	if got := l.lead.next - l.commit - 1; got != Alpha {
		t.Errorf("%d slots in flight, want Alpha (%d)", got, Alpha)
	}
	c.settle(200)
	if got := c.nodes[3].app.values; got != Alpha+10 {
		t.Errorf("node 3 applied %d values, want %d", got, Alpha+10)
	}
}

func TestSingleVoterCommitsOnlyAfterPersisting(t *testing.T) {
	n, _ := New(testConfig(1), Founding(1))
	for n.role != RoleLeader {
		n.Tick()
		drain(n)
	}
	if _, err := n.Propose([]byte("x")); err != nil {
		t.Fatal(err)
	}
	rd := n.Ready()
	if len(rd.Entries) != 1 || len(rd.Committed) != 0 || !rd.MustSync {
		t.Fatalf("first Ready: %d entries, %d committed, sync=%v; want the entry to persist and nothing committed", len(rd.Entries), len(rd.Committed), rd.MustSync)
	}
	n.Advance(rd)
	rd = drain(n)
	if len(rd.Committed) != 1 || string(rd.Committed[0].Values[0].Data) != "x" {
		t.Errorf("second Ready committed %v, want x", rd.Committed)
	}
}

func TestFollowerProposalIsForwardedAndRetriedAfterLoss(t *testing.T) {
	c := electLeader(t, 1, 2, 3)
	c.propose(t, 2, "fwd")
	c.process(2)
	if len(c.net) != 1 || c.net[0].msg.Type != MsgProp {
		t.Fatalf("in flight %v, want one Prop", c.net)
	}
	c.net = nil // lost
	for i := 0; i < c.nodes[2].node.cfg.RetryTicks; i++ {
		c.tickAll()
	}
	c.settle(50)
	for _, id := range c.ids {
		if got := c.nodes[id].app.values; got != 1 {
			t.Errorf("node %d applied %d values, want the retried one", id, got)
		}
	}
	if live := c.nodes[2].node.props.live; live != 0 {
		t.Errorf("origin still tracks %d proposals", live)
	}
}

func TestLeaderIgnoresARetryOfAValueStillInFlight(t *testing.T) {
	c := electLeader(t, 1, 2, 3)
	id := c.propose(t, 2, "once")
	c.settle(1)
	retry := Message{Type: MsgProp, From: 2, To: 1, Values: []Value{{ID: id, Data: []byte("once")}}}
	if err := c.nodes[1].node.Step(retry); err != nil {
		t.Fatal(err)
	}
	c.settle(50)
	if c.chk.dups != 0 {
		t.Errorf("%d duplicates chosen, want none", c.chk.dups)
	}
}

func TestLostAcceptsAreRetransmittedOnHeartbeat(t *testing.T) {
	c := electLeader(t, 1, 2, 3)
	c.propose(t, 1, "a")
	c.process(1)
	c.net = nil // both Accepts lost
	for i := 0; i < c.nodes[1].node.cfg.HeartbeatTicks; i++ {
		c.tickAll()
	}
	c.settle(50)
	if c.nodes[2].app.values != 1 || c.nodes[1].app.values != 1 {
		t.Errorf("applied %d/%d values, want the retransmitted one everywhere", c.nodes[1].app.values, c.nodes[2].app.values)
	}
}
