package consensus

import (
	"errors"
	"testing"
)

func TestStepRejectsMalformedMessages(t *testing.T) {
	good := Entry{Slot: 1, Ballot: b(1, 2), Kind: EntryNoop}
	tests := []struct {
		name string
		m    Message
	}{
		{"addressed to another node", Message{Type: MsgHeartbeat, From: 2, To: 9, Ballot: b(1, 2)}},
		{"from node 0", Message{Type: MsgHeartbeat, From: 0, To: 1, Ballot: b(1, 2)}},
		{"from itself", Message{Type: MsgHeartbeat, From: 1, To: 1, Ballot: b(1, 2)}},
		{"unknown type", Message{Type: 99, From: 2, To: 1}},
		{"accept without entries", Message{Type: MsgAccept, From: 2, To: 1, Ballot: b(1, 2)}},
		{"accept with a gap", Message{Type: MsgAccept, From: 2, To: 1, Ballot: b(1, 2), Entries: []Entry{good, {Slot: 3, Ballot: b(1, 2), Kind: EntryNoop}}}},
		{"accept at another ballot than its entries", Message{Type: MsgAccept, From: 2, To: 1, Ballot: b(2, 2), Entries: []Entry{good}}},
		{"entry of unknown kind", Message{Type: MsgAccept, From: 2, To: 1, Ballot: b(1, 2), Entries: []Entry{{Slot: 1, Ballot: b(1, 2), Kind: 9}}}},
		{"entry at slot 0", Message{Type: MsgAccept, From: 2, To: 1, Ballot: b(1, 2), Entries: []Entry{{Ballot: b(1, 2), Kind: EntryNoop}}}},
		{"config entry without voters", Message{Type: MsgAccept, From: 2, To: 1, Ballot: b(1, 2), Entries: []Entry{{Slot: 1, Ballot: b(1, 2), Kind: EntryConfig}}}},
		{"config entry with unsorted voters", Message{Type: MsgAccept, From: 2, To: 1, Ballot: b(1, 2), Entries: []Entry{{Slot: 1, Ballot: b(1, 2), Kind: EntryConfig, Members: Membership{Voters: []uint64{3, 1}}}}}},
		{"catch-up not following its slot", Message{Type: MsgCatchup, From: 2, To: 1, Ballot: b(1, 2), Slot: 4, Entries: []Entry{good}}},
		{"accepted range backwards", Message{Type: MsgAccepted, From: 2, To: 1, Ballot: b(1, 2), Slot: 5, Last: 4}},
		{"prepare without ballot", Message{Type: MsgPrepare, From: 2, To: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newTestNode(t, 1, 1, 2, 3)
			before := n.Status()
			if err := n.Step(tt.m); !errors.Is(err, ErrBadMessage) {
				t.Errorf("Step = %v, want ErrBadMessage", err)
			}
			if after := n.Status(); after.Ballot != before.Ballot || after.Commit != before.Commit || n.HasReady() {
				t.Errorf("a rejected message changed the node: %+v", after)
			}
		})
	}
}

// FuzzStep feeds a node arbitrary messages: it must never panic, whatever
// arrives from the network.
func FuzzStep(f *testing.F) {
	f.Add(uint8(MsgAccept), uint64(2), uint64(1), uint64(1), uint64(1), uint64(1), uint8(2), []byte("v"), true)
	f.Add(uint8(MsgPromise), uint64(3), uint64(5), uint64(0), uint64(7), uint64(3), uint8(3), []byte{}, false)
	f.Add(uint8(MsgCatchup), uint64(2), uint64(1), uint64(4), uint64(4), uint64(5), uint8(1), []byte("x"), false)
	f.Fuzz(func(t *testing.T, typ uint8, from, round, commit, slot, last uint64, kind uint8, data []byte, reject bool) {
		n := newTestNode(t, 1, 1, 2, 3)
		bal := Ballot{Round: round, Node: from}
		e := Entry{Slot: slot, Ballot: bal, Kind: EntryKind(kind), Values: []Value{{ID: ProposalID{Node: from, Seq: last}, Data: data}}}
		if kind == uint8(EntryConfig) {
			e.Members = Membership{Voters: []uint64{1, 2, 3, from % 7}}
		}
		m := Message{Type: MsgType(typ), From: from % 5, To: 1, Ballot: bal, Commit: commit, Slot: slot - 1, Last: last, Reject: reject, Entries: []Entry{e}, Round: last}
		for i := 0; i < 3; i++ {
			_ = n.Step(m)
			drain(n)
			n.Tick()
			m.Entries[0].Slot++
			m.Slot++
		}
		drain(n)
	})
}
