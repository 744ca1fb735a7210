package consensus

import "fmt"

// MsgType names a message. The numbers travel on the wire: append only.
type MsgType uint8

// Message types. The field use of each is documented on Message and in
// docs/consensus.md.
const (
	MsgProp          MsgType = 1  // proposals forwarded to the leader
	MsgPreVote       MsgType = 2  // "is the leader gone? may I campaign?"
	MsgPreVoteResp   MsgType = 3  // answer to MsgPreVote
	MsgPrepare       MsgType = 4  // Phase 1a: promise me Ballot for every open slot
	MsgPromise       MsgType = 5  // Phase 1b: the promise and the accepted entries
	MsgAccept        MsgType = 6  // Phase 2a: accept these entries at Ballot
	MsgAccepted      MsgType = 7  // Phase 2b: slots Slot..Last accepted at Ballot
	MsgCommit        MsgType = 8  // the chosen prefix moved (no answer)
	MsgHeartbeat     MsgType = 9  // the leader is alive; read-index round
	MsgHeartbeatResp MsgType = 10 // answer to MsgHeartbeat
	MsgCatchupReq    MsgType = 11 // send me chosen slots from Slot on
	MsgCatchup       MsgType = 12 // chosen entries (answer to MsgCatchupReq)
	MsgReadIndex     MsgType = 13 // a follower's read-index request
	MsgReadIndexResp MsgType = 14 // the read index for Context
	MsgTimeoutNow    MsgType = 15 // leadership transfer: campaign now
)

var msgNames = [...]string{
	MsgProp:          "Prop",
	MsgPreVote:       "PreVote",
	MsgPreVoteResp:   "PreVoteResp",
	MsgPrepare:       "Prepare",
	MsgPromise:       "Promise",
	MsgAccept:        "Accept",
	MsgAccepted:      "Accepted",
	MsgCommit:        "Commit",
	MsgHeartbeat:     "Heartbeat",
	MsgHeartbeatResp: "HeartbeatResp",
	MsgCatchupReq:    "CatchupReq",
	MsgCatchup:       "Catchup",
	MsgReadIndex:     "ReadIndex",
	MsgReadIndexResp: "ReadIndexResp",
	MsgTimeoutNow:    "TimeoutNow",
}

func (t MsgType) String() string {
	if int(t) < len(msgNames) && msgNames[t] != "" {
		return msgNames[t]
	}
	return fmt.Sprintf("Msg%d", uint8(t))
}

// NeedsPersist reports whether a message of this type may leave only after
// the HardState and Entries of the Ready that carries it are durable. Only
// acceptor answers and Prepare (which reveals the candidate's own promise)
// do. A caller may send every other message while it writes, which lets a
// leader write its own log in parallel with its Accepts (why that is safe:
// docs/consensus.md, "Persistence").
func (t MsgType) NeedsPersist() bool {
	return t == MsgPrepare || t == MsgPromise || t == MsgAccepted
}

// Message is everything replicas say to each other. It is a plain struct of
// simple fields so a transport can encode it without custom code. Messages
// in a Ready share backing arrays (Entries, Values) with each other and with
// the node's log: the caller must treat them as read-only.
//
// Field use by type ("-" = unused):
//
//	Prop:          Values
//	PreVote:       Ballot = the ballot the sender would campaign with, Commit
//	PreVoteResp:   Ballot (echoed), Reject; on Reject Commit = the sender's chosen prefix
//	Prepare:       Ballot, Commit = candidate's chosen prefix, Force = skip stickiness
//	Promise:       Ballot (promised; on Reject the acceptor's promise), Reject,
//	               Commit, Entries = accepted entries above the Prepare's Commit,
//	               Slot = on Reject, the acceptor's snapshot if it is above that Commit
//	Accept:        Ballot, Commit, Entries (consecutive slots)
//	Accepted:      Ballot (on Reject the acceptor's promise), Reject, Slot..Last, Commit
//	Commit:        Ballot, Commit
//	Heartbeat:     Ballot, Commit, Round
//	HeartbeatResp: Ballot (on Reject the acceptor's promise), Reject, Round, Commit
//	CatchupReq:    Slot = first slot wanted (0: a snapshot), Commit
//	Catchup:       Ballot (the leader's; zero from a non-leader), Commit, Slot = slot
//	               before Entries, Entries (chosen, consecutive)
//	ReadIndex:     Context
//	ReadIndexResp: Context, Slot = the read index
//	TimeoutNow:    Ballot
type Message struct {
	Type    MsgType
	From    uint64
	To      uint64
	Ballot  Ballot
	Commit  uint64 // the sender's chosen prefix
	Slot    uint64
	Last    uint64
	Round   uint64 // read-index heartbeat round
	Reject  bool
	Force   bool
	Entries []Entry
	Values  []Value
	Context []byte
}

