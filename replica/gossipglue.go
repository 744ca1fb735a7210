package replica

import (
	"fmt"
	"net"
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
		Name:      r.cfg.Name,
		Transport: tr,
		Meta:      gossip.Meta{ID: r.id, Addr: adv.String(), Cluster: r.cfg.Cluster},
		GossipKey: r.cfg.GossipKey,
		Timings:   timings,
		Logger:    r.log.With("lib", "gossip"),
	})
	if err != nil {
		return fmt.Errorf("replica: gossip: %w", err)
	}
	r.gossipTr, r.gossip = tr, ms
	r.disc = gossipDisc{ms}
	if len(r.cfg.Join) > 0 {
		r.bg.Add(1)
		go r.joinLoop()
	}
	return nil
}

// joinLoop joins the cluster through cfg.Join, retrying until one address
// answers or the replica stops.
func (r *Replica) joinLoop() {
	defer r.bg.Done()
	backoff := 100 * time.Millisecond
	for {
		n, err := r.gossip.Join(r.cfg.Join)
		if n > 0 {
			r.log.Info("joined gossip", "through", r.cfg.Join, "reached", n)
			return
		}
		r.log.Warn("cannot reach any --join address yet; retrying", "join", r.cfg.Join, "err", err, "retry_in", backoff)
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
