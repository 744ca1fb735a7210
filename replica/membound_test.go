package replica

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/doozerfs/doozerfs/fs"
)

// TestBigWritesKeepHistoryAndLogBounded: allowed writes of big bodies
// (issue 10) keep in memory at most --history-bytes of superseded bodies
// and about --snapshot-bytes of log, however many revisions --history and
// --snapshot-every would allow: the oldest revisions become TOO_LATE and a
// snapshot compacts the log by bytes, not by slot count.
func TestBigWritesKeepHistoryAndLogBounded(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.History = 100000
	cfg.HistoryBytes = 2 << 20
	cfg.SnapshotEvery = 1 << 40
	cfg.SnapshotBytes = 4 << 20
	r := startReplica(t, cfg)
	c := dialReplica(t, r)
	ctx := testCtx(t)
	body := bytes.Repeat([]byte{'b'}, 256<<10)
	var first int64
	for i := range 100 { // 25 MiB in all
		rev, err := c.Set(ctx, fmt.Sprintf("/big/%d", i%4), fs.Clobber, body)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = rev
		}
	}
	if got, bound := r.tree.HistoryBytes(), cfg.HistoryBytes+int64(len(body))+4096; got > bound {
		t.Errorf("history holds %d bytes, over %d (bound + one body)", got, bound)
	}
	if _, _, err := c.Get(ctx, "/big/0", first); fs.KindOf(err) != fs.KindTooLate {
		t.Errorf("GET at the first big write's revision: %v, want TOO_LATE", err)
	}
	waitFor(t, "a snapshot by bytes", 30*time.Second, func() bool { return r.snapRev.Load() > 0 })
	if st := r.consensusStatus(); st.Snapshot == 0 {
		t.Errorf("consensus log not compacted: %+v", st)
	}
}
