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
	if l := r.leader.Load(); l != 0 {
		return r.nameOf(l)
	}
	return ""
}

// consensusStatus returns the status the loop published last.
func (r *Replica) consensusStatus() consensus.Status {
	if p := r.cstatus.Load(); p != nil {
		return *p
	}
	return consensus.Status{ID: r.id}
}

// voterCount is the number of voters in the membership known here.
func (r *Replica) voterCount() int { return len(r.consensusStatus().Membership.Voters) }

// Members lists the cluster's members as this replica knows them.
func (r *Replica) Members() []wire.Member { return r.members() }

// Self describes this replica as SELF does.
func (r *Replica) Self() wire.Self { return *r.self() }

func (r *Replica) members() []wire.Member {
	st := r.consensusStatus()
	alive := map[uint64]string{}
	if r.disc != nil {
		for _, v := range r.disc.views() {
			if v.Alive {
				alive[v.ID] = wire.StateAlive
			} else {
				alive[v.ID] = wire.StateDead
			}
		}
	}
	match := map[uint64]consensus.PeerStatus{}
	for _, p := range st.Peers {
		match[p.ID] = p
	}
	var out []wire.Member
	add := func(id uint64, role string) {
		m := wire.Member{Name: r.nameOf(id), ID: id, Role: role, Leader: id == st.Leader, State: alive[id]}
		if id == r.id {
			m.Addr, m.State, m.Applied = r.Addr(), wire.StateAlive, r.tree.Rev()
		} else {
			m.Addr, _ = r.peers.addr(id)
		}
		if m.State == "" {
			m.State = wire.StateSuspect
		}
		out = append(out, m)
	}
	for _, id := range st.Membership.Voters {
		add(id, wire.RoleVoter)
	}
	for _, id := range st.Membership.Learners {
		add(id, wire.RoleLearner)
	}
	if len(out) == 0 {
		add(r.id, r.roleName())
	}
	return out
}

func (r *Replica) self() *wire.Self {
	st := r.consensusStatus()
	return &wire.Self{
		Name:    r.cfg.Name,
		ID:      r.id,
		Addr:    r.Addr(),
		Cluster: r.cfg.Cluster,
		Role:    r.roleName(),
		Leader:  r.leaderName(),
		Applied: r.tree.Rev(),
		Lag:     int64(st.Commit - min(st.Commit, st.Applied)),
		Version: r.cfg.Version,
	}
}
