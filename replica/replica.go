package replica

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/doozerfs/doozerfs/consensus"
	"github.com/doozerfs/doozerfs/fs"
	"github.com/doozerfs/doozerfs/replica/gossip"
	"github.com/doozerfs/doozerfs/replica/wal"
	"github.com/doozerfs/doozerfs/wire"
)

// Replica is one running member of a doozerfs cluster: its applied tree,
// its consensus node, its storage and its wire server.
type Replica struct {
	cfg  Config
	id   uint64
	log  *slog.Logger
	dd   *wal.DataDir
	tree *fs.Tree

	revN  *notifier // applied revision
	slotN *notifier // applied slot

	propc  chan *proposal
	readc  chan *readReq
	stopc  chan struct{}
	donec  chan struct{}
	closed atomic.Bool
	once   sync.Once

	leader  atomic.Uint64 // consensus id of the leader known here, 0 if none
	role    atomic.Uint32 // consensus.Role
	fatal   atomic.Pointer[error]
	snapRev atomic.Int64 // revision of the newest snapshot saved
	metrics *metrics     // Prometheus collectors (metrics.go)

	srv      *server
	gossip   *gossip.Members // nil without a listener, or in tests with disc
	gossipTr *gossip.Transport
	peers    *peers
	bg       sync.WaitGroup // peer links and snapshot transfers

	stepc       chan consensus.Message
	installc    chan *pendingInstall
	snapReportc chan snapReport

	sessMu  sync.Mutex
	sess    int64 // the session lease, 0 before the first SessionLease
	sessErr error // why the session lease ended

	// Owned by the loop goroutine.
	node          *consensus.Node
	waiters       map[consensus.ProposalID]*proposal
	timeq         []timedProposal // waiters with a deadline, in the order proposed
	looping       bool            // the loop runs: Readies may be synced by the syncer
	syncing       bool            // syncRd's write is being synced; no Ready before synced
	syncRd        consensus.Ready
	syncReq       chan struct{} // to the syncer: sync the WAL
	syncDone      chan error    // from the syncer: the sync's outcome
	flushq        []*clientConn // connections with answers queued by the loop, to flush
	held          []*proposal   // waiting for a leader to be known
	reads         map[uint64]*readReq
	readSeq       uint64
	dedup         dedup
	conf          consensus.ConfigState
	lastTime      int64
	applied       uint64
	snapSlot      uint64 // slot of the newest snapshot saved
	snapBytes     int64  // bytes of the values applied since the newest snapshot was captured
	snapIndex     uint64 // its WAL index
	prevIndex     uint64 // WAL index of the snapshot before it
	snapping      bool
	snapDone      chan snapResult
	hs            consensus.HardState // the newest hard state written
	hsIndex       uint64              // WAL index of the newest hard state record
	snapRetry     time.Time           // no snapshot attempt before this time
	entryIndex    map[uint64]uint64   // WAL index of the newest record of each slot not yet applied
	leases        leaseClock
	pending       *pendingInstall // a received snapshot consensus has taken
	disc          discovery       // gossip; nil for a replica without peers
	namesMu       sync.Mutex
	names         map[uint64]string                // member names learnt from gossip (namesMu)
	cstatus       atomic.Pointer[consensus.Status] // published after every Ready
	ctlPending    bool                             // a /ctl/node update is in flight
	ctlAt         time.Time
	policyAt      time.Time
	noLeaderSince time.Time // when this replica last stopped knowing a leader; zero while it knows one
	ctlRes        chan propResult
}

// proposal is one mutation on its way through consensus. The loop answers
// it once (finish): on res, or, for a client connection's write, on the
// connection itself (cc).
type proposal struct {
	m     *fs.Mutation
	data  []byte
	until time.Time // held proposals give up at this time
	start time.Time // when a client's write was proposed (commit latency metric)
	// deadline: past it the loop answers TIMEOUT (the outcome is unknown)
	// and forgets the proposal; zero for none. The loop checks it on its
	// tick, so that a write needs no timer of its own.
	deadline time.Time
	res      chan propResult

	// A client connection's write (server.go), answered on cc.
	cc       *clientConn
	tag      uint32
	verb     wire.Verb
	size     int         // requestSize, counted in cc.bytes while in flight
	answered atomic.Bool // set by whoever answers first: the loop, CANCEL
}

// timedProposal is an entry of the loop's deadline queue.
type timedProposal struct {
	id consensus.ProposalID
	p  *proposal
}

