package consensus

import (
	"testing"
)

func TestAcceptorAnswersPrepare(t *testing.T) {
	tests := []struct {
		name        string
		promised    Ballot
		prepare     Message
		wantReject  bool
		wantBallot  Ballot // in the answer
		wantPromise Ballot // afterwards
		wantSync    bool
	}{
		{"promises a higher ballot", b(1, 2), Message{Type: MsgPrepare, From: 3, Ballot: b(2, 3)}, false, b(2, 3), b(2, 3), true},
		{"repeats a promise for the same ballot", b(2, 3), Message{Type: MsgPrepare, From: 3, Ballot: b(2, 3)}, false, b(2, 3), b(2, 3), false},
		{"rejects a lower ballot with its promise", b(3, 2), Message{Type: MsgPrepare, From: 3, Ballot: b(2, 3)}, true, b(3, 2), b(3, 2), false},
		{"orders equal rounds by node", b(2, 3), Message{Type: MsgPrepare, From: 2, Ballot: b(2, 2)}, true, b(2, 3), b(2, 3), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newTestNode(t, 1, 1, 2, 3)
			n.promised = tt.promised
			rd := step(t, n, tt.prepare)
			got := only(t, rd, MsgPromise)
			if got.Reject != tt.wantReject || got.Ballot != tt.wantBallot {
				t.Errorf("answer reject=%v ballot=%s, want reject=%v ballot=%s", got.Reject, got.Ballot, tt.wantReject, tt.wantBallot)
			}
			if n.promised != tt.wantPromise {
				t.Errorf("promised = %s, want %s", n.promised, tt.wantPromise)
			}
			if rd.MustSync != tt.wantSync {
				t.Errorf("MustSync = %v, want %v", rd.MustSync, tt.wantSync)
			}
		})
	}
}

func TestAcceptorPromiseReturnsAcceptedEntriesAboveCandidateCommit(t *testing.T) {
	n := newTestNode(t, 1, 1, 2, 3)
	for s := uint64(1); s <= 3; s++ {
		step(t, n, Message{Type: MsgAccept, From: 2, Ballot: b(1, 2), Entries: []Entry{{Slot: s, Ballot: b(1, 2), Kind: EntryValues, Values: vals(2, "x")}}})
	}
	for i := 0; i < n.cfg.ElectionTicks; i++ {
		n.Tick() // leader 2 falls silent
	}
	drain(n)
	rd := step(t, n, Message{Type: MsgPrepare, From: 3, Ballot: b(2, 3), Commit: 1})
	got := only(t, rd, MsgPromise)
	if len(got.Entries) != 2 || got.Entries[0].Slot != 2 || got.Entries[1].Slot != 3 || got.Entries[0].Ballot != b(1, 2) {
		t.Errorf("promise entries = %v, want slots 2 and 3 accepted at 1.2", got.Entries)
	}
}

func TestAcceptorRefusesPrepareWhileItHearsALeader(t *testing.T) {
	n := newTestNode(t, 1, 1, 2, 3)
	step(t, n, Message{Type: MsgHeartbeat, From: 2, Ballot: b(1, 2)})
	got := only(t, step(t, n, Message{Type: MsgPrepare, From: 3, Ballot: b(2, 3)}), MsgPromise)
	if !got.Reject || n.promised != b(1, 2) {
		t.Errorf("reject=%v promised=%s, want a refusal keeping 1.2", got.Reject, n.promised)
	}
	got = only(t, step(t, n, Message{Type: MsgPrepare, From: 3, Ballot: b(2, 3), Force: true}), MsgPromise)
	if got.Reject || n.promised != b(2, 3) {
		t.Errorf("forced: reject=%v promised=%s, want a promise of 2.3", got.Reject, n.promised)
	}
}

