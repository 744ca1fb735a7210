package replica

import (
	"testing"
	"time"

	"github.com/doozerfs/doozerfs/fs"
)

// TestLeaseGrantInWALReplaysAtRestart (regression): a replica restarting
// with a LEASE_GRANT in its WAL replays it before its loop starts; that
// used to panic on the lease clock's nil maps. The lease and its file
// survive the restart, and the lease is renewable.
func TestLeaseGrantInWALReplaysAtRestart(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	r := startReplica(t, cfg)
	ctx := testCtx(t)
	c := dialReplica(t, r)
	id, err := c.LeaseGrant(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetLease(ctx, "/svc/a", fs.Clobber, []byte("a"), id); err != nil {
		t.Fatal(err)
	}
	if _, err := c.LeaseRenew(ctx, id); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	r2 := startReplica(t, cfg)
	c2 := dialReplica(t, r2)
	if ttl, err := c2.LeaseRenew(ctx, id); err != nil || ttl != time.Minute {
		t.Fatalf("renew after restart: %v, %v", ttl, err)
	}
	_, st, err := c2.Get(ctx, "/svc/a", 0)
	if err != nil || st.Lease != id {
		t.Fatalf("/svc/a after restart: lease %d, %v; want %d", st.Lease, err, id)
	}
}
