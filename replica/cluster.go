package replica

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/doozerfs/doozerfs/consensus"
	"github.com/doozerfs/doozerfs/fs"
)

// peerView is one replica as gossip reports it.
type peerView struct {
	ID        uint64
	Name      string
	Addr      string
	Alive     bool
	DeadSince time.Time // when it stopped being alive (zero while alive)
}

// discovery is what the membership policy needs from gossip.
type discovery interface {
	views() []peerView
}

// policyEvery is how often the leader reconsiders the membership.
const policyEvery = 200 * time.Millisecond

// catchUpSlack is how far behind the leader's commit point a learner may
// be and still be promoted.
const catchUpSlack = 64

// policy runs in the loop on the leader: it turns what gossip sees into
// membership changes, one at a time, and keeps /ctl/node current.
func (r *Replica) policy(now time.Time) {
	if r.disc == nil {
		return
	}
	views := r.disc.views()
	byID := make(map[uint64]peerView, len(views))
	for _, v := range views {
		if v.ID == 0 {
			continue
		}
		byID[v.ID] = v
		r.peers.setAddr(v.ID, v.Addr)
		if v.Name != "" {
			r.namesMu.Lock()
			r.names[v.ID] = v.Name
			r.namesMu.Unlock()
		}
	}
	st := r.node.Status()
	m := st.Membership
	r.peers.retain(func(id uint64) bool { return m.IsVoter(id) || m.IsLearner(id) })
	if st.Role != consensus.RoleLeader {
		return
	}
	peer := make(map[uint64]consensus.PeerStatus, len(st.Peers))
	for _, p := range st.Peers {
		peer[p.ID] = p
	}
	// Dead is gossip's word for --dead-timeout and consensus's silence:
	// a member still answering the leader's messages is not removed,
	// whatever gossip says (after a long partition heals, gossip can
	// report a member dead for a while after consensus hears it again,
	// and removing it then would shrink the cluster for nothing).
	dead := func(id uint64) bool {
		v, ok := byID[id]
		return ok && !v.Alive && now.Sub(v.DeadSince) >= r.cfg.DeadTimeout && !peer[id].Active
	}
	// A learner is caught up when it has reported a chosen prefix near the
	// leader's. Not whether consensus still counts a snapshot transfer to
	// it as under way: a learner that installed one and then followed by
	// Accepts never asks for a catch-up that would end that count.
	caughtUp := func(id uint64) bool {
		p, ok := peer[id]
		v, seen := byID[id]
		return ok && p.Active && p.Match+catchUpSlack >= st.Commit && (!seen || v.Alive)
	}
	propose := func(cc consensus.ConfChange, why string) bool {
		err := r.node.ProposeConfChange(cc)
		switch {
		case err == nil:
			r.log.Info("membership change proposed", "change", cc.Type.String(), "node", cc.Node, "name", r.nameOf(cc.Node), "why", why)
			return true
		case errors.Is(err, consensus.ErrChangeInProgress), errors.Is(err, consensus.ErrLagging):
			return true // try again later
		default:
			r.log.Debug("membership change refused", "change", cc.Type.String(), "node", cc.Node, "err", err)
			return false
		}
	}
	// An explicit removal first.
	removed := r.removed()
	for id := range removed {
		if !m.IsVoter(id) && !m.IsLearner(id) {
			continue
		}
		if propose(consensus.ConfChange{Type: consensus.ConfRemove, Node: id}, "members remove") {
			return
		}
	}
	// New replicas seen by gossip become learners.
	ids := make([]uint64, 0, len(byID))
	for id := range byID {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		v := byID[id]
		if id == r.id || !v.Alive || m.IsVoter(id) || m.IsLearner(id) || removed[id] {
			continue
		}
		if propose(consensus.ConfChange{Type: consensus.ConfAddLearner, Node: id}, "joined") {
			return
		}
	}
	var deadVoters []uint64
	for _, id := range m.Voters {
		if id != r.id && dead(id) {
			deadVoters = append(deadVoters, id)
		}
	}
	// Promote caught-up learners while voters are short, or to replace a
	// dead voter.
	if len(m.Voters)-len(deadVoters) < r.cfg.Voters {
		for _, id := range m.Learners {
			if caughtUp(id) {
				if propose(consensus.ConfChange{Type: consensus.ConfPromote, Node: id}, "voters short") {
					return
				}
			}
		}
	}
	// Remove dead voters once their replacement (if any) is in, never the
	// last ones that keep a quorum (consensus refuses those).
	for _, id := range deadVoters {
		if propose(consensus.ConfChange{Type: consensus.ConfRemove, Node: id}, "dead") {
			return
		}
	}
	for _, id := range m.Learners {
		if dead(id) {
			if propose(consensus.ConfChange{Type: consensus.ConfRemove, Node: id}, "dead learner") {
				return
			}
		}
	}
	r.syncCtl(m)
}