func TestAcceptorRefusesPrepareFromCandidateBehindItsSnapshot(t *testing.T) {
	n := newTestNode(t, 1, 1, 2, 3)
	n.snap.Slot, n.commit, n.applied = 10, 10, 10
	n.slots = newSlotLog(10)
	got := only(t, step(t, n, Message{Type: MsgPrepare, From: 3, Ballot: b(2, 3), Commit: 5}), MsgPromise)
	if !got.Reject || !n.promised.IsZero() {
		t.Errorf("reject=%v promised=%s, want a refusal without a promise", got.Reject, n.promised)
	}
}

func TestAcceptorAnswersAccept(t *testing.T) {
	e := func(s uint64, bal Ballot) Entry {
		return Entry{Slot: s, Ballot: bal, Kind: EntryValues, Values: vals(2, "v")}
	}
	tests := []struct {
		name       string
		promised   Ballot
		accept     Message
		wantReject bool
		wantStored bool
		wantLast   uint64
	}{
		{"accepts at its promise", b(1, 2), Message{Type: MsgAccept, From: 2, Ballot: b(1, 2), Entries: []Entry{e(1, b(1, 2)), e(2, b(1, 2))}}, false, true, 2},
		{"accepts above its promise", b(1, 2), Message{Type: MsgAccept, From: 3, Ballot: b(2, 3), Entries: []Entry{e(1, b(2, 3))}}, false, true, 1},
		{"rejects below its promise", b(3, 1), Message{Type: MsgAccept, From: 2, Ballot: b(1, 2), Entries: []Entry{e(1, b(1, 2))}}, true, false, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newTestNode(t, 1, 1, 2, 3)
			n.promised = tt.promised
			rd := step(t, n, tt.accept)
			got := only(t, rd, MsgAccepted)
			if got.Reject != tt.wantReject || got.Last != tt.wantLast {
				t.Errorf("answer reject=%v last=%d, want reject=%v last=%d", got.Reject, got.Last, tt.wantReject, tt.wantLast)
			}
			stored := n.slots.get(1) != nil
			if stored != tt.wantStored || (len(rd.Entries) > 0) != tt.wantStored {
				t.Errorf("stored=%v persisted=%d, want stored=%v", stored, len(rd.Entries), tt.wantStored)
			}
			if tt.wantStored && !rd.MustSync {
				t.Error("an acceptance must be fsynced before its answer leaves")
			}
			if !got.Type.NeedsPersist() {
				t.Error("Accepted must be marked as needing persistence")
			}
		})
	}
}

func TestAcceptorAcknowledgesChosenSlotsWithoutRewritingThem(t *testing.T) {
	n := newTestNode(t, 1, 1, 2, 3)
	step(t, n, Message{Type: MsgAccept, From: 2, Ballot: b(1, 2), Entries: []Entry{{Slot: 1, Ballot: b(1, 2), Kind: EntryValues, Values: vals(2, "a")}}})
	step(t, n, Message{Type: MsgCommit, From: 2, Ballot: b(1, 2), Commit: 1})
	rd := step(t, n, Message{Type: MsgAccept, From: 3, Ballot: b(2, 3), Entries: []Entry{{Slot: 1, Ballot: b(2, 3), Kind: EntryValues, Values: vals(2, "a")}}})
	if got := only(t, rd, MsgAccepted); got.Reject || got.Last != 1 {
		t.Errorf("answer %s, want slot 1 acknowledged", got)
	}
	if e := n.slots.get(1); e.Ballot != b(1, 2) || len(rd.Entries) != 0 {
		t.Errorf("chosen slot rewritten: ballot %s, %d entries persisted", e.Ballot, len(rd.Entries))
	}
}

func TestHeartbeatFromStaleLeaderIsRejectedWithThePromise(t *testing.T) {
	n := newTestNode(t, 1, 1, 2, 3)
	n.promised = b(5, 3)
	got := only(t, step(t, n, Message{Type: MsgHeartbeat, From: 2, Ballot: b(4, 2), Round: 7}), MsgHeartbeatResp)
	if !got.Reject || got.Ballot != b(5, 3) || got.Round != 7 {
		t.Errorf("answer %s, want a rejection carrying 5.3", got)
	}
	if n.leader == 2 {
		t.Error("a stale leader was followed")
	}
}
