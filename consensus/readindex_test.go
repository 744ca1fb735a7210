package consensus

import (
	"errors"
	"testing"
)

func TestReadIndexAtTheLeaderNeedsAQuorumRound(t *testing.T) {
	c := electLeader(t, 1, 2, 3)
	c.propose(t, 1, "w")
	c.settle(50)
	l := c.nodes[1].node
	if err := l.ReadIndex([]byte("r1")); err != nil {
		t.Fatal(err)
	}
	rd := l.Ready()
	if len(rd.ReadStates) != 0 {
		t.Fatal("answered before a quorum confirmed the leadership")
	}
	hb := 0
	for _, m := range rd.Messages {
		if m.Type == MsgHeartbeat && m.Round == 1 {
			hb++
		}
	}
	if hb != 2 {
		t.Fatalf("messages %v, want a heartbeat round 1 to both followers", rd.Messages)
	}
	l.Advance(rd)
	rd = step(t, l, Message{Type: MsgHeartbeatResp, From: 2, Ballot: l.lead.ballot, Round: 1})
	if len(rd.ReadStates) != 1 || rd.ReadStates[0].Slot != l.commit || string(rd.ReadStates[0].Context) != "r1" {
		t.Errorf("read states %v, want r1 at slot %d", rd.ReadStates, l.commit)
	}
}

func TestReadIndexFromAFollowerIsForwarded(t *testing.T) {
	c := electLeader(t, 1, 2, 3)
	c.propose(t, 3, "w")
	c.settle(50)
	var got []ReadState
	c.trace = func(string, ...any) {}
	if err := c.nodes[3].node.ReadIndex([]byte("r")); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10 && len(got) == 0; i++ {
		for _, id := range c.ids {
			tn := c.nodes[id]
			if !tn.node.HasReady() {
				continue
			}
			rd := tn.node.Ready()
			for _, m := range rd.Messages {
				c.net = append(c.net, envelope{msg: m})
			}
			if id == 3 {
				got = append(got, rd.ReadStates...)
			}
			tn.node.Advance(rd)
		}
		for len(c.net) > 0 {
			c.deliver(0)
		}
	}
	if len(got) != 1 || got[0].Slot != 1 {
		t.Errorf("follower read states %v, want one at slot 1", got)
	}
}

func TestNewLeaderAnswersReadsOnlyAfterChoosingWhatItRecovered(t *testing.T) {
	n := newTestNode(t, 1, 1, 2, 3)
	n.campaign(false)
	bal := n.elect.ballot
	drain(n)
	step(t, n, Message{Type: MsgPromise, From: 2, Ballot: bal, Entries: []Entry{{Slot: 1, Ballot: b(1, 2), Kind: EntryValues, Values: vals(2, "maybe-chosen")}}})
	if n.role != RoleLeader {
		t.Fatal("not leader")
	}
	if err := n.ReadIndex([]byte("r")); err != nil {
		t.Fatal(err)
	}
	rd := drain(n)
	for _, m := range rd.Messages {
		if m.Type == MsgHeartbeat && m.Round > 0 {
			t.Fatalf("started a read round %s before recovering slot 1", m)
		}
	}
	rd = step(t, n, Message{Type: MsgAccepted, From: 2, Ballot: bal, Slot: 1, Last: 1})
	for _, m := range rd.Messages {
		if m.Type == MsgHeartbeat && m.Round > 0 {
			rd = step(t, n, Message{Type: MsgHeartbeatResp, From: 2, Ballot: bal, Round: m.Round})
			break
		}
	}
	if len(rd.ReadStates) != 1 || rd.ReadStates[0].Slot != 1 {
		t.Errorf("read states %v, want one at slot 1", rd.ReadStates)
	}
}

func TestReadIndexWithoutLeaderFails(t *testing.T) {
	n := newTestNode(t, 1, 1, 2, 3)
	if err := n.ReadIndex([]byte("r")); !errors.Is(err, ErrNoLeader) {
		t.Errorf("ReadIndex with no leader: %v, want ErrNoLeader", err)
	}
}
