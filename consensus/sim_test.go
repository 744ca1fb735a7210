package consensus

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
)

// The simulator runs a random cluster of 3–7 replicas over a network that
// drops, duplicates, reorders and partitions (symmetrically and one way),
// crashes replicas (keeping only what they persisted, sometimes losing the
// last unsynced write, sometimes in the middle of handling a Ready) and
// restarts them, and changes the membership on the way. After every step the
// checker holds: no two replicas learn different values for one slot;
// nothing is learned that was not proposed; every read index covers every
// write applied anywhere before the read was asked for; snapshots match the
// learned prefix. At the end the network heals and every replica restarts,
// and every proposal whose origin did not crash or leave is chosen.
//
// CONSENSUS_SEEDS=N runs N seeds (default 500); CONSENSUS_SEED=S replays one,
// with a trace when -v is given. CONSENSUS_STEPS overrides the step count.

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func TestSimulatorKeepsSafetyAndLiveness(t *testing.T) {
	steps := envInt("CONSENSUS_STEPS", 6000)
	if s := os.Getenv("CONSENSUS_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("CONSENSUS_SEED=%q: %v", s, err)
		}
		runSim(t, seed, steps, testing.Verbose())
		return
	}
	seeds := envInt("CONSENSUS_SEEDS", 500)
	for seed := uint64(1); seed <= uint64(seeds); seed++ {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			runSim(t, seed, steps, false)
		})
	}
}

type sim struct {
	t    *testing.T
	c    *cluster
	rng  *rand.Rand
	step int
	// nextID is the id the next joining replica gets; ids are never reused.
	nextID  uint64
	maxIDs  uint64
	pDrop   float64
	pDup    float64
	pCrash  float64
	values  int
	origin  map[ProposalID]int // proposal -> step it was proposed at
	crashed map[uint64]int     // node -> step of its last crash
	faults  bool               // faults still being injected
	reads   int
	// weights of the fault actions, per step, in percent
	wNet, wCrash, wConf float64
}

func simConfig(seed uint64) func(uint64) Config {
	return func(id uint64) Config {
		c := DefaultConfig(id)
		c.HeartbeatTicks, c.ElectionTicks, c.ElectionJitterTicks, c.RetryTicks = 2, 10, 10, 20
		c.SnapshotTicks = 40
		c.Seed = seed*1000 + id
		if seed%4 == 0 {
			c.MaxBatchCount = 1
		}
		switch {
		case seed%3 == 0:
			c.MaxInflightSlots = 4
		case seed%5 == 0:
			c.MaxInflightSlots = 2 // the replica's window
		}
		return c
	}
}

func runSim(t *testing.T, seed uint64, steps int, verbose bool) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("replay: CONSENSUS_SEED=%d go test -run 'TestSimulatorKeepsSafetyAndLiveness$' -v ./consensus/", seed)
		}
	})
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	s := &sim{t: t, c: newCluster(t, simConfig(seed)), rng: rng, origin: map[ProposalID]int{}, crashed: map[uint64]int{}, faults: true}
	if verbose {
		s.c.trace = func(f string, a ...any) { t.Logf("[%d] "+f, append([]any{s.step}, a...)...) }
	}
	n := uint64(3 + rng.IntN(3))
	voters := make([]uint64, n)
	for i := range voters {
		voters[i] = uint64(i + 1)
	}
	for _, id := range voters {
		s.c.addNode(id, votersState(voters, nil))
	}
	s.nextID, s.maxIDs = n+1, 7
	s.pDrop = []float64{0, 0.02, 0.1}[rng.IntN(3)]
	s.pDup = []float64{0, 0.02, 0.1}[rng.IntN(3)]
	s.pCrash = []float64{0, 0.002, 0.006, 0.02}[rng.IntN(4)]
	s.wNet = []float64{0.5, 1.5, 5}[rng.IntN(3)]
	s.wCrash = []float64{0.5, 1.5, 4}[rng.IntN(3)]
	s.wConf = []float64{0.2, 0.5, 2}[rng.IntN(3)]
	s.c.compactEvery = []uint64{0, 4, 16}[rng.IntN(3)]
	s.c.crashMidReady = s.maybeCrashMidReady
	s.c.async = seed%2 == 1
	for s.step = 0; s.step < steps; s.step++ {
		s.randomStep()
	}
	s.faults = false
	s.heal()
	s.converge()
	if os.Getenv("CONSENSUS_STATS") != "" {
		t.Logf("seed %d: %d voters at start, %d slots, %d values proposed, %d crashes, %s", seed, n, len(s.c.chk.digest)-1, s.values, len(s.crashed), s.c.stats.withDups(s.c.chk.dups))
	}
}

