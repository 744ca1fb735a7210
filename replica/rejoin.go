package replica

import (
	"strconv"
	"time"

	"github.com/doozerfs/doozerfs/replica/gossip"
)

// rejoinEvery is how often a replica reaches out, through gossip, to the
// members it knows of that gossip does not show alive.
const (
	rejoinEvery     = 5 * time.Second
	rejoinEveryFast = time.Second // --gossip-fast
)

// rejoinLoop heals gossip after a partition. memberlist on each side of a
// partition declares the other side dead, and once its "dead" broadcasts
// have been sent (into the partition) it never contacts those members
// again: after the partition heals, both sides would see each other dead
// for good, the leader would remove the other side's voters as dead, and
// nothing would ever add them back. Like Serf's reconnect, every replica
// therefore joins (a push-pull over TCP) the members listed in /ctl/node
// that it does not see alive; the first exchange makes each side refute
// its death, the next one brings both back alive.
func (r *Replica) rejoinLoop() {
	defer r.bg.Done()
	every := rejoinEvery
	if r.cfg.GossipFast {
		every = rejoinEveryFast
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-r.stopc:
			return
		case <-t.C:
		}
		alive := map[string]bool{}
		for _, n := range r.gossip.Nodes() {
			if n.State == gossip.StateAlive {
				alive[n.Addr] = true
			}
		}
		var try []string
		for id, addr := range r.ctlAddrs() {
			if id != r.id && !alive[addr] {
				try = append(try, addr)
			}
		}
		if len(try) > 0 {
			if n, err := r.gossip.Join(try); n > 0 {
				r.log.Debug("gossip: reached members it saw dead", "addrs", try, "reached", n)
			} else {
				r.log.Debug("gossip: members it sees dead are unreachable", "addrs", try, "err", err)
			}
		}
	}
}

// ctlAddrs reads /ctl/node/*/{id,addr}: the members and addresses the
// leader last recorded.
func (r *Replica) ctlAddrs() map[uint64]string {
	out := map[uint64]string{}
	v := r.tree.View()
	ents, err := v.GetDir("/ctl/node")
	if err != nil {
		return out
	}
	for _, e := range ents {
		idb, _, err1 := v.Get("/ctl/node/" + e.Name + "/id")
		addr, _, err2 := v.Get("/ctl/node/" + e.Name + "/addr")
		id, err3 := strconv.ParseUint(string(idb), 10, 64)
		if err1 == nil && err2 == nil && err3 == nil && id != 0 && len(addr) > 0 {
			out[id] = string(addr)
		}
	}
	return out
}
