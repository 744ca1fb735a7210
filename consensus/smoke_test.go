package consensus

import (
	"fmt"
	"testing"
)

func testConfig(id uint64) Config {
	c := DefaultConfig(id)
	c.Seed = id
	return c
}

func TestSmokeThreeNodesChooseValues(t *testing.T) {
	c := newCluster(t, testConfig)
	for id := uint64(1); id <= 3; id++ {
		c.addNode(id, votersState([]uint64{1, 2, 3}, nil))
	}
	c.trace = func(f string, a ...any) { t.Logf(f, a...) }
	c.settle(10)
	c.nodes[1].node.startPreVote()
	c.settle(20)
	if got := c.leaderID(); got != 1 {
		t.Fatalf("leader = %d, want 1", got)
	}
	for i := 0; i < 5; i++ {
		v := []byte(fmt.Sprintf("v%d", i))
		id, err := c.nodes[uint64(i%3+1)].node.Propose(v)
		if err != nil {
			t.Fatal(err)
		}
		c.chk.propose(id, v)
	}
	c.settle(20)
	for id := uint64(1); id <= 3; id++ {
		if got := c.nodes[id].app.values; got != 5 {
			t.Errorf("node %d applied %d values, want 5", id, got)
		}
	}
}