func (s *sim) randomStep() {
	r := s.rng.Float64() * 100
	switch {
	case r < 40:
		s.deliverRandom()
	case r < 70:
		s.processRandom()
	case r < 80:
		s.c.tickAll()
	case r < 88:
		s.propose()
	case r < 89:
		s.read()
	case r < 89+s.wNet:
		s.network()
	case r < 89+s.wNet+s.wCrash:
		s.crashOrRestart()
	case r < 89+s.wNet+s.wCrash+s.wConf:
		s.changeMembership()
	default:
		s.processRandom()
	}
}

func (s *sim) deliverRandom() {
	if len(s.c.net) == 0 {
		return
	}
	i := s.rng.IntN(len(s.c.net))
	switch p := s.rng.Float64(); {
	case p < s.pDrop:
		s.c.net = append(s.c.net[:i], s.c.net[i+1:]...)
	case p < s.pDrop+s.pDup:
		s.c.net = append(s.c.net, s.c.net[i])
		s.c.deliver(i)
	default:
		s.c.deliver(i)
	}
}

func (s *sim) processRandom() {
	ids := s.c.ids
	start := s.rng.IntN(len(ids))
	for k := range ids {
		if s.c.process(ids[(start+k)%len(ids)]) {
			return
		}
	}
}

func (s *sim) up() []uint64 {
	var out []uint64
	for _, id := range s.c.ids {
		if s.c.nodes[id].up {
			out = append(out, id)
		}
	}
	return out
}

func (s *sim) propose() {
	up := s.up()
	if len(up) == 0 {
		return
	}
	tn := s.c.nodes[up[s.rng.IntN(len(up))]]
	s.values++
	v := []byte(fmt.Sprintf("v%d", s.values))
	id, err := tn.node.Propose(v)
	if err != nil {
		return
	}
	s.c.chk.propose(id, v)
	s.origin[id] = s.step
}

func (s *sim) read() {
	up := s.up()
	if len(up) == 0 {
		return
	}
	s.reads++
	ctx := fmt.Sprintf("r%d", s.reads)
	var applied uint64
	for _, id := range s.c.ids {
		if tn := s.c.nodes[id]; tn.up {
			applied = max(applied, tn.app.applied)
		}
	}
	s.c.chk.reads[ctx] = applied
	_ = s.c.nodes[up[s.rng.IntN(len(up))]].node.ReadIndex([]byte(ctx))
}

// network changes the partitions: a random symmetric split, a one-way cut,
// or a heal.
func (s *sim) network() {
	ids := s.c.ids
	switch s.rng.IntN(3) {
	case 0:
		s.c.cut = map[[2]uint64]bool{}
		side := map[uint64]bool{}
		l := s.c.leaderID()
		for _, id := range ids {
			// Half the splits cut the leader off alone.
			side[id] = s.rng.IntN(2) == 0
			if l != 0 && s.rng.IntN(2) == 0 {
				side[id] = id == l
			}
		}
		for _, a := range ids {
			for _, b := range ids {
				if side[a] != side[b] {
					s.c.cut[[2]uint64{a, b}] = true
				}
			}
		}
	case 1:
		a, b := ids[s.rng.IntN(len(ids))], ids[s.rng.IntN(len(ids))]
		if a != b {
			s.c.cut[[2]uint64{a, b}] = true
		}
	default:
		s.c.cut = map[[2]uint64]bool{}
	}
}

// latest returns the membership known to the most advanced running replica.
func (s *sim) latest() Membership {
	var best *testNode
	for _, id := range s.c.ids {
		if tn := s.c.nodes[id]; tn.up && (best == nil || tn.node.commit > best.node.commit) {
			best = tn
		}
	}
	if best == nil {
		return Membership{}
	}
	return best.node.conf.Members
}

// mayCrash reports whether one more voter may go down: a majority of the
// voters stays up.
func (s *sim) mayCrash(id uint64) bool {
	m := s.latest()
	if !m.IsVoter(id) {
		return true
	}
	down := 0
	for _, v := range m.Voters {
		if tn := s.c.nodes[v]; tn == nil || !tn.up {
			down++
		}
	}
	return down+1 <= (len(m.Voters)-1)/2
}

