package replica

import (
	"context"
	"time"

	"github.com/doozerfs/doozerfs/wire"
)

// What an in-process front end (the HTTP API of package replica/web)
// needs beyond the tree and Txn: the replica's access rules and limits,
// and the waits the wire server does before a read.

// Access returns what a client presenting token may do, by the rules of
// HELLO (SPEC §9): with no Secret configured anyone may read and write;
// otherwise the Secret gives read-write access, the ROSecret read-only
// access, and anything else none. Tokens are compared in constant time.
func (r *Replica) Access(token string) wire.Access {
	p := wire.Policy{Cluster: r.cfg.Cluster, Secret: r.cfg.Secret, ROSecret: r.cfg.ROSecret}
	a, err := p.Check(&wire.Hello{Version: wire.ProtocolVersion, Kind: wire.ConnClient, Cluster: r.cfg.Cluster, Token: token})
	if err != nil {
		return wire.AccessNone
	}
	return a
}

// MaxBody returns the largest file body this replica accepts, in bytes.
func (r *Replica) MaxBody() int { return r.cfg.MaxBody }

// WriteTimeout returns how long a write or a wait may take before it is
// answered TIMEOUT.
func (r *Replica) WriteTimeout() time.Duration { return r.cfg.WriteTimeout }

// WaitRev waits until revision rev is applied here, up to the write
// timeout (TIMEOUT), as a read with that min-rev does.
func (r *Replica) WaitRev(ctx context.Context, rev int64) error { return r.waitRev(ctx, rev) }

// WaitConsistent waits until everything committed before the call is
// applied here, as a consistent read does (TIMEOUT or UNAVAILABLE when no
// leader confirms it).
func (r *Replica) WaitConsistent(ctx context.Context) error { return r.waitConsistent(ctx) }
