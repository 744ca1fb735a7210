package replica

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/doozerfs/doozerfs/fs"
	"github.com/doozerfs/doozerfs/replica/wal"
	"github.com/doozerfs/doozerfs/wire"
)

// metrics are the replica's Prometheus collectors. Each replica owns its
// own registry (MetricsRegistry), so that many replicas can live in one
// process (tests) without clashing. docs/http.md lists every metric.
type metrics struct {
	reg *prometheus.Registry

	requests      *prometheus.CounterVec   // api, verb, outcome
	conns         *prometheus.GaugeVec     // api
	watches       *prometheus.GaugeVec     // api
	commit        prometheus.Histogram     // propose to apply, seconds
	fsync         prometheus.Histogram     // fdatasync of WAL data, seconds
	fsyncErrors   prometheus.Counter       // failed fdatasyncs
	syncRecords   prometheus.Histogram     // records made durable per fdatasync (group commit)
	propBatch     prometheus.Histogram     // proposals handed to consensus per loop turn
	applyBatch    prometheus.Histogram     // values applied per Ready
	leaderChanges prometheus.Counter       // a new leader seen
	fuseOps       *prometheus.CounterVec   // op
	fuseErrors    *prometheus.CounterVec   // op
	fuseDur       *prometheus.HistogramVec // op

	// Owned by the loop goroutine.
	lastLeader uint64
}

func newMetrics() *metrics {
	const ns = "doozerfs"
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "requests_total",
			Help: "Client requests answered, by API (wire, http), verb and outcome (ok or the error kind)."},
			[]string{"api", "verb", "outcome"}),
		conns: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "connections",
			Help: "Open connections, by API: wire (clients, peers and gossip streams on the replica's port) and http."},
			[]string{"api"}),
		watches: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "watches",
			Help: "Open WATCH streams, by API (wire, http)."},
			[]string{"api"}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "commit_duration_seconds",
			Help:    "Time from proposing a write on this replica to applying it here (chosen by a majority, durable, applied).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
		fsync: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "wal_fsync_duration_seconds",
			Help:    "Time spent in each fdatasync of WAL data.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
		fsyncErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "wal_fsync_errors_total",
			Help: "fdatasyncs of WAL data that failed."}),
		syncRecords: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "wal_sync_records",
			Help:    "WAL records made durable by one fdatasync (the group-commit batch).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 13)}),
		propBatch: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "proposal_batch_size",
			Help:    "Proposals the replica's loop hands to consensus in one turn.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 13)}),
		applyBatch: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "apply_batch_size",
			Help:    "Chosen values applied to the tree in one go.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 13)}),
		leaderChanges: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "leader_changes_total",
			Help: "Times this replica has seen a new leader."}),
		fuseOps: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "fuse_ops_total",
			Help: "FUSE requests answered by the mount, by op."}, []string{"op"}),
		fuseErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "fuse_errors_total",
			Help: "FUSE requests answered with an error, by op."}, []string{"op"}),
		fuseDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "fuse_op_duration_seconds",
			Help:    "Time to answer a FUSE request, by op.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 4, 10)}, []string{"op"}),
	}
	m.reg.MustRegister(m.requests, m.conns, m.watches, m.commit, m.fsync, m.fsyncErrors, m.syncRecords,
		m.propBatch, m.applyBatch, m.leaderChanges, m.fuseOps, m.fuseErrors, m.fuseDur,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, api := range []string{"wire", "http"} {
		m.conns.WithLabelValues(api)
		m.watches.WithLabelValues(api)
	}
	return m
}