func (s *sim) crashOrRestart() {
	for _, id := range s.c.ids {
		if !s.c.nodes[id].up && s.rng.IntN(2) == 0 {
			s.c.restart(id)
			return
		}
	}
	if s.rng.Float64()*0.02 >= s.pCrash {
		return
	}
	up := s.up()
	id := up[s.rng.IntN(len(up))]
	if l := s.c.leaderID(); l != 0 && s.rng.IntN(2) == 0 {
		id = l // leaders are the interesting victims
	}
	if s.mayCrash(id) {
		s.c.crash(id, s.rng.IntN(2) == 0)
		s.crashed[id] = s.step
	}
}

// maybeCrashMidReady crashes a node after it took a Ready and before it
// synced it: a prefix of the Ready's entries reaches the disk, nothing is
// sent or applied.
func (s *sim) maybeCrashMidReady(id uint64, rd *Ready) int {
	if !s.faults || s.rng.Float64() >= s.pCrash/2 || !s.mayCrash(id) {
		return -1
	}
	s.crashed[id] = s.step
	return s.rng.IntN(len(rd.Entries) + 1)
}

// changeMembership plays the replica's membership policy at the leader:
// promote a learner, add a new replica as a learner, or remove a voter
// (sometimes the leader itself).
func (s *sim) changeMembership() {
	l := s.c.leaderID()
	if l == 0 {
		return
	}
	n := s.c.nodes[l].node
	m := n.conf.Members
	switch {
	case len(m.Learners) > 0:
		_ = n.ProposeConfChange(ConfChange{Type: ConfPromote, Node: m.Learners[0]})
	case len(m.Voters) < 5 && s.nextID <= s.maxIDs && s.rng.IntN(2) == 0:
		if n.ProposeConfChange(ConfChange{Type: ConfAddLearner, Node: s.nextID}) == nil {
			s.c.addNode(s.nextID, State{})
			s.nextID++
		}
	case len(m.Voters) > 3:
		_ = n.ProposeConfChange(ConfChange{Type: ConfRemove, Node: m.Voters[s.rng.IntN(len(m.Voters))]})
	}
}

func (s *sim) heal() {
	s.c.cut = map[[2]uint64]bool{}
	for _, id := range s.c.ids {
		if !s.c.nodes[id].up {
			s.c.restart(id)
		}
	}
}

// converge runs the healed cluster until every member applied everything
// chosen and every proposal that must be chosen is, or fails the test.
func (s *sim) converge() {
	for round := 0; round < 600; round++ {
		s.c.tickAll()
		s.c.settle(50)
		if s.converged() {
			return
		}
	}
	s.t.Fatalf("no convergence after healing: %s", s.describe())
}

func (s *sim) converged() bool {
	l := s.c.leaderID()
	if l == 0 {
		return false
	}
	ln := s.c.nodes[l].node
	m := ln.conf.Members
	for _, id := range s.c.ids {
		tn := s.c.nodes[id]
		if m.IsMember(id) && (tn.app.applied != ln.commit || tn.node.props.live > 0) {
			return false
		}
	}
	if ln.commit+1 < uint64(len(s.c.chk.digest)) {
		return false
	}
	for id, at := range s.origin {
		if s.mustBeChosen(id, at, m) && !s.c.chk.chosen[id] {
			return false
		}
	}
	return true
}

// mustBeChosen: a proposal is owed a decision unless its origin crashed
// after taking it (the request died with the process) or gave it up
// (Ready.Failed: a removed origin).
func (s *sim) mustBeChosen(id ProposalID, at int, m Membership) bool {
	if c, ok := s.crashed[id.Node]; ok && c >= at {
		return false
	}
	return !s.c.chk.failed[id]
}

func (s *sim) describe() string {
	out := ""
	for _, id := range s.c.ids {
		tn := s.c.nodes[id]
		st := tn.node.Status()
		out += fmt.Sprintf("\n  %d: %s leader=%d ballot=%s commit=%d applied=%d live=%d %s", id, st.Role, st.Leader, st.Ballot, st.Commit, tn.app.applied, tn.node.props.live, st.Membership)
	}
	missing := 0
	for id, at := range s.origin {
		if s.mustBeChosen(id, at, s.latest()) && !s.c.chk.chosen[id] {
			missing++
		}
	}
	return out + fmt.Sprintf("\n  learned through slot %d; %d proposals not chosen", len(s.c.chk.digest)-1, missing)
}
