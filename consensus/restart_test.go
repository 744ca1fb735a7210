package consensus

import (
	"testing"
)

func TestNewRejectsInvalidConfig(t *testing.T) {
	for _, mod := range []func(*Config){
		func(c *Config) { c.ID = 0 },
		func(c *Config) { c.HeartbeatTicks = 0 },
		func(c *Config) { c.ElectionTicks = c.HeartbeatTicks },
		func(c *Config) { c.MaxInflightSlots = Alpha + 1 },
		func(c *Config) { c.MaxBatchBytes = 0 },
	} {
		cfg := DefaultConfig(1)
		mod(&cfg)
		if _, err := New(cfg, State{}); err == nil {
			t.Errorf("New accepted %+v", cfg)
		}
	}
}

func TestRestartResumesPromiseLogAndChosenPrefix(t *testing.T) {
	c := electLeader(t, 1, 2, 3)
	for _, v := range []string{"a", "b", "c"} {
		c.propose(t, 2, v)
		c.settle(20)
	}
	before := c.nodes[2].node.Status()
	c.crash(2, true)
	c.restart(2)
	after := c.nodes[2].node.Status()
	if after.Ballot != before.Ballot || after.Commit != before.Commit || after.Applied != 0 {
		t.Errorf("after restart %+v, want ballot %s and commit %d kept, applied from the snapshot (0)", after, before.Ballot, before.Commit)
	}
	rd := drain(c.nodes[2].node)
	if uint64(len(rd.Committed)) != before.Commit {
		t.Errorf("re-delivered %d committed entries, want %d", len(rd.Committed), before.Commit)
	}
}

// A node that lost its last unsynced write (only the chosen prefix, which is
// never fsynced on its own) restarts with an older prefix and learns it again.
func TestRestartAfterLosingTheUnsyncedCommitRelearnsIt(t *testing.T) {
	c := electLeader(t, 1, 2, 3)
	c.propose(t, 1, "a")
	c.settle(20)
	if c.nodes[3].disk.unsyncedHS == nil {
		t.Fatal("expected the follower's last chosen-prefix write to be unsynced")
	}
	c.crash(3, false)
	c.restart(3)
	if got := c.nodes[3].node.commit; got != 0 {
		t.Fatalf("restarted with commit %d, want the synced 0", got)
	}
	for i := 0; i < c.nodes[1].node.cfg.HeartbeatTicks; i++ {
		c.tickAll()
	}
	c.settle(20)
	if got := c.nodes[3].app.applied; got != 1 {
		t.Errorf("applied %d after relearning, want 1", got)
	}
}

func TestRestartedNodeNeverReusesAProposalID(t *testing.T) {
	n := newTestNode(t, 1, 1, 2, 3)
	first, err := n.Propose([]byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	hs := drain(n).HardState
	if hs == nil {
		hs = &HardState{SeqCeiling: n.props.ceiling}
	}
	n2, _ := New(testConfig(1), State{HardState: *hs, Snapshot: votersState([]uint64{1, 2, 3}, nil).Snapshot})
	if _, err := n2.Propose([]byte("y")); err != ErrBusy {
		t.Errorf("Propose before the new id block is durable: %v, want ErrBusy", err)
	}
	drain(n2)
	second, err := n2.Propose([]byte("y"))
	if err != nil {
		t.Fatal(err)
	}
	if second.Seq <= first.Seq {
		t.Errorf("after restart issued seq %d, not above %d", second.Seq, first.Seq)
	}
}