// register adds the collectors that read the replica's state at scrape
// time; r must be fully built.
func (m *metrics) register(r *Replica) {
	const ns = "doozerfs"
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: name, Help: help}, f)
	}
	m.reg.MustRegister(
		gauge("applied_revision", "The revision applied to this replica's tree.",
			func() float64 { return float64(r.tree.Rev()) }),
		gauge("oldest_revision", "The oldest revision still readable here (the history window).",
			func() float64 { return float64(r.tree.Oldest()) }),
		gauge("snapshot_revision", "The revision of the newest snapshot saved here.",
			func() float64 { return float64(r.snapRev.Load()) }),
		gauge("has_leader", "1 if this replica knows a leader (writes can be committed), else 0.",
			func() float64 { return b2f(r.leader.Load() != 0) }),
		gauge("is_leader", "1 if this replica is the leader, else 0.",
			func() float64 { return b2f(r.leader.Load() == r.id) }),
		&membersCollector{r: r, desc: prometheus.NewDesc(ns+"_members",
			"Members of the cluster as this replica sees them, by role and state.", []string{"role", "state"}, nil)},
	)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// membersCollector reports the membership at scrape time.
type membersCollector struct {
	r    *Replica
	desc *prometheus.Desc
}

func (c *membersCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *membersCollector) Collect(ch chan<- prometheus.Metric) {
	type key struct{ role, state string }
	n := map[key]int{}
	for _, role := range []string{wire.RoleVoter, wire.RoleLearner} {
		for _, st := range []string{wire.StateAlive, wire.StateSuspect, wire.StateDead} {
			n[key{role, st}] = 0
		}
	}
	for _, m := range c.r.members() {
		n[key{m.Role, m.State}]++
	}
	for k, v := range n {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(v), k.role, k.state)
	}
}

// walSync is the WAL's OnSync hook.
func (m *metrics) walSync(si wal.SyncInfo) {
	if si.Err != nil {
		m.fsyncErrors.Inc()
		return
	}
	m.fsync.Observe(si.Took.Seconds())
	m.syncRecords.Observe(float64(si.Records))
}

// leaderSeen counts a change of leader; called by the loop with the
// leader consensus reports (0: none known).
func (m *metrics) leaderSeen(id uint64) {
	if id != 0 && id != m.lastLeader {
		m.lastLeader = id
		m.leaderChanges.Inc()
	}
}

// committed records the commit latency of a proposal made here.
func (m *metrics) committed(p *proposal) {
	if !p.start.IsZero() {
		m.commit.Observe(time.Since(p.start).Seconds())
	}
}

// request counts one answered wire request.
func (m *metrics) request(v wire.Verb, err error) {
	verb := "UNKNOWN"
	if v.Valid() {
		verb = v.String()
	}
	m.requests.WithLabelValues("wire", verb, outcome(err)).Inc()
}

// outcome is the outcome label of an answer: "ok" or the error's kind.
func outcome(err error) string {
	if err == nil {
		return "ok"
	}
	var fe *fs.Error
	if errors.As(err, &fe) {
		if fe == nil {
			return "ok"
		}
		return fe.Kind.String()
	}
	return fs.KindOf(err).String()
}

// MetricsRegistry returns the registry holding this replica's metrics,
// for a /metrics endpoint (promhttp.HandlerFor). Front ends may register
// their own collectors on it.
func (r *Replica) MetricsRegistry() *prometheus.Registry { return r.metrics.reg }

// ObserveRequest counts one request answered by a front end other than the
// wire server: api names it ("http"), verb is the protocol verb it stands
// for (GET, SET, DEL, WATCH, ...), err its outcome.
func (r *Replica) ObserveRequest(api, verb string, err error) {
	r.metrics.requests.WithLabelValues(api, verb, outcome(err)).Inc()
}

// TrackConn counts an open connection of api until done is called.
func (r *Replica) TrackConn(api string) (done func()) {
	g := r.metrics.conns.WithLabelValues(api)
	g.Inc()
	return g.Dec
}

// TrackWatch counts an open watch of api until done is called.
func (r *Replica) TrackWatch(api string) (done func()) {
	g := r.metrics.watches.WithLabelValues(api)
	g.Inc()
	return g.Dec
}

// ObserveFUSE records one FUSE request answered by a mount of this
// replica; it is mount.Options.Observe.
func (r *Replica) ObserveFUSE(op string, err error, d time.Duration) {
	m := r.metrics
	m.fuseOps.WithLabelValues(op).Inc()
	if err != nil {
		m.fuseErrors.WithLabelValues(op).Inc()
	}
	m.fuseDur.WithLabelValues(op).Observe(d.Seconds())
}