// syncCtl keeps /ctl/node/<name>/{id,addr,role} equal to the membership.
// Only the leader writes it, as a system transaction.
func (r *Replica) syncCtl(m consensus.Membership) {
	if r.ctlRes != nil {
		select {
		case <-r.ctlRes:
			r.ctlPending, r.ctlRes = false, nil
		default:
		}
	}
	if r.ctlPending && time.Since(r.ctlAt) < 5*time.Second {
		return
	}
	want := map[string]string{}
	for _, id := range append(slices.Clone(m.Voters), m.Learners...) {
		name := r.nameOf(id)
		addr, _ := r.peers.addr(id)
		if id == r.id {
			addr = r.advertised()
		}
		role := "learner"
		if m.IsVoter(id) {
			role = "voter"
		}
		base := "/ctl/node/" + name + "/"
		want[base+"id"] = strconv.FormatUint(id, 10)
		want[base+"addr"] = addr
		want[base+"role"] = role
	}
	v := r.tree.View()
	var ops []fs.Op
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		body, _, err := v.Get(k)
		if err != nil || string(body) != want[k] {
			ops = append(ops, fs.Op{Kind: fs.OpSet, Path: k, Rev: fs.Clobber, Body: []byte(want[k])})
		}
	}
	if names, err := v.GetDir("/ctl/node"); err == nil {
		for _, e := range names {
			if _, ok := want["/ctl/node/"+e.Name+"/id"]; ok {
				continue
			}
			files, _ := v.GetDir("/ctl/node/" + e.Name)
			for _, f := range files {
				ops = append(ops, fs.Op{Kind: fs.OpDel, Path: "/ctl/node/" + e.Name + "/" + f.Name, Rev: fs.Clobber})
			}
			ops = append(ops, fs.Op{Kind: fs.OpDel, Path: "/ctl/node/" + e.Name, Rev: fs.Clobber})
		}
	}
	if len(ops) == 0 {
		r.ctlPending = false
		return
	}
	mu := &fs.Mutation{Kind: fs.MutTxn, Ops: ops, System: true, Time: time.Now().UnixNano()}
	data, err := mu.MarshalBinary()
	if err != nil {
		return
	}
	r.ctlPending, r.ctlAt = true, time.Now()
	res := make(chan propResult, 1)
	r.submit(&proposal{m: mu, data: data, res: res})
	r.ctlRes = res
}

// advertised is the address the other replicas reach this one at.
func (r *Replica) advertised() string {
	if r.cfg.Advertise != "" {
		return r.cfg.Advertise
	}
	return r.Addr()
}

// nameOf returns a member's name, or "id-N" while gossip has not told it.
func (r *Replica) nameOf(id uint64) string {
	r.namesMu.Lock()
	name := r.names[id]
	r.namesMu.Unlock()
	if name == "" {
		name = "id-" + strconv.FormatUint(id, 10)
	}
	return name
}

// removedDir lists, by id, the members removed for good with `members
// remove`: the policy removes them and never adds them back.
const removedDir = "/ctl/removed"

// removed returns the ids under /ctl/removed.
func (r *Replica) removed() map[uint64]bool {
	out := map[uint64]bool{}
	ents, err := r.tree.View().GetDir(removedDir)
	if err != nil {
		return out
	}
	for _, e := range ents {
		if id, err := strconv.ParseUint(e.Name, 10, 64); err == nil {
			out[id] = true
		}
	}
	return out
}

// RemoveMember removes the member called name for good: it records the
// removal under /ctl/removed through consensus, so whichever replica leads
// carries it out, and waits until the member has left the membership.
func (r *Replica) RemoveMember(ctx context.Context, name string) error {
	st := r.consensusStatus()
	var id uint64
	for _, m := range append(slices.Clone(st.Membership.Voters), st.Membership.Learners...) {
		if r.nameOf(m) == name {
			id = m
		}
	}
	if id == 0 {
		return &fs.Error{Kind: fs.KindNoEnt, Path: name, Detail: "no member has this name"}
	}
	if len(st.Membership.Voters) == 1 && st.Membership.IsVoter(id) {
		return &fs.Error{Kind: fs.KindOther, Path: name, Detail: "the last voter cannot be removed"}
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.WriteTimeout)
	defer cancel()
	p := removedDir + "/" + strconv.FormatUint(id, 10)
	if _, err := r.proposeAs(ctx, &fs.Mutation{Kind: fs.MutTxn, Ops: []fs.Op{{Kind: fs.OpSet, Path: p, Rev: fs.Clobber, Body: []byte(name)}}}, true); err != nil {
		return err
	}
	for {
		m := r.consensusStatus().Membership
		if !m.IsVoter(id) && !m.IsLearner(id) {
			return nil
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return ctxErr(ctx, "the member was not removed in time (is a quorum left without it?)")
		}
	}
}
