package replica

import (
	"testing"
	"time"
)

// /ctl/node/<name>/addr is where the other replicas dial a member: for the
// leader's own entry too it must be the address it advertises, not the one
// it listens on. Found by the chaos harness, whose replicas advertise a
// proxy: a replica restarting from /ctl dialled the leader around the
// proxy, so partitions leaked.
func TestCtlNodeAddrOfTheLeaderIsItsAdvertisedAddress(t *testing.T) {
	disc := &staticDisc{}
	rs, _ := startCluster(t, 1, disc, func(c *Config) { c.Advertise = "127.0.0.1:1" })
	r := rs[0]
	waitFor(t, "/ctl/node/r1/addr", 10*time.Second, func() bool {
		b, _, err := r.tree.View().Get("/ctl/node/r1/addr")
		return err == nil && len(b) > 0
	})
	b, _, _ := r.tree.View().Get("/ctl/node/r1/addr")
	if string(b) != "127.0.0.1:1" {
		t.Fatalf("/ctl/node/r1/addr = %q, want the advertised 127.0.0.1:1 (it listens on %s)", b, r.Addr())
	}
}
