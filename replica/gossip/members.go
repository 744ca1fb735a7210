package gossip

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// State is what a member knows of another.
type State uint8

// States. memberlist also has a suspect state, but v0.7.0 tells its
// delegates nothing about suspicion (only joins, updates, and departures),
// so a member it suspects shows as alive here until it is declared dead.
const (
	StateAlive State = iota + 1 // taking part in gossip
	StateDead                   // stopped answering, and declared failed
	StateLeft                   // left on purpose (Members.Leave)
)

func (s State) String() string {
	switch s {
	case StateAlive:
		return "alive"
	case StateDead:
		return "dead"
	case StateLeft:
		return "left"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// Node is a member as this one sees it.
type Node struct {
	Name       string    // memberlist's node name: the replica's name
	ID         uint64    // from its Meta
	Addr       string    // from its Meta
	Cluster    string    // from its Meta
	Gossip     string    // host:port memberlist reaches it at
	State      State     // alive, dead or left
	StateSince time.Time // when this member last saw State change
}

// Timings are memberlist's failure-detection and gossip intervals. A zero
// field keeps memberlist.DefaultLANConfig's value (given in brackets).
// A member that stops answering is declared dead after roughly
// 2–3 ProbeIntervals plus SuspicionMult·max(1, log10(n))·ProbeInterval
// for n members.
type Timings struct {
	ProbeInterval       time.Duration // how often a member probes another [1s]
	ProbeTimeout        time.Duration // how long a probe waits for its ack [500ms]
	SuspicionMult       int           // how many probe intervals a suspect has to refute [4]
	GossipInterval      time.Duration // how often queued updates are gossiped [200ms]
	PushPullInterval    time.Duration // how often full state is exchanged over a stream [30s]
	TCPTimeout          time.Duration // bound on a stream: dial, HELLO and exchange [10s]
	GossipToTheDeadTime time.Duration // how long memberlist keeps gossiping to a dead member [30s]
}

// FastTimings are short timings for tests and clusters on one host
// (loopback): a killed member is declared dead in about two seconds.
func FastTimings() Timings {
	return Timings{
		ProbeInterval:       200 * time.Millisecond,
		ProbeTimeout:        100 * time.Millisecond,
		SuspicionMult:       4,
		GossipInterval:      30 * time.Millisecond,
		PushPullInterval:    3 * time.Second,
		TCPTimeout:          2 * time.Second,
		GossipToTheDeadTime: 10 * time.Second,
	}
}

func (t Timings) apply(c *memberlist.Config) {
	setDur := func(dst *time.Duration, v time.Duration) {
		if v > 0 {
			*dst = v
		}
	}
	setDur(&c.ProbeInterval, t.ProbeInterval)
	setDur(&c.ProbeTimeout, t.ProbeTimeout)
	setDur(&c.GossipInterval, t.GossipInterval)
	setDur(&c.PushPullInterval, t.PushPullInterval)
	setDur(&c.TCPTimeout, t.TCPTimeout)
	setDur(&c.GossipToTheDeadTime, t.GossipToTheDeadTime)
	if t.SuspicionMult > 0 {
		c.SuspicionMult = t.SuspicionMult
	}
}

// MembersConfig configures Members.
type MembersConfig struct {
	// Name is this member's name, unique in the cluster: the replica's name.
	Name string

	// Transport carries memberlist's traffic, normally a *Transport.
	// Start takes it over: Shutdown shuts it down, and so does Start if it
	// fails.
	Transport memberlist.Transport

	// Meta is what this member tells the others. Members whose Meta names
	// another cluster than Meta.Cluster are refused.
	Meta Meta

	// GossipKey, if set, encrypts and authenticates all gossip (packets and
	// streams) with AES-GCM (memberlist's SecretKey). 16, 24 or 32 bytes.
	// Members without the same key cannot join.
	GossipKey []byte

	// OtherGossipKeys are further keys (16, 24 or 32 bytes each) under
	// which gossip is accepted: memberlist's keyring holds GossipKey, the
	// primary, which encrypts everything this member sends, and these,
	// which only decrypt. A member hears every member whose primary key is
	// in its keyring, so keys can be rotated one member at a time (see
	// docs/security.md). They need GossipKey.
	OtherGossipKeys [][]byte

	// Timings for failure detection and gossip; zero fields keep
	// memberlist's LAN defaults. FastTimings suits tests.
	Timings Timings

	// OnChange, if set, is called when the table Nodes returns changes: a
	// member joined or rejoined, updated its Meta, died or left. It is
	// called from one goroutine, never concurrently; changes that happen
	// while it runs are coalesced into one more call. It may call any
	// method but Shutdown.
	OnChange func()

	// Logger receives this package's messages and memberlist's (at their
	// levels; memberlist's debug messages are many). nil: slog.Default().
	Logger *slog.Logger
}

// Members is this replica's view of the cluster's membership, kept by
// memberlist. Its methods are safe for concurrent use.
type Members struct {
	ml       *memberlist.Memberlist
	cluster  string
	log      *slog.Logger
	onChange func()

	changedc chan struct{} // a change to report; buffered, one slot
	donec    chan struct{} // closed by Shutdown
	wg       sync.WaitGroup

	life    sync.Mutex // serialises Leave, SetMeta and Shutdown
	stopped bool       // under life

	mu      sync.Mutex
	nodes   map[string]*Node
	meta    Meta
	leaving bool
	metaEnc []byte // meta and leaving, encoded
}

// ErrShutdown is returned by methods called after Shutdown.
var ErrShutdown = errors.New("gossip: members shut down")

// Start starts memberlist as cfg.Name on cfg.Transport. The new member
// knows only itself; Join makes it part of a cluster.
func Start(cfg MembersConfig) (*Members, error) {
	fail := func(err error) (*Members, error) {
		if cfg.Transport != nil {
			cfg.Transport.Shutdown()
		}
		return nil, err
	}
	switch {
	case cfg.Transport == nil:
		return nil, errors.New("gossip: no transport")
	case cfg.Name == "":
		return fail(errors.New("gossip: no name"))
	}
	keyring, err := newKeyring(cfg.GossipKey, cfg.OtherGossipKeys)
	if err != nil {
		return fail(err)
	}
	enc, err := encodeMeta(cfg.Meta, 0)
	if err != nil {
		return fail(err)
	}
	m := &Members{
		cluster:  cfg.Meta.Cluster,
		log:      cfg.Logger,
		onChange: cfg.OnChange,
		changedc: make(chan struct{}, 1),
		donec:    make(chan struct{}),
		nodes:    make(map[string]*Node),
		meta:     cfg.Meta,
		metaEnc:  enc,
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	d := delegate{m}
	conf := memberlist.DefaultLANConfig()
	conf.Name = cfg.Name
	conf.Transport = cfg.Transport
	conf.Delegate = d
	conf.Events = d
	conf.Alive = d
	conf.Merge = d
	conf.Logger = stdLogger(m.log)
	conf.LogOutput = nil
	conf.Keyring = keyring
	cfg.Timings.apply(conf)
	ml, err := memberlist.Create(conf)
	if err != nil {
		return fail(fmt.Errorf("gossip: start memberlist: %w", err))
	}
	m.ml = ml
	if m.onChange != nil {
		m.wg.Add(1)
		go m.reportChanges()
	}
	return m, nil
}

// newKeyring returns memberlist's keyring of primary and others, or nil
// (gossip in the clear) when there is no primary.
func newKeyring(primary []byte, others [][]byte) (*memberlist.Keyring, error) {
	checkLen := func(what string, k []byte) error {
		switch len(k) {
		case 16, 24, 32:
			return nil
		}
		return fmt.Errorf("gossip: %s must be 16, 24 or 32 bytes, not %d", what, len(k))
	}
	if len(primary) == 0 {
		if len(others) > 0 {
			return nil, errors.New("gossip: other gossip keys without a primary key (GossipKey)")
		}
		return nil, nil
	}
	if err := checkLen("gossip key", primary); err != nil {
		return nil, err
	}
	keys := make([][]byte, 0, len(others))
	for i, k := range others {
		if err := checkLen(fmt.Sprintf("other gossip key %d", i+1), k); err != nil {
			return nil, err
		}
		if bytes.Equal(k, primary) || slices.ContainsFunc(keys, func(o []byte) bool { return bytes.Equal(o, k) }) {
			return nil, fmt.Errorf("gossip: other gossip key %d repeats a key given before it", i+1)
		}
		keys = append(keys, bytes.Clone(k))
	}
	kr, err := memberlist.NewKeyring(keys, bytes.Clone(primary))
	if err != nil {
		return nil, fmt.Errorf("gossip: keyring: %w", err)
	}
	return kr, nil
}

// Join contacts the members at addrs (host:port each) and exchanges state
// with them. It returns how many it reached; the error is nil if it reached
// at least one. A member of another cluster, or one without this member's
// gossip key, cannot be reached.
func (m *Members) Join(addrs []string) (int, error) {
	for _, a := range addrs {
		hp := a
		if i := strings.LastIndexByte(hp, '/'); i >= 0 { // memberlist's "name/host:port"
			hp = hp[i+1:]
		}
		if _, _, err := net.SplitHostPort(hp); err != nil {
			return 0, fmt.Errorf("gossip: join address %q: %w", a, err)
		}
	}
	m.life.Lock()
	stopped := m.stopped
	m.life.Unlock()
	if stopped {
		return 0, ErrShutdown
	}
	n, err := m.ml.Join(addrs)
	if err != nil {
		return n, fmt.Errorf("gossip: join: %w", err)
	}
	return n, nil
}

// Nodes returns every member this one has seen, itself included, ordered by
// name. Dead and left members stay until they come back or are forgotten.
func (m *Members) Nodes() []Node {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Node, 0, len(m.nodes))
	for _, n := range m.nodes {
		out = append(out, *n)
	}
	slices.SortFunc(out, func(a, b Node) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Forget drops a dead or left member from the table Nodes returns, as when
// it has been removed from the cluster for good. It reports whether it did;
// an alive member is not forgotten. If the member comes back, it is seen
// again.
func (m *Members) Forget(name string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.nodes[name]
	if !ok || n.State == StateAlive {
		return false
	}
	delete(m.nodes, name)
	return true
}

// SetMeta changes this member's Meta and gossips it, waiting up to timeout
// for the update to be sent (it is sent anyway). The cluster cannot change.
func (m *Members) SetMeta(meta Meta, timeout time.Duration) error {
	if meta.Cluster != m.cluster {
		return fmt.Errorf("gossip: cannot move from cluster %q to %q", m.cluster, meta.Cluster)
	}
	m.life.Lock()
	defer m.life.Unlock()
	if m.stopped {
		return ErrShutdown
	}
	m.mu.Lock()
	enc, err := encodeMeta(meta, m.flags())
	if err == nil {
		m.meta, m.metaEnc = meta, enc
	}
	m.mu.Unlock()
	if err != nil {
		return err
	}
	return m.ml.UpdateNode(timeout)
}

// Leave tells the cluster that this member is leaving on purpose, waiting
// up to timeout for that to be gossiped; the others then see it as left,
// not dead. It keeps gossiping until Shutdown, which should follow.
func (m *Members) Leave(timeout time.Duration) error {
	m.life.Lock()
	defer m.life.Unlock()
	if m.stopped {
		return ErrShutdown
	}
	deadline := time.Now().Add(timeout)
	// First the leaving flag in Meta (see metaLeaving), then memberlist's
	// leave message: with a broadcast queue in order, the others learn the
	// flag before the departure.
	m.mu.Lock()
	m.leaving = true
	enc, err := encodeMeta(m.meta, m.flags())
	if err == nil {
		m.metaEnc = enc
	}
	m.mu.Unlock()
	if err == nil {
		if err := m.ml.UpdateNode(timeout); err != nil {
			m.log.Warn("gossip: leaving: the leaving flag may not have been gossiped", "err", err)
		}
	}
	rest := time.Until(deadline)
	if rest <= 0 {
		rest = time.Millisecond
	}
	if err := m.ml.Leave(rest); err != nil {
		return fmt.Errorf("gossip: leave: %w", err)
	}
	return nil
}

// Shutdown stops memberlist and the transport without telling the others
// (see Leave): they will declare this member dead. It waits for OnChange to
// return. It is safe to call more than once, but not from OnChange.
func (m *Members) Shutdown() error {
	m.life.Lock()
	if m.stopped {
		m.life.Unlock()
		return nil
	}
	m.stopped = true
	m.life.Unlock()
	err := m.ml.Shutdown()
	close(m.donec)
	m.wg.Wait()
	return err
}

// flags returns the meta flags for this member; m.mu is held.
func (m *Members) flags() byte {
	if m.leaving {
		return metaLeaving
	}
	return 0
}

// admit judges a member's metadata: it must decode and name this cluster.
func (m *Members) admit(name string, meta []byte) error {
	mt, err := DecodeMeta(meta)
	if err != nil {
		return fmt.Errorf("member %q: %w", name, err)
	}
	if mt.Cluster != m.cluster {
		return fmt.Errorf("member %q is in cluster %q, not %q", name, mt.Cluster, m.cluster)
	}
	return nil
}

// record updates the table from a memberlist event. st is StateAlive for a
// join, StateDead for a departure (left if the member had set its leaving
// flag), and 0 for a Meta update. memberlist calls it with its node lock
// held: it must not call memberlist.
func (m *Members) record(n *memberlist.Node, st State) {
	meta, flags, err := decodeMeta(n.Meta)
	gossipAddr := n.Address()
	now := time.Now()

	m.mu.Lock()
	e, known := m.nodes[n.Name]
	if !known {
		e = &Node{Name: n.Name}
		m.nodes[n.Name] = e
	}
	old := e.State
	switch {
	case st == 0 && known:
		st = old
	case st == 0:
		st = StateAlive
	case st == StateDead && flags&metaLeaving != 0:
		st = StateLeft
	}
	if err == nil {
		e.ID, e.Addr, e.Cluster = meta.ID, meta.Addr, meta.Cluster
	}
	e.Gossip = gossipAddr
	if st != old {
		e.State, e.StateSince = st, now
	}
	m.mu.Unlock()

	if err != nil {
		m.log.Warn("gossip: undecodable meta", "node", n.Name, "err", err)
	}
	if st != old {
		m.log.Info("gossip: member "+st.String(), "node", n.Name, "id", meta.ID, "addr", meta.Addr, "gossip", gossipAddr)
	} else {
		m.log.Debug("gossip: member updated", "node", n.Name, "id", meta.ID, "addr", meta.Addr)
	}
	select {
	case m.changedc <- struct{}{}:
	default:
	}
}

// reportChanges calls OnChange for changes until Shutdown.
func (m *Members) reportChanges() {
	defer m.wg.Done()
	for {
		select {
		case <-m.changedc:
			m.onChange()
		case <-m.donec:
			return
		}
	}
}

// delegate is memberlist's view of Members: its Delegate (metadata),
// EventDelegate (the table), AliveDelegate and MergeDelegate (refusing
// other clusters).
type delegate struct{ m *Members }

func (d delegate) NodeMeta(limit int) []byte {
	d.m.mu.Lock()
	defer d.m.mu.Unlock()
	if len(d.m.metaEnc) > limit { // cannot happen: encodeMeta checks
		return nil
	}
	return d.m.metaEnc
}

func (delegate) NotifyMsg([]byte)                           {}
func (delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (delegate) LocalState(join bool) []byte                { return nil }
func (delegate) MergeRemoteState(buf []byte, join bool)     {}

func (d delegate) NotifyAlive(n *memberlist.Node) error { return d.m.admit(n.Name, n.Meta) }

func (d delegate) NotifyMerge(peers []*memberlist.Node) error {
	for _, n := range peers {
		if err := d.m.admit(n.Name, n.Meta); err != nil {
			return err
		}
	}
	return nil
}

func (d delegate) NotifyJoin(n *memberlist.Node)   { d.m.record(n, StateAlive) }
func (d delegate) NotifyLeave(n *memberlist.Node)  { d.m.record(n, StateDead) }
func (d delegate) NotifyUpdate(n *memberlist.Node) { d.m.record(n, 0) }
