package consensus

import (
	"errors"
	"testing"
)

func TestMembershipApply(t *testing.T) {
	base := Membership{Voters: []uint64{1, 2, 3}, Learners: []uint64{4}}
	tests := []struct {
		name string
		cc   ConfChange
		want Membership
		err  error
	}{
		{"adds a learner", ConfChange{ConfAddLearner, 5}, Membership{Voters: []uint64{1, 2, 3}, Learners: []uint64{4, 5}}, nil},
		{"promotes a learner", ConfChange{ConfPromote, 4}, Membership{Voters: []uint64{1, 2, 3, 4}}, nil},
		{"removes a voter", ConfChange{ConfRemove, 2}, Membership{Voters: []uint64{1, 3}, Learners: []uint64{4}}, nil},
		{"removes a learner", ConfChange{ConfRemove, 4}, Membership{Voters: []uint64{1, 2, 3}}, nil},
		{"refuses to add a member twice", ConfChange{ConfAddLearner, 2}, base, ErrBadChange},
		{"refuses to promote a voter", ConfChange{ConfPromote, 1}, base, ErrBadChange},
		{"refuses to remove a stranger", ConfChange{ConfRemove, 9}, base, ErrBadChange},
		{"refuses node 0", ConfChange{ConfAddLearner, 0}, base, ErrBadChange},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := base.apply(tt.cc)
			if !errors.Is(err, tt.err) || !got.Equal(tt.want) {
				t.Errorf("apply(%v) = %s, %v; want %s, %v", tt.cc, got, err, tt.want, tt.err)
			}
		})
	}
	if _, err := (Membership{Voters: []uint64{1}}).apply(ConfChange{ConfRemove, 1}); !errors.Is(err, ErrBadChange) {
		t.Errorf("removing the last voter: %v, want ErrBadChange", err)
	}
}

// A change chosen at slot c governs quorums from slot c+Alpha on; until then
// (and until it has taken effect) no other change is accepted.
func TestMembershipChangeTakesEffectAlphaSlotsLater(t *testing.T) {
	c := electLeader(t, 1, 2, 3)
	l := c.nodes[1].node
	c.addNode(4, State{})
	if err := l.ProposeConfChange(ConfChange{ConfAddLearner, 4}); err != nil {
		t.Fatal(err)
	}
	if err := l.ProposeConfChange(ConfChange{ConfAddLearner, 5}); !errors.Is(err, ErrChangeInProgress) {
		t.Errorf("second change while one is in flight: %v, want ErrChangeInProgress", err)
	}
	c.settle(200)
	since := l.conf.Since
	if since == 0 || !l.conf.Members.IsLearner(4) || l.conf.For(since+Alpha-1).IsMember(4) || !l.conf.For(since+Alpha).IsMember(4) {
		t.Fatalf("config %+v: want learner 4 governing from slot %d", l.conf, since+Alpha)
	}
	if l.commit < since+Alpha-1 {
		t.Errorf("commit %d: the leader did not fill the window up to %d", l.commit, since+Alpha-1)
	}
	for i := 0; i < l.cfg.HeartbeatTicks; i++ {
		c.tickAll()
	}
	c.settle(200)
	if err := l.ProposeConfChange(ConfChange{ConfPromote, 4}); err != nil {
		t.Fatalf("promote after the change took effect: %v", err)
	}
	c.settle(200)
	if !l.conf.Members.IsVoter(4) || c.nodes[4].app.applied != l.commit {
		t.Errorf("members %s, node 4 applied %d of %d", l.conf.Members, c.nodes[4].app.applied, l.commit)
	}
}

func TestMembershipChangeRefusedWhenRecentlyHeardVotersLoseQuorum(t *testing.T) {
	c := electLeader(t, 1, 2, 3)
	l := c.nodes[1].node
	c.crash(2, false)
	for i := 0; i < 2*l.cfg.ElectionTicks; i++ {
		c.tickAll()
		c.settle(5)
	}
	if err := l.ProposeConfChange(ConfChange{ConfRemove, 3}); !errors.Is(err, ErrUnsafeChange) {
		t.Errorf("removing the only other live voter: %v, want ErrUnsafeChange", err)
	}
}

