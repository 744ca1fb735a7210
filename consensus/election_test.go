package consensus

import (
	"testing"
)

func TestPreVoteGrants(t *testing.T) {
	tests := []struct {
		name      string
		heard     bool // the voter heard leader 2 just now
		from      uint64
		commit    uint64 // the poller's
		wantGrant bool
	}{
		{"grants when no leader is heard", false, 3, 0, true},
		{"refuses while a leader is heard", true, 3, 0, false},
		{"refuses a poller that is not a voter", false, 9, 0, false},
		{"refuses a poller behind its chosen prefix", false, 3, 0, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newTestNode(t, 1, 1, 2, 3)
			if tt.heard {
				step(t, n, Message{Type: MsgHeartbeat, From: 2, Ballot: b(1, 2)})
			}
			if i == 3 {
				n.commit = 4
				n.slots.put(Entry{Slot: 1, Ballot: b(1, 2), Kind: EntryNoop})
			}
			got := only(t, step(t, n, Message{Type: MsgPreVote, From: tt.from, Ballot: b(2, tt.from), Commit: tt.commit}), MsgPreVoteResp)
			if got.Reject == tt.wantGrant {
				t.Errorf("granted = %v, want %v", !got.Reject, tt.wantGrant)
			}
			if !n.promised.Less(b(1, 3)) && !tt.heard {
				t.Errorf("a pre-vote changed the promise to %s", n.promised)
			}
		})
	}
}

// A node cut off from a working leader polls forever but never raises the
// ballot the others promised, so the leader's Accepts keep being accepted
// when the partition heals.
func TestPartitionedNodeCannotRaiseTheBallotOthersPromised(t *testing.T) {
	c := electLeader(t, 1, 2, 3)
	c.partition3()
	for i := 0; i < 20*c.nodes[3].node.cfg.ElectionTicks; i++ {
		c.tickAll()
		c.settle(10)
	}
	for _, id := range []uint64{1, 2} {
		if got := c.nodes[id].node.promised; got != b(1, 1) {
			t.Errorf("node %d promised %s, want 1.1", id, got)
		}
	}
	if got := c.nodes[3].node.promised; got != b(1, 1) {
		t.Errorf("isolated node 3 raised its own promise to %s", got)
	}
	c.cut = map[[2]uint64]bool{}
	c.propose(t, 1, "after-heal")
	c.settle(100)
	if c.leaderID() != 1 || c.nodes[3].app.values != 1 {
		t.Errorf("leader %d, node 3 applied %d values; want leader 1 undisturbed and the value applied", c.leaderID(), c.nodes[3].app.values)
	}
}

// partition3 cuts node 3 off from the others.
func (c *cluster) partition3() {
	for _, id := range c.ids {
		if id != 3 {
			c.cut[[2]uint64{id, 3}], c.cut[[2]uint64{3, id}] = true, true
		}
	}
}

func TestLearnerNeverCampaigns(t *testing.T) {
	n, err := New(testConfig(4), votersState([]uint64{1, 2, 3}, []uint64{4}))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10*n.cfg.ElectionTicks; i++ {
		n.Tick()
	}
	for _, m := range drain(n).Messages {
		if m.Type == MsgPreVote || m.Type == MsgPrepare {
			t.Errorf("learner campaigned: %s", m)
		}
	}
	if n.role != RoleFollower || n.Status().Role != RoleLearner {
		t.Errorf("learner is %s", n.Status().Role)
	}
	joiner, _ := New(testConfig(5), State{})
	for i := 0; i < 10*n.cfg.ElectionTicks; i++ {
		joiner.Tick()
	}
	if rd := drain(joiner); len(rd.Messages) != 0 {
		t.Errorf("a node without membership sent %v", rd.Messages)
	}
}

