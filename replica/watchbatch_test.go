package replica

import (
	"fmt"
	"testing"
	"time"

	"github.com/doozerfs/doozerfs/fs"
)

// The loop applies a whole batch of chosen values to the tree before it
// announces the new revision, so a WATCH that wakes up in between finds
// the tree ahead of the revision it was told. It must send those events
// once: found by the chaos harness (replica/chaos) as WATCH streams that
// repeated a revision or two, out of order, under load.
func TestWatchSendsEventsOnceWhenTheTreeIsAheadOfTheAnnouncedRevision(t *testing.T) {
	r := startReplica(t, testConfig(t, t.TempDir()))
	ctx := testCtx(t)
	c := dialReplica(t, r)
	if _, err := c.Set(ctx, "/w/0", fs.Clobber, []byte("0")); err != nil {
		t.Fatal(err)
	}
	w, err := c.Watch(ctx, "/w/*", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var got []int64
	next := func(upTo int64) {
		t.Helper()
		for len(got) == 0 || got[len(got)-1] < upTo {
			ev, err := w.Next(ctx)
			if err != nil {
				t.Fatalf("after %v: %v", got, err)
			}
			got = append(got, ev.Rev)
		}
	}
	next(1)
	// Apply two revisions as one batch would, but announce only the
	// first: the watch sees the tree at rev 3 and is told rev 2. (No write
	// is in flight, so the loop does not touch the tree meanwhile.)
	for i := 1; i <= 2; i++ {
		m := &fs.Mutation{Kind: fs.MutTxn, Time: time.Now().UnixNano(),
			Ops: []fs.Op{{Kind: fs.OpSet, Path: fmt.Sprintf("/w/%d", i), Rev: fs.Clobber, Body: []byte("x")}}}
		if _, err := r.tree.Apply(m); err != nil {
			t.Fatal(err)
		}
	}
	r.revN.advance(2)
	next(3)
	r.revN.advance(3)
	rev, err := c.Set(ctx, "/w/3", fs.Clobber, []byte("3"))
	if err != nil {
		t.Fatal(err)
	}
	next(rev)
	want := []int64{1, 2, 3, rev}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("the watch delivered revs %v, want %v", got, want)
	}
}