type propResult struct {
	res fs.Result
	err error
}

type readReq struct {
	slot chan uint64 // receives the read index, or 0 if the read failed
}

type snapResult struct {
	slot, index uint64
	rev         int64
	err         error
}

// Open starts a replica on cfg.DataDir: it founds a new cluster of one on
// an empty directory, or restarts from the snapshot and WAL found there.
// It listens on cfg.Addr unless cfg.Addr is empty (then only the in-process
// API works). Close stops it.
func Open(cfg Config) (*Replica, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	var ln *net.TCPListener
	var udp *net.UDPConn
	if cfg.Addr != "" {
		var err error
		ln, udp, err = gossip.Listen(cfg.Addr)
		if err != nil {
			return nil, fmt.Errorf("replica: listen on %s (TCP and UDP): %w", cfg.Addr, err)
		}
	}
	closeSockets := func() {
		if ln != nil {
			ln.Close()
		}
		if udp != nil {
			udp.Close()
		}
	}
	r, err := open(cfg)
	if err != nil {
		closeSockets()
		return nil, err
	}
	// Apply what the log already holds as chosen before anyone can read.
	if err := r.process(); err != nil {
		r.dd.Close()
		closeSockets()
		return nil, err
	}
	if ln != nil {
		r.srv = newServer(r, ln)
		if r.disc == nil {
			if err := r.startGossip(ln, udp); err != nil {
				r.dd.Close()
				closeSockets()
				return nil, err
			}
		} else {
			udp.Close() // a test stands in for gossip
		}
	}
	r.log.Info("replica started", "id", r.id, "name", cfg.Name, "addr", r.Addr(), "data", cfg.DataDir,
		"rev", r.tree.Rev(), "slot", r.applied)
	go r.loop()
	if r.srv != nil {
		go r.srv.serve()
	}
	return r, nil
}

func open(cfg Config) (*Replica, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("replica: %w", err)
	}
	met := newMetrics()
	dd, err := wal.OpenDataDir(cfg.DataDir, wal.Options{Repair: cfg.Repair, Logger: cfg.Logger, OnSync: met.walSync, Faults: cfg.TestFaults.walFaults()})
	if err != nil {
		return nil, err
	}
	// Snapshots staged for SNAPSHOT streams by a replica that died.
	if stale, _ := filepath.Glob(filepath.Join(cfg.DataDir, "snapshot-stream-*.tmp")); len(stale) > 0 {
		for _, p := range stale {
			os.Remove(p)
		}
	}
	r := &Replica{
		cfg:         cfg,
		metrics:     met,
		log:         cfg.Logger,
		dd:          dd,
		propc:       make(chan *proposal, 1024),
		readc:       make(chan *readReq, 1024),
		stopc:       make(chan struct{}),
		donec:       make(chan struct{}),
		waiters:     make(map[consensus.ProposalID]*proposal),
		reads:       make(map[uint64]*readReq),
		snapDone:    make(chan snapResult, 1),
		syncReq:     make(chan struct{}, 1),
		syncDone:    make(chan error, 1),
		entryIndex:  make(map[uint64]uint64),
		stepc:       make(chan consensus.Message, 4096),
		installc:    make(chan *pendingInstall),
		snapReportc: make(chan snapReport, 16),
		names:       make(map[uint64]string),
	}
	r.peers = newPeers(r)
	r.disc = cfg.disc
	met.register(r)
	if err := r.recover(); err != nil {
		dd.Close()
		return nil, err
	}
	return r, nil
}

// pipelineSlots is the leader's window of slots holding batches of values
// that are proposed and not yet chosen (consensus.Config.MaxInflightSlots).
// Two keep the disk and the network busy; past them proposals queue and go
// out together in the next slot. Under 64 concurrent writers this cut the
// CPU per SET by about a sixth against a window of Alpha (64), where nearly
// every wake-up of the loop opened a slot of two or three values, each with
// its own Accept, Accepted, Commit and WAL record on every replica
// (docs/benchmarks.md, "Batching under load").
const pipelineSlots = 2

