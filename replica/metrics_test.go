package replica

import (
	"context"
	"errors"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/doozerfs/doozerfs/fs"
	"github.com/doozerfs/doozerfs/wire"
)

// gather returns the metric families of r by name.
func gather(t *testing.T, r *Replica) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := r.MetricsRegistry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

// metricValue finds the sample of family name whose labels include want,
// and returns its value (a counter, a gauge, or a histogram's count).
func metricValue(t *testing.T, mfs map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	t.Helper()
	mf := mfs[name]
	if mf == nil {
		t.Fatalf("no metric %s", name)
	}
next:
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	t.Fatalf("no sample of %s with labels %v", name, want)
	return 0
}

func TestMetricsCountRequestsCommitsSyncsAndMembers(t *testing.T) {
	r := startReplica(t, testConfig(t, t.TempDir()))
	ctx := testCtx(t)
	c := dialReplica(t, r)
	for range 3 {
		if _, err := c.Set(ctx, "/m", fs.Clobber, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Set(ctx, "/m", fs.Missing, []byte("x")); !errors.Is(err, fs.ErrRevMismatch) {
		t.Fatalf("got %v, want REV_MISMATCH", err)
	}
	if _, _, err := c.Get(ctx, "/nothing", 0); !errors.Is(err, fs.ErrNoEnt) {
		t.Fatalf("got %v, want NOENT", err)
	}
	wctx, cancel := context.WithCancel(ctx)
	w, err := c.Watch(wctx, "/**", 0)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "an open watch", 5*time.Second, func() bool {
		return metricValue(t, gather(t, r), "doozerfs_watches", map[string]string{"api": "wire"}) == 1
	})
	cancel()
	w.Close()

	r.ObserveFUSE("lookup", nil, time.Millisecond)
	r.ObserveFUSE("lookup", errors.New("ENOENT"), time.Millisecond)
	r.ObserveRequest("http", "GET", &fs.Error{Kind: fs.KindNoEnt})

	m := gather(t, r)
	checks := []struct {
		name   string
		labels map[string]string
		min    float64
	}{
		{"doozerfs_requests_total", map[string]string{"api": "wire", "verb": "SET", "outcome": "ok"}, 3},
		{"doozerfs_requests_total", map[string]string{"api": "wire", "verb": "SET", "outcome": "REV_MISMATCH"}, 1},
		{"doozerfs_requests_total", map[string]string{"api": "wire", "verb": "GET", "outcome": "NOENT"}, 1},
		{"doozerfs_requests_total", map[string]string{"api": "http", "verb": "GET", "outcome": "NOENT"}, 1},
		{"doozerfs_commit_duration_seconds", nil, 4},
		{"doozerfs_wal_fsync_duration_seconds", nil, 1},
		{"doozerfs_wal_sync_records", nil, 1},
		{"doozerfs_proposal_batch_size", nil, 1},
		{"doozerfs_apply_batch_size", nil, 1},
		{"doozerfs_applied_revision", nil, 3},
		{"doozerfs_leader_changes_total", nil, 1},
		{"doozerfs_is_leader", nil, 1},
		{"doozerfs_has_leader", nil, 1},
		{"doozerfs_members", map[string]string{"role": wire.RoleVoter, "state": wire.StateAlive}, 1},
		{"doozerfs_connections", map[string]string{"api": "wire"}, 1},
		{"doozerfs_fuse_ops_total", map[string]string{"op": "lookup"}, 2},
		{"doozerfs_fuse_errors_total", map[string]string{"op": "lookup"}, 1},
		{"doozerfs_fuse_op_duration_seconds", map[string]string{"op": "lookup"}, 2},
	}
	for _, c := range checks {
		if v := metricValue(t, m, c.name, c.labels); v < c.min {
			t.Errorf("%s%v = %v, want at least %v", c.name, c.labels, v, c.min)
		}
	}
	if v := metricValue(t, m, "doozerfs_members", map[string]string{"role": wire.RoleLearner, "state": wire.StateDead}); v != 0 {
		t.Errorf("dead learners = %v, want 0", v)
	}
	if m["go_goroutines"] == nil {
		t.Error("no Go runtime metrics")
	}
}

func TestAccessFollowsTheSecrets(t *testing.T) {
	open := startReplica(t, testConfig(t, t.TempDir()))
	if a := open.Access(""); a != wire.AccessWrite {
		t.Fatalf("no secret configured: got %v, want rw", a)
	}
	cfg := testConfig(t, t.TempDir())
	cfg.Secret, cfg.ROSecret = "rw-token", "ro-token"
	r := startReplica(t, cfg)
	for tok, want := range map[string]wire.Access{"rw-token": wire.AccessWrite, "ro-token": wire.AccessRead, "": wire.AccessNone, "nope": wire.AccessNone} {
		if a := r.Access(tok); a != want {
			t.Errorf("token %q: got %v, want %v", tok, a, want)
		}
	}
	if r.MaxBody() != cfg.MaxBody {
		t.Errorf("MaxBody = %d, want %d", r.MaxBody(), cfg.MaxBody)
	}
}
