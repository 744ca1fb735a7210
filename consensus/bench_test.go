package consensus

import (
	"testing"
	"time"
)

// benchNet is a fault-free in-memory cluster without the checker's costs:
// Readys are "persisted" by dropping them, messages delivered FIFO.
type benchNet struct {
	nodes   map[uint64]*Node
	ids     []uint64
	net     []Message
	applied int // values applied on the leader
}

func newBenchNet(tb testing.TB, n int, batchCount int) *benchNet {
	c := &benchNet{nodes: map[uint64]*Node{}}
	var voters []uint64
	for id := uint64(1); id <= uint64(n); id++ {
		voters = append(voters, id)
	}
	for _, id := range voters {
		cfg := DefaultConfig(id)
		cfg.MaxBatchCount = batchCount
		node, err := New(cfg, votersState(voters, nil))
		if err != nil {
			tb.Fatal(err)
		}
		c.nodes[id], c.ids = node, append(c.ids, id)
	}
	c.nodes[1].startPreVote()
	for c.pump() {
	}
	if c.nodes[1].role != RoleLeader {
		tb.Fatal("no leader")
	}
	return c
}

// pump runs one round: every node's Ready, then every message in flight.
// It reports whether anything happened.
func (c *benchNet) pump() bool {
	moved := false
	for _, id := range c.ids {
		n := c.nodes[id]
		if !n.HasReady() {
			continue
		}
		rd := n.Ready()
		c.net = append(c.net, rd.Messages...)
		if id == 1 {
			for _, e := range rd.Committed {
				c.applied += len(e.Values)
			}
		}
		n.Advance(rd)
		moved = true
	}
	msgs := c.net
	c.net = nil
	for _, m := range msgs {
		_ = c.nodes[m.To].Step(m)
		moved = true
	}
	return moved
}

// BenchmarkThroughput measures values chosen per second on a 3-replica
// in-memory cluster: 64 clients keep one proposal each in flight (on the
// leader and forwarded from followers), with batching on and off.
func BenchmarkThroughput(b *testing.B) {
	for _, bc := range []struct {
		name  string
		batch int
	}{{"batching=on", 4096}, {"batching=off", 1}} {
		b.Run(bc.name, func(b *testing.B) {
			c := newBenchNet(b, 3, bc.batch)
			value := make([]byte, 256)
			const clients = 64
			proposed := 0
			start := time.Now()
			b.ResetTimer()
			for c.applied < b.N {
				for proposed-c.applied < clients && proposed < b.N {
					id := c.ids[proposed%len(c.ids)]
					if _, err := c.nodes[id].Propose(value); err == nil {
						proposed++
					} else {
						break
					}
				}
				c.pump()
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "values/s")
		})
	}
}

// BenchmarkStep measures one Step of the hot path: a follower taking an
// Accept of one slot holding a batch of 64 values (plus its Ready), and the
// leader counting the Accepted answers that choose a slot.
func BenchmarkStep(b *testing.B) {
	values := make([]Value, 64)
	for i := range values {
		values[i] = Value{ID: ProposalID{Node: 9, Seq: uint64(i)}, Data: make([]byte, 256)}
	}
	b.Run("follower-accept", func(b *testing.B) {
		c := newBenchNet(b, 3, 4096)
		f := c.nodes[2]
		ballot := c.nodes[1].lead.ballot
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			s := uint64(i + 1)
			_ = f.Step(Message{Type: MsgAccept, From: 1, To: 2, Ballot: ballot, Commit: s - 1,
				Entries: []Entry{{Slot: s, Ballot: ballot, Kind: EntryValues, Values: values}}})
			f.Advance(f.Ready())
		}
	})
	b.Run("leader-accepted", func(b *testing.B) {
		c := newBenchNet(b, 3, 4096)
		l := c.nodes[1]
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			for _, v := range values[:8] {
				_, _ = l.Propose(v.Data)
			}
			rd := l.Ready()
			l.Advance(rd)
			s := l.lead.next - 1
			_ = l.Step(Message{Type: MsgAccepted, From: 2, To: 1, Ballot: l.lead.ballot, Slot: s, Last: s, Commit: s - 1})
			_ = l.Step(Message{Type: MsgAccepted, From: 3, To: 1, Ballot: l.lead.ballot, Slot: s, Last: s, Commit: s - 1})
		}
	})
}