func TestCandidateCountsItsOwnPromiseOnlyOnceItIsPersisted(t *testing.T) {
	n := newTestNode(t, 1, 1, 2, 3)
	n.startPreVote()
	drain(n)
	if err := n.Step(Message{Type: MsgPreVoteResp, From: 2, To: 1, Ballot: n.elect.ballot}); err != nil {
		t.Fatal(err)
	}
	if n.elect.pre {
		t.Fatal("still polling after a majority granted")
	}
	bal := n.elect.ballot
	rd := n.Ready()
	if rd.HardState == nil || rd.HardState.Promised != bal || !rd.MustSync || len(rd.Messages) != 2 || rd.Messages[0].Type != MsgPrepare {
		t.Fatalf("campaign Ready = %+v, want the promise of %s fsynced with the Prepares", rd.HardState, bal)
	}
	if err := n.Step(Message{Type: MsgPromise, From: 2, To: 1, Ballot: bal}); err != nil {
		t.Fatal(err)
	}
	if n.role == RoleLeader {
		t.Fatal("won with one promise and an unpersisted own promise")
	}
	n.Advance(rd)
	if n.role != RoleLeader {
		t.Fatalf("role %s after its own promise was persisted, want leader", n.role)
	}
}

func TestNewLeaderReproposesHighestBallotValuesAndFillsHolesWithNoops(t *testing.T) {
	n := newTestNode(t, 1, 1, 2, 3)
	n.campaign(false)
	bal := n.elect.ballot
	campaign := n.Ready() // its own promise is not yet persisted
	for _, m := range []Message{
		{Type: MsgPromise, From: 2, To: 1, Ballot: bal, Entries: []Entry{
			{Slot: 1, Ballot: b(1, 2), Kind: EntryValues, Values: vals(2, "old")},
			{Slot: 3, Ballot: b(1, 2), Kind: EntryValues, Values: vals(2, "c")},
		}},
		{Type: MsgPromise, From: 3, To: 1, Ballot: bal, Entries: []Entry{
			{Slot: 1, Ballot: b(1, 3), Kind: EntryValues, Values: vals(3, "new")},
		}},
	} {
		if err := n.Step(m); err != nil {
			t.Fatal(err)
		}
	}
	n.Advance(campaign)
	if n.role != RoleLeader {
		t.Fatalf("role %s, want leader", n.role)
	}
	rd := drain(n)
	want := []string{"1@" + bal.String() + ":{new}", "2@" + bal.String() + ":noop", "3@" + bal.String() + ":{c}"}
	acc := rd.Messages[len(rd.Messages)-1]
	for acc.Type != MsgAccept {
		t.Fatalf("no Accept in %v", rd.Messages)
	}
	if len(acc.Entries) != 3 {
		t.Fatalf("re-proposed %v, want %v", acc.Entries, want)
	}
	for i, e := range acc.Entries {
		if e.short() != want[i] {
			t.Errorf("slot %d re-proposed as %s, want %s", i+1, e.short(), want[i])
		}
	}
}

func TestLeaderStepsDownWhenAQuorumStopsAnswering(t *testing.T) {
	c := electLeader(t, 1, 2, 3)
	for _, id := range []uint64{2, 3} {
		c.cut[[2]uint64{1, id}], c.cut[[2]uint64{id, 1}] = true, true
	}
	for i := 0; i < 2*c.nodes[1].node.cfg.ElectionTicks; i++ {
		c.nodes[1].node.Tick()
	}
	if st := c.nodes[1].node.Status(); st.Role == RoleLeader {
		t.Errorf("isolated leader still leads: %+v", st)
	}
	if _, err := c.nodes[1].node.Propose([]byte("x")); err != nil {
		t.Errorf("Propose on an isolated ex-leader: %v, want it held for a future leader", err)
	}
}

func TestLeaderElectedAfterLeaderCrashCommitsWithinOneSecond(t *testing.T) {
	// With the default timing (10 ms ticks) a follower polls after 500–900
	// ms of silence; the new leader must commit before 1 s.
	c := electLeader(t, 1, 2, 3)
	c.crash(1, false)
	ticks := 0
	for ; ticks < 100; ticks++ {
		c.tickAll()
		c.settle(20)
		if l := c.leaderID(); l != 0 && c.nodes[l].node.readReady() {
			break
		}
	}
	if ticks >= 100 {
		t.Fatalf("no committing leader after %d ticks (1 s)", ticks)
	}
}
