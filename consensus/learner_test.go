package consensus

import (
	"testing"
)

func TestFollowerLearnsOnlyEntriesOfTheLeadersBallot(t *testing.T) {
	n := newTestNode(t, 1, 1, 2, 3)
	// Slot 1 was accepted from an old leader; slot 2 from the current one.
	step(t, n, Message{Type: MsgAccept, From: 2, Ballot: b(1, 2), Entries: []Entry{{Slot: 1, Ballot: b(1, 2), Kind: EntryValues, Values: vals(2, "maybe")}}})
	step(t, n, Message{Type: MsgAccept, From: 3, Ballot: b(2, 3), Entries: []Entry{{Slot: 2, Ballot: b(2, 3), Kind: EntryNoop}}})
	rd := step(t, n, Message{Type: MsgCommit, From: 3, Ballot: b(2, 3), Commit: 2})
	if n.commit != 0 || len(rd.Committed) != 0 {
		t.Fatalf("commit %d, committed %v: slot 1's copy from another ballot was taken as chosen", n.commit, rd.Committed)
	}
	req := only(t, rd, MsgCatchupReq)
	if req.To != 3 || req.Slot != 1 {
		t.Fatalf("catch-up request %s, want slot 1 from the leader", req)
	}
	rd = step(t, n, Message{Type: MsgCatchup, From: 3, Ballot: b(2, 3), Commit: 2, Slot: 0, Entries: []Entry{
		{Slot: 1, Ballot: b(2, 3), Kind: EntryValues, Values: vals(3, "chosen")},
		{Slot: 2, Ballot: b(2, 3), Kind: EntryNoop},
	}})
	if n.commit != 2 || len(rd.Committed) != 2 || string(rd.Committed[0].Values[0].Data) != "chosen" {
		t.Errorf("commit %d, committed %v; want both chosen slots", n.commit, rd.Committed)
	}
	if len(rd.Entries) != 2 || !rd.MustSync {
		t.Errorf("learned entries persisted %v (sync %v), want both", rd.Entries, rd.MustSync)
	}
}

func TestLaggingFollowerCatchesUpFromTheLog(t *testing.T) {
	c := electLeader(t, 1, 2, 3)
	c.partition3()
	for i := 0; i < 5; i++ {
		c.propose(t, 1, "v")
		c.settle(10)
	}
	c.cut = map[[2]uint64]bool{}
	for i := 0; i < c.nodes[1].node.cfg.HeartbeatTicks; i++ {
		c.tickAll()
	}
	c.settle(50)
	if got := c.nodes[3].app.applied; got != c.nodes[1].node.commit {
		t.Errorf("node 3 applied %d, leader committed %d", got, c.nodes[1].node.commit)
	}
	if c.chk.dups != 0 || c.nodes[3].disk.snap.Slot != 0 {
		t.Error("caught up by something other than the log")
	}
}

func TestLeaderAsksForASnapshotWhenItCompactedPastAFollower(t *testing.T) {
	c := electLeader(t, 1, 2, 3)
	c.crash(3, false)
	for i := 0; i < 5; i++ {
		c.propose(t, 1, "v")
		c.settle(10)
	}
	meta, err := c.nodes[1].node.Compact(c.nodes[1].app.applied)
	if err != nil {
		t.Fatal(err)
	}
	c.nodes[1].disk.snap, c.nodes[1].disk.snapApp = meta, c.nodes[1].app
	c.restart(3)
	for i := 0; i < c.nodes[1].node.cfg.HeartbeatTicks; i++ {
		c.tickAll()
	}
	c.settle(50)
	if st := c.nodes[3].node.Status(); st.Commit != c.nodes[1].node.commit || st.Snapshot != meta.Slot || c.nodes[3].app.applied != meta.Slot {
		t.Errorf("node 3 %+v applied %d; want it to install the snapshot at %d", st, c.nodes[3].app.applied, meta.Slot)
	}
}

func TestOfferSnapshotRefusesOneAtOrBelowTheChosenPrefix(t *testing.T) {
	n := newTestNode(t, 1, 1, 2, 3)
	step(t, n, Message{Type: MsgAccept, From: 2, Ballot: b(1, 2), Commit: 1, Entries: []Entry{{Slot: 1, Ballot: b(1, 2), Kind: EntryNoop}}})
	cfg := votersState([]uint64{1, 2, 3}, nil).Snapshot.Config
	if n.OfferSnapshot(SnapshotMeta{Slot: 1, Config: cfg}) {
		t.Error("took a snapshot at its own chosen prefix")
	}
	if n.OfferSnapshot(SnapshotMeta{Slot: 5}) {
		t.Error("took a snapshot without a valid membership")
	}
	if !n.OfferSnapshot(SnapshotMeta{Slot: 5, Config: cfg}) {
		t.Fatal("refused a newer snapshot")
	}
	rd := drain(n)
	if rd.Snapshot == nil || rd.Snapshot.Slot != 5 || rd.HardState.Commit != 5 || !rd.MustSync {
		t.Errorf("Ready %+v, want the snapshot to install at commit 5", rd)
	}
}

func TestJoiningNodeStartsFromASnapshot(t *testing.T) {
	n, _ := New(testConfig(4), State{})
	drain(n)
	rd := step(t, n, Message{Type: MsgHeartbeat, From: 1, Ballot: b(1, 1), Commit: 7})
	if req := only(t, rd, MsgCatchupReq); req.Slot != 0 {
		t.Errorf("joiner asked for %s, want a snapshot (slot 0)", req)
	}
	m := Membership{Voters: []uint64{1, 2, 3}, Learners: []uint64{4}}
	if !n.OfferSnapshot(SnapshotMeta{Slot: 0, Config: ConfigState{Members: m, Prev: m}}) {
		t.Fatal("a joiner refused its first snapshot")
	}
	if st := n.Status(); st.Role != RoleLearner || !st.Membership.IsLearner(4) {
		t.Errorf("status %+v, want a learner that knows the membership", st)
	}
}

func TestCompactKeepsTheMembershipOfTheCompactedSlot(t *testing.T) {
	n := newTestNode(t, 1, 1, 2, 3)
	add := Entry{Slot: 1, Ballot: b(1, 2), Kind: EntryConfig, Change: ConfChange{Type: ConfAddLearner, Node: 4}, Members: Membership{Voters: []uint64{1, 2, 3}, Learners: []uint64{4}}}
	step(t, n, Message{Type: MsgAccept, From: 2, Ballot: b(1, 2), Entries: []Entry{add, {Slot: 2, Ballot: b(1, 2), Kind: EntryNoop}}})
	step(t, n, Message{Type: MsgCommit, From: 2, Ballot: b(1, 2), Commit: 2})
	meta, err := n.Compact(2)
	if err != nil {
		t.Fatal(err)
	}
	if !meta.Config.Members.IsLearner(4) || meta.Config.Since != 1 || meta.Config.Prev.IsMember(4) {
		t.Errorf("snapshot config %+v, want the change at slot 1 with the membership before it", meta.Config)
	}
	if _, err := n.Compact(9); err == nil {
		t.Error("compacted beyond the applied slot")
	}
}