// recover loads the newest snapshot, replays the WAL after it and builds
// the consensus node.
func (r *Replica) recover() error {
	id, haveID, err := readIdentity(r.cfg.DataDir)
	if err != nil {
		return err
	}
	snap, haveSnap, err := r.dd.Snapshots.Latest()
	if err != nil {
		return err
	}
	fsCfg := fs.Config{History: r.cfg.History, HistoryBytes: r.cfg.HistoryBytes}
	var hdr *snapHeader
	joining := false
	switch {
	case !haveSnap && len(r.cfg.Join) > 0:
		// Joining an existing cluster: start knowing nothing, and wait for
		// the leader to add this replica and send it a snapshot.
		if !haveID {
			id = identity{ID: newID(), Cluster: r.cfg.Cluster}
			if err := writeIdentity(r.cfg.DataDir, id); err != nil {
				return err
			}
		}
		joining = true
		r.tree = fs.New(fsCfg)
		hdr = &snapHeader{Dedup: make(dedup)}
		r.snapIndex = r.dd.WAL.FirstIndex()
		r.log.Info("joining a cluster", "join", r.cfg.Join, "id", id.ID)
	case !haveSnap && haveID:
		return fmt.Errorf("replica: %s has an identity but no snapshot; start it with --join to fetch one from the cluster", r.cfg.DataDir)
	case !haveSnap:
		// A new cluster of one.
		id = identity{ID: newID(), Cluster: r.cfg.Cluster}
		st := consensus.Founding(id.ID)
		r.tree = fs.New(fsCfg)
		hdr = &snapHeader{Config: st.Snapshot.Config, Dedup: make(dedup)}
		if err := r.seed(id, hdr); err != nil {
			return err
		}
		r.log.Info("founded a new cluster", "cluster", id.Cluster, "id", id.ID)
	default:
		rc, err := snap.Open()
		if err != nil {
			return err
		}
		hdr, r.tree, err = readStateSnapshot(rc, fsCfg)
		rc.Close()
		if err != nil {
			return fmt.Errorf("replica: snapshot %s: %w", snap.Path, err)
		}
		r.snapIndex, r.prevIndex = snap.Index, snap.Index
		if !haveID {
			// A restored snapshot: found a new cluster of one on it.
			id = identity{ID: newID(), Cluster: r.cfg.Cluster}
			st := consensus.Founding(id.ID)
			hdr.Config = st.Snapshot.Config
			if err := r.seed(id, hdr); err != nil {
				return err
			}
			// The restored file names the old cluster's members; only the
			// snapshot just saved may be started from.
			if list, err := r.dd.Snapshots.List(); err == nil {
				for _, sn := range list {
					if sn.Index != r.snapIndex {
						os.Remove(sn.Path)
					}
				}
			}
			r.log.Info("founded a new cluster from a restored snapshot", "cluster", id.Cluster, "id", id.ID, "rev", r.tree.Rev())
		}
	}
	if id.Cluster != r.cfg.Cluster {
		return fmt.Errorf("replica: %s belongs to cluster %q, not %q", r.cfg.DataDir, id.Cluster, r.cfg.Cluster)
	}
	r.id = id.ID
	r.names[r.id] = r.cfg.Name
	r.conf = hdr.Config
	r.lastTime = hdr.LastTime
	r.dedup = hdr.Dedup
	r.applied = hdr.Slot
	r.snapSlot = hdr.Slot
	r.snapRev.Store(r.tree.Rev())

	st := consensus.State{Snapshot: consensus.SnapshotMeta{Slot: hdr.Slot, Config: hdr.Config}, Applied: hdr.Slot}
	if joining {
		st = consensus.State{}
	}
	var records int
	err = r.dd.WAL.Replay(r.snapIndex, func(index uint64, rec wal.Record) error {
		records++
		switch rec.Type {
		case recHardState:
			hs, err := decodeHardState(rec.Data)
			if err != nil {
				return err
			}
			st.HardState = hs
			r.hs = hs
			r.hsIndex = index
		case recEntry:
			e, err := decodeEntry(rec.Data)
			if err != nil {
				return err
			}
			if e.Slot > hdr.Slot {
				st.Entries = append(st.Entries, e)
				r.entryIndex[e.Slot] = index
			}
		case recCheckpoint:
		default:
			return fmt.Errorf("replica: unknown WAL record type %d", rec.Type)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("replica: replaying the WAL: %w", err)
	}
	ccfg := consensus.DefaultConfig(r.id)
	ccfg.Seed = newID()
	ccfg.Logger = r.log
	ccfg.MaxMsgBytes = max(ccfg.MaxMsgBytes, r.cfg.maxFrame())
	ccfg.MaxBatchBytes = max(ccfg.MaxBatchBytes, r.cfg.MaxBody+4096)
	ccfg.MaxInflightSlots = pipelineSlots
	node, err := consensus.New(ccfg, st)
	if err != nil {
		return fmt.Errorf("replica: %w", err)
	}
	r.node = node
	r.revN = newNotifier(r.tree.Rev())
	r.slotN = newNotifier(int64(r.applied))
	r.log.Info("recovered", "snapshot", snap.Path, "slot", hdr.Slot, "rev", r.tree.Rev(), "wal_records", records, "entries", len(st.Entries))
	return nil
}

// seed writes the identity and the first snapshot of a new data
// directory: the one the replica founds its cluster on.
func (r *Replica) seed(id identity, hdr *snapHeader) error {
	index := r.dd.WAL.NextIndex()
	capture := r.tree.Capture()
	sn, err := r.dd.Snapshots.Save(index, func(w io.Writer) error {
		if err := hdr.write(w); err != nil {
			return err
		}
		return capture(w)
	})
	if err != nil {
		return err
	}
	r.snapIndex, r.prevIndex = sn.Index, sn.Index
	return writeIdentity(r.cfg.DataDir, id)
}

// ID returns the replica's consensus id.
func (r *Replica) ID() uint64 { return r.id }

// Name returns the replica's name.
func (r *Replica) Name() string { return r.cfg.Name }

// Addr returns the address the replica listens on ("" if none).
func (r *Replica) Addr() string {
	if r.srv == nil {
		return ""
	}
	return r.srv.ln.Addr().String()
}

// Tree returns the applied state. Callers only read it.
func (r *Replica) Tree() *fs.Tree { return r.tree }

// Changed returns the applied revision and a channel closed at the next
// apply.
func (r *Replica) Changed() (int64, <-chan struct{}) { return r.revN.changed() }

// Close stops the server and the loop, syncs and closes the WAL.
func (r *Replica) Close() error {
	var err error
	r.once.Do(func() {
		r.closed.Store(true)
		if r.gossip != nil {
			r.gossip.Leave(time.Second)
			r.gossip.Shutdown()
		}
		if r.srv != nil {
			r.srv.close()
		}
		close(r.stopc)
		<-r.donec
		r.bg.Wait()
		err = r.dd.Close()
		r.log.Info("replica stopped", "rev", r.tree.Rev())
	})
	return err
}

// Done is closed when the replica has stopped, by Close or by a fatal
// storage error (see Err).
func (r *Replica) Done() <-chan struct{} { return r.donec }

// Err returns the fatal error that stopped the replica, if any.
func (r *Replica) Err() error {
	if p := r.fatal.Load(); p != nil {
		return *p
	}
	return nil
}

var errStopped = &fs.Error{Kind: fs.KindUnavailable, Detail: "the replica is shutting down"}

// propose sends m through consensus and waits until it is applied here.
func (r *Replica) propose(ctx context.Context, m *fs.Mutation) (fs.Result, error) {
	return r.proposeAs(ctx, m, false)
}

// proposeAs is propose, for the replica's own mutations too (system may
// write under /ctl).
func (r *Replica) proposeAs(ctx context.Context, m *fs.Mutation, system bool) (fs.Result, error) {
	if r.closed.Load() {
		return fs.Result{}, errStopped
	}
	m.System = system
	m.Time = time.Now().UnixNano()
	data, err := m.MarshalBinary()
	if err != nil {
		return fs.Result{}, &fs.Error{Kind: fs.KindBadRequest, Detail: err.Error()}
	}
	now := time.Now()
	p := &proposal{m: m, data: data, res: make(chan propResult, 1), start: now, deadline: now.Add(r.cfg.WriteTimeout)}
	if err := r.enqueue(ctx, p); err != nil {
		return fs.Result{}, err
	}
	// The loop answers TIMEOUT at p.deadline: no timer here.
	select {
	case res := <-p.res:
		return res.res, res.err
	case <-r.donec:
		return fs.Result{}, &fs.Error{Kind: fs.KindTimeout, Detail: "the replica stopped; the write's outcome is unknown"}
	case <-ctx.Done():
		return fs.Result{}, ctxErr(ctx, "the write's outcome is unknown")
	}
}

// enqueue hands p to the loop. Only when the loop's queue is full does it
// wait, up to p.deadline, ctx or the replica's end.
func (r *Replica) enqueue(ctx context.Context, p *proposal) error {
	select {
	case r.propc <- p:
		return nil
	default:
	}
	t := time.NewTimer(time.Until(p.deadline))
	defer t.Stop()
	select {
	case r.propc <- p:
		return nil
	case <-r.donec:
		return errStopped
	case <-ctx.Done():
		return ctxErr(ctx, "the write was not proposed")
	case <-t.C:
		return &fs.Error{Kind: fs.KindTimeout, Detail: "no answer in time: the write was not proposed"}
	}
}

// ctxErr turns the end of ctx into the error a client sees.
func ctxErr(ctx context.Context, what string) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return &fs.Error{Kind: fs.KindTimeout, Detail: "no answer in time: " + what}
	}
	return ctx.Err()
}

