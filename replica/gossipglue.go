package replica

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/doozerfs/doozerfs/replica/gossip"
	"github.com/doozerfs/doozerfs/wire"
)

// startGossip runs memberlist on the replica's port (UDP packets, TCP
// streams after a gossip HELLO) and joins the addresses of cfg.Join.
func (r *Replica) startGossip(ln *net.TCPListener, udp *net.UDPConn) error {
	adv := ln.Addr().(*net.TCPAddr)
	if r.cfg.Advertise != "" {
		a, err := net.ResolveTCPAddr("tcp", r.cfg.Advertise)
		if err != nil {
			return fmt.Errorf("replica: advertise address %q: %w", r.cfg.Advertise, err)
		}
		adv = a
	}
	if adv.IP.IsUnspecified() {
		return fmt.Errorf("replica: listening on %s needs an address to advertise to the other replicas (--advertise host:port)", ln.Addr())
	}
	tr, err := gossip.New(gossip.TransportConfig{
		UDP:        udp,
		Advertise:  adv,
		DialStream: gossip.HelloDialer(wire.Hello{Cluster: r.cfg.Cluster, Token: r.cfg.Secret, Name: r.cfg.Name}, r.cfg.PeerTLS),
		Logger:     r.log,
	})
	if err != nil {
		return err
	}
	var timings gossip.Timings
	if r.cfg.GossipFast {
		timings = gossip.FastTimings()
	}
	ms, err := gossip.Start(gossip.MembersConfig{
		Name:            r.cfg.Name,
		Transport:       tr,
		Meta:            gossip.Meta{ID: r.id, Addr: adv.String(), Cluster: r.cfg.Cluster},
		GossipKey:       r.cfg.gossipKey(),
		OtherGossipKeys: r.cfg.OtherGossipKeys,
		Timings:         timings,
		Logger:          r.log.With("lib", "gossip"),
	})
	if err != nil {
		return fmt.Errorf("replica: gossip: %w", err)
	}
	r.gossipTr, r.gossip = tr, ms
	r.disc = gossipDisc{ms}
	// A restarted replica finds its peers where the replicated state last
	// saw them, even without --join.
	join := slices.Clone(r.cfg.Join)
	for id, addr := range r.knownMembers() {
		if id != r.id && !slices.Contains(join, addr) {
			join = append(join, addr)
		}
	}
	if len(join) > 0 {
		r.bg.Add(1)
		go r.joinLoop(join)
	}
	r.bg.Add(1)
	go r.rejoinLoop()
	return nil
}

// knownMembers reads /ctl/node/*/{id,addr}: the members and addresses the
// leader last recorded. It also fills the peer address book and names.
func (r *Replica) knownMembers() map[uint64]string {
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
		if err1 != nil || err2 != nil || err3 != nil || id == 0 || len(addr) == 0 {
			continue
		}
		out[id] = string(addr)
		r.peers.setAddr(id, string(addr))
		r.namesMu.Lock()
		if r.names[id] == "" {
			r.names[id] = e.Name
		}
		r.namesMu.Unlock()
	}
	return out
}

// joinLoop joins the cluster through the given addresses, retrying until
// one answers or the replica stops.
func (r *Replica) joinLoop(addrs []string) {
	defer r.bg.Done()
	backoff := 100 * time.Millisecond
	for {
		n, err := r.gossip.Join(addrs)
		if n > 0 {
			r.log.Info("joined gossip", "through", addrs, "reached", n)
			return
		}
		r.log.Warn("cannot reach any member yet; retrying", "addrs", addrs, "err", err, "retry_in", backoff)
		select {
		case <-time.After(backoff):
		case <-r.stopc:
			return
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// gossipDisc turns memberlist's view into the policy's.
type gossipDisc struct{ ms *gossip.Members }

func (g gossipDisc) views() []peerView {
	nodes := g.ms.Nodes()
	out := make([]peerView, 0, len(nodes))
	for _, n := range nodes {
		v := peerView{ID: n.ID, Name: n.Name, Addr: n.Addr, Alive: n.State == gossip.StateAlive}
		if !v.Alive {
			v.DeadSince = n.StateSince
		}
		out = append(out, v)
	}
	return out
}