func TestRemovedLeaderHandsOverAndStopsDisrupting(t *testing.T) {
	c := electLeader(t, 1, 2, 3)
	l := c.nodes[1].node
	if err := l.ProposeConfChange(ConfChange{ConfRemove, 1}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5 && c.leaderID() == 1; i++ {
		c.settle(200)
		c.tickAll()
	}
	c.settle(200)
	nl := c.leaderID()
	if nl == 0 || nl == 1 {
		t.Fatalf("leader %d after the old one removed itself", nl)
	}
	ballot := c.nodes[nl].node.lead.ballot
	for i := 0; i < 10*l.cfg.ElectionTicks; i++ {
		c.tickAll()
		c.settle(5)
	}
	if c.leaderID() != nl || c.nodes[nl].node.lead.ballot != ballot {
		t.Errorf("the removed node disrupted the new leader")
	}
	if st := c.nodes[1].node.Status(); st.Role != RoleLearner || st.Membership.IsMember(1) {
		t.Errorf("removed node status %+v", st)
	}
	if _, err := c.nodes[1].node.Propose([]byte("x")); !errors.Is(err, ErrRemoved) {
		t.Errorf("Propose at a removed node: %v, want ErrRemoved", err)
	}
}

// A config entry computed against a membership that changed meanwhile (two
// leaders raced) is chosen but has no effect, and is delivered as a no-op.
func TestConfigEntryThatLostItsRaceIsDeliveredAsNoop(t *testing.T) {
	n := newTestNode(t, 1, 1, 2, 3)
	add4 := Entry{Slot: 1, Ballot: b(1, 2), Kind: EntryConfig, Change: ConfChange{ConfAddLearner, 4}, Members: Membership{Voters: []uint64{1, 2, 3}, Learners: []uint64{4}}}
	add5 := Entry{Slot: 2, Ballot: b(1, 2), Kind: EntryConfig, Change: ConfChange{ConfAddLearner, 5}, Members: Membership{Voters: []uint64{1, 2, 3}, Learners: []uint64{5}}}
	step(t, n, Message{Type: MsgAccept, From: 2, Ballot: b(1, 2), Entries: []Entry{add4, add5}})
	rd := step(t, n, Message{Type: MsgCommit, From: 2, Ballot: b(1, 2), Commit: 2})
	if len(rd.Committed) != 2 || rd.Committed[0].Kind != EntryConfig || rd.Committed[1].Kind != EntryNoop {
		t.Fatalf("committed %v, want the first change and a no-op", rd.Committed)
	}
	if !n.conf.Members.IsLearner(4) || n.conf.Members.IsMember(5) {
		t.Errorf("members %s, want only the first change", n.conf.Members)
	}
}

func TestRemovedNodeThatMissedItsRemovalLearnsItAndFailsItsProposals(t *testing.T) {
	c := electLeader(t, 1, 2, 3, 4)
	for _, id := range []uint64{1, 2, 3} {
		c.cut[[2]uint64{id, 4}], c.cut[[2]uint64{4, id}] = true, true
	}
	l := c.nodes[1].node
	for i := 0; i < l.cfg.ElectionTicks; i++ {
		c.tickAll()
		c.settle(5)
	}
	if err := l.ProposeConfChange(ConfChange{ConfRemove, 4}); err != nil {
		t.Fatal(err)
	}
	c.settle(200)
	if l.conf.Members.IsMember(4) {
		t.Fatal("removal not chosen")
	}
	pid := c.propose(t, 4, "from-a-removed-node")
	c.cut = map[[2]uint64]bool{}
	for i := 0; i < 3*l.cfg.ElectionTicks && !c.chk.failed[pid]; i++ {
		c.tickAll()
		c.settle(20)
	}
	if !c.chk.failed[pid] {
		t.Errorf("the removed node's proposal was neither chosen nor failed; status %+v", c.nodes[4].node.Status())
	}
	if st := c.nodes[4].node.Status(); st.Membership.IsMember(4) || st.Role != RoleLearner {
		t.Errorf("removed node status %+v", st)
	}
}