// readIndex returns a slot that every write committed before the call is
// at or below (consensus read-index), for a linearizable read.
func (r *Replica) readIndex(ctx context.Context) (uint64, error) {
	// Only a leader can confirm a read: wait for one to be known (a
	// replica just started, or an election under way).
	for r.leader.Load() == 0 {
		select {
		case <-time.After(10 * time.Millisecond):
		case <-r.donec:
			return 0, errStopped
		case <-ctx.Done():
			return 0, ctxErr(ctx, "no leader is known to confirm the read")
		}
	}
	q := &readReq{slot: make(chan uint64, 1)}
	select {
	case r.readc <- q:
	case <-r.donec:
		return 0, errStopped
	case <-ctx.Done():
		return 0, ctxErr(ctx, "the leader did not confirm the read")
	}
	select {
	case s := <-q.slot:
		if s == 0 {
			return 0, &fs.Error{Kind: fs.KindUnavailable, Detail: "no leader confirmed the read"}
		}
		return s, nil
	case <-r.donec:
		return 0, errStopped
	case <-ctx.Done():
		return 0, ctxErr(ctx, "the leader did not confirm the read")
	}
}

// waitConsistent waits until the replica has applied everything committed
// before the call.
func (r *Replica) waitConsistent(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.WriteTimeout)
	defer cancel()
	s, err := r.readIndex(ctx)
	if err != nil {
		return err
	}
	if err := r.slotN.wait(ctx, int64(s)); err != nil {
		return ctxErr(ctx, "the replica did not apply the read index in time")
	}
	return nil
}

