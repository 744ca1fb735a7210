package replica

import (
	"github.com/doozerfs/doozerfs/consensus"
	"github.com/doozerfs/doozerfs/wire"
)

// Status is the replica as it sees itself, for `doozerfs status`, SELF
// and the HTTP view.
type Status struct {
	ID       uint64
	Name     string
	Addr     string
	Cluster  string
	Role     string
	Leader   uint64 // consensus id of the leader, 0 if none is known
	Rev      int64  // applied revision
	Oldest   int64  // oldest revision in the history window
	SnapRev  int64  // revision of the newest snapshot saved
	Writable bool
}

// Status returns the replica's status now.
func (r *Replica) Status() Status {
	return Status{
		ID:       r.id,
		Name:     r.cfg.Name,
		Addr:     r.Addr(),
		Cluster:  r.cfg.Cluster,
		Role:     r.roleName(),
		Leader:   r.leader.Load(),
		Rev:      r.tree.Rev(),
		Oldest:   r.tree.Oldest(),
		SnapRev:  r.snapRev.Load(),
		Writable: r.Writable() == nil,
	}
}

func (r *Replica) roleName() string {
	if consensus.Role(r.role.Load()) == consensus.RoleLearner {
		return wire.RoleLearner
	}
	return wire.RoleVoter
}

// leaderName is the name of the leader as far as this replica knows.
func (r *Replica) leaderName() string {
	switch l := r.leader.Load(); l {
	case 0:
		return ""
	case r.id:
		return r.cfg.Name
	default:
		return ""
	}
}

// members lists the cluster's members as this replica knows them. Until
// clustering, that is itself.
func (r *Replica) members() []wire.Member {
	return []wire.Member{{
		Name:    r.cfg.Name,
		ID:      r.id,
		Addr:    r.Addr(),
		Role:    r.roleName(),
		State:   wire.StateAlive,
		Leader:  r.leader.Load() == r.id,
		Applied: r.tree.Rev(),
	}}
}

func (r *Replica) self() *wire.Self {
	return &wire.Self{
		Name:    r.cfg.Name,
		ID:      r.id,
		Addr:    r.Addr(),
		Cluster: r.cfg.Cluster,
		Role:    r.roleName(),
		Leader:  r.leaderName(),
		Applied: r.tree.Rev(),
		Version: r.cfg.Version,
	}
}