// String is a one-line summary for traces and tests.
func (m Message) String() string {
	s := fmt.Sprintf("%d->%d %s", m.From, m.To, m.Type)
	if !m.Ballot.IsZero() {
		s += " b=" + m.Ballot.String()
	}
	if m.Reject {
		s += " reject"
	}
	if m.Force {
		s += " force"
	}
	switch m.Type {
	case MsgAccepted:
		s += fmt.Sprintf(" slots=%d..%d", m.Slot, m.Last)
	case MsgCatchupReq, MsgReadIndexResp, MsgCatchup:
		s += fmt.Sprintf(" slot=%d", m.Slot)
	}
	switch m.Type {
	case MsgProp, MsgReadIndex, MsgReadIndexResp, MsgTimeoutNow, MsgPreVoteResp:
	default:
		s += fmt.Sprintf(" commit=%d", m.Commit)
	}
	if m.Round != 0 {
		s += fmt.Sprintf(" round=%d", m.Round)
	}
	if len(m.Entries) > 0 {
		s += " entries=[" + entriesString(m.Entries) + "]"
	}
	if len(m.Values) > 0 {
		s += " values=" + valuesString(m.Values)
	}
	if m.Context != nil {
		s += fmt.Sprintf(" ctx=%q", m.Context)
	}
	return s
}

// short formats an entry as "slot@ballot:kind" with its payload.
func (e Entry) short() string {
	s := fmt.Sprintf("%d@%s:", e.Slot, e.Ballot)
	switch e.Kind {
	case EntryValues:
		s += valuesString(e.Values)
	case EntryConfig:
		s += fmt.Sprintf("%s(%d)", e.Change.Type, e.Change.Node)
	default:
		s += e.Kind.String()
	}
	return s
}

// entriesString formats entries, folding a run of no-ops at one ballot into
// "first..last@ballot:noop".
func entriesString(es []Entry) string {
	s := ""
	for i := 0; i < len(es); i++ {
		if i > 0 {
			s += " "
		}
		j := i
		for j+1 < len(es) && es[i].Kind == EntryNoop && es[j+1].Kind == EntryNoop && es[j+1].Ballot == es[i].Ballot {
			j++
		}
		if j > i+1 {
			s += fmt.Sprintf("%d..%d@%s:noop", es[i].Slot, es[j].Slot, es[i].Ballot)
			i = j
			continue
		}
		s += es[i].short()
	}
	return s
}

func valuesString(vs []Value) string {
	s := "{"
	for i, v := range vs {
		if i > 0 {
			s += ","
		}
		if len(v.Data) <= 16 {
			s += string(v.Data)
		} else {
			s += fmt.Sprintf("<%dB>", len(v.Data))
		}
	}
	return s + "}"
}

// check rejects a message that is not addressed to this node or breaks the
// protocol's shape, so that no input from the network can make the node
// panic or corrupt its state.
func (n *Node) check(m Message) error {
	if m.To != n.id || m.From == 0 || m.From == n.id || m.Type == 0 || int(m.Type) >= len(msgNames) {
		return ErrBadMessage
	}
	switch m.Type {
	case MsgAccept:
		if len(m.Entries) == 0 || !consecutive(m.Entries) {
			return ErrBadMessage
		}
		for _, e := range m.Entries {
			if e.Ballot != m.Ballot {
				return ErrBadMessage
			}
		}
	case MsgCatchup:
		if !consecutive(m.Entries) || (len(m.Entries) > 0 && m.Entries[0].Slot != m.Slot+1) {
			return ErrBadMessage
		}
	case MsgPromise, MsgPrepare, MsgAccepted, MsgCommit, MsgHeartbeat, MsgTimeoutNow:
		if m.Ballot.IsZero() && !m.Reject {
			return ErrBadMessage
		}
	}
	if m.Type == MsgAccepted && m.Last < m.Slot {
		return ErrBadMessage
	}
	for _, e := range m.Entries {
		if err := validEntry(e); err != nil {
			return ErrBadMessage
		}
	}
	return nil
}

func consecutive(es []Entry) bool {
	for i := 1; i < len(es); i++ {
		if es[i].Slot != es[0].Slot+uint64(i) {
			return false
		}
	}
	return true
}

func validEntry(e Entry) error {
	if e.Slot == 0 || e.Ballot.IsZero() {
		return ErrBadMessage
	}
	switch e.Kind {
	case EntryNoop, EntryValues:
		return nil
	case EntryConfig:
		return validMembership(e.Members)
	}
	return ErrBadMessage
}