// waitRev waits until revision rev is applied, up to the write timeout.
func (r *Replica) waitRev(ctx context.Context, rev int64) error {
	if rev <= 0 || r.revN.value() >= rev {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.WriteTimeout)
	defer cancel()
	if err := r.revN.wait(ctx, rev); err != nil {
		return ctxErr(ctx, fmt.Sprintf("revision %d is not applied here", rev))
	}
	return nil
}

// Writable reports whether a write could be committed now.
func (r *Replica) Writable() error {
	if r.closed.Load() {
		return errStopped
	}
	if r.leader.Load() == 0 {
		return &fs.Error{Kind: fs.KindReadOnly, Detail: "no leader is known: the cluster has no quorum"}
	}
	return nil
}

// Txn commits ops as one transaction and returns its revision once it is
// applied here.
func (r *Replica) Txn(ctx context.Context, ops []fs.Op) (int64, error) {
	if err := r.checkOps(ops); err != nil {
		return 0, err
	}
	res, err := r.propose(ctx, &fs.Mutation{Kind: fs.MutTxn, Ops: ops})
	return res.Rev, err
}

// checkOps enforces the limits fs leaves to the replica.
func (r *Replica) checkOps(ops []fs.Op) error {
	if len(ops) == 0 {
		return &fs.Error{Kind: fs.KindBadRequest, Detail: "a transaction needs at least one op"}
	}
	for _, op := range ops {
		if len(op.Body) > r.cfg.MaxBody {
			return &fs.Error{Kind: fs.KindTooBig, Path: op.Path,
				Detail: fmt.Sprintf("body of %d bytes is over the %d-byte limit", len(op.Body), r.cfg.MaxBody)}
		}
	}
	return nil
}

// Nop commits nothing through consensus and returns the revision applied
// here once every write acknowledged before the call is applied.
func (r *Replica) Nop(ctx context.Context) (int64, error) {
	res, err := r.propose(ctx, &fs.Mutation{Kind: fs.MutNop})
	if err != nil {
		return 0, err
	}
	return max(res.Rev, r.tree.Rev()), nil
}
