package consensus

import (
	"testing"
)

// testConfig is DefaultConfig with a seed derived from the id.
func testConfig(id uint64) Config {
	c := DefaultConfig(id)
	c.Seed = id
	return c
}

// newTestNode returns node id of a cluster of voters, with its first Ready
// handled (so its proposal-id block is durable).
func newTestNode(t *testing.T, id uint64, voters ...uint64) *Node {
	t.Helper()
	n, err := New(testConfig(id), votersState(voters, nil))
	if err != nil {
		t.Fatal(err)
	}
	drain(n)
	return n
}

// drain handles one Ready (persisting nothing) and returns it.
func drain(n *Node) Ready {
	if !n.HasReady() {
		return Ready{}
	}
	rd := n.Ready()
	n.Advance(rd)
	return rd
}

// step delivers m to n and returns the next Ready (handled).
func step(t *testing.T, n *Node, m Message) Ready {
	t.Helper()
	m.To = n.id
	if err := n.Step(m); err != nil {
		t.Fatalf("Step(%s): %v", m, err)
	}
	return drain(n)
}

// only returns the single message of type typ in rd, failing otherwise.
func only(t *testing.T, rd Ready, typ MsgType) Message {
	t.Helper()
	var got []Message
	for _, m := range rd.Messages {
		if m.Type == typ {
			got = append(got, m)
		}
	}
	if len(got) != 1 {
		t.Fatalf("want one %s in %v", typ, rd.Messages)
	}
	return got[0]
}

func b(round, node uint64) Ballot { return Ballot{Round: round, Node: node} }

func vals(node uint64, data ...string) []Value {
	out := make([]Value, len(data))
	for i, d := range data {
		out[i] = Value{ID: ProposalID{Node: node, Seq: uint64(i)}, Data: []byte(d)}
	}
	return out
}

// electLeader makes node 1 of a fresh cluster of voters the leader and
// returns the cluster.
func electLeader(t *testing.T, voters ...uint64) *cluster {
	t.Helper()
	return electLeaderWith(t, testConfig, voters...)
}

// electLeaderWith is electLeader with the nodes' configuration from cfg.
func electLeaderWith(t *testing.T, cfg func(id uint64) Config, voters ...uint64) *cluster {
	t.Helper()
	c := newCluster(t, cfg)
	for _, id := range voters {
		c.addNode(id, votersState(voters, nil))
	}
	c.settle(10)
	c.nodes[voters[0]].node.startPreVote()
	c.settle(100)
	if got := c.leaderID(); got != voters[0] {
		t.Fatalf("leader = %d, want %d", got, voters[0])
	}
	return c
}

func (c *cluster) propose(t *testing.T, id uint64, data string) ProposalID {
	t.Helper()
	pid, err := c.nodes[id].node.Propose([]byte(data))
	if err != nil {
		t.Fatalf("Propose at %d: %v", id, err)
	}
	c.chk.propose(pid, []byte(data))
	return pid
}
