// Package gossip runs hashicorp/memberlist over a replica's single address.
//
// A doozerfs replica serves everything on one host:port (SPEC §3, protocol
// §1): TCP carries client connections, consensus peer traffic and memberlist
// streams, told apart by the HELLO frame that opens each connection; UDP on
// the same port carries memberlist packets. This package supplies the two
// halves the replica needs for the memberlist side of that:
//
//   - Transport is a memberlist.NodeAwareTransport. It reads and writes
//     memberlist packets on the replica's UDP socket, dials streams through a
//     function the replica supplies (TCP, TLS if configured, HELLO of kind
//     gossip; HelloDialer builds one), and takes accepted streams from the
//     replica's server (HandleStream / HandleWireConn) after the server has
//     run wire.Accept and seen kind gossip.
//   - Members wraps a memberlist.Memberlist on such a Transport: it puts the
//     replica's Meta (consensus id, address, cluster) in the node metadata,
//     refuses members of another cluster, optionally encrypts gossip (with
//     a keyring: one key encrypts, more may be accepted, so that keys can be
//     rotated one member at a time), routes
//     memberlist's logging to slog, and keeps a table of every member it has
//     seen with its state (alive, dead, left) and since when, calling
//     OnChange when the table changes.
//
// Membership here drives policy only (who should be a voter); it never
// decides quorum.
//
// Wiring, in the replica:
//
//	ln, udp, err := gossip.Listen(cfg.Addr) // TCP and UDP on the same port
//	tr, err := gossip.New(gossip.TransportConfig{
//		UDP:        udp,
//		Advertise:  ln.Addr().(*net.TCPAddr), // or the configured advertise address
//		DialStream: gossip.HelloDialer(wire.Hello{Cluster: c, Token: secret, Name: name}, tlsConfig),
//		Logger:     log,
//	})
//	ms, err := gossip.Start(gossip.MembersConfig{Name: name, Transport: tr,
//		Meta: gossip.Meta{ID: id, Addr: addr, Cluster: c}, GossipKey: key, OnChange: poke})
//	ms.Join(joinAddrs)
//	// in the server, after wire.Accept said kind gossip:
//	tr.HandleWireConn(c) // returns when memberlist is done with the connection
//	// on stop:
//	ms.Leave(timeout); ms.Shutdown() // also shuts the transport down and closes udp
package gossip
