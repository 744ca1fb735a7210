package mount

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/doozerfs/doozerfs/fs"
	"github.com/doozerfs/doozerfs/mount/internal/teststore"
	"github.com/doozerfs/doozerfs/wire"
)

// replicaServer answers the client protocol from a test store, as much of
// it as a Mirror uses: SNAPSHOT, WATCH, CANCEL, TXN, SELF and the lease
// verbs. It stands in for a replica.
type replicaServer struct {
	s        *teststore.Store
	ln       net.Listener
	noLeader atomic.Bool
	tooLate  atomic.Bool // the next change ends the watches with TOO_LATE

	mu    sync.Mutex
	conns map[*wire.Conn]bool
	wg    sync.WaitGroup
}

func startReplica(t testing.TB, s *teststore.Store) *replicaServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &replicaServer{s: s, ln: ln, conns: map[*wire.Conn]bool{}}
	r.wg.Add(1)
	go r.accept()
	t.Cleanup(r.stop)
	return r
}

func (r *replicaServer) stop() {
	r.ln.Close()
	r.mu.Lock()
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

func (r *replicaServer) accept() {
	defer r.wg.Done()
	for {
		nc, err := r.ln.Accept()
		if err != nil {
			return
		}
		c := wire.NewConn(nc, 0)
		r.mu.Lock()
		r.conns[c] = true
		r.mu.Unlock()
		r.wg.Add(1)
		go r.serve(c)
	}
}

func (r *replicaServer) serve(c *wire.Conn) {
	ctx, cancel := context.WithCancel(context.Background())
	var reqs sync.WaitGroup
	defer func() {
		cancel()
		c.Close()
		reqs.Wait()
		r.wg.Done()
	}()
	if _, _, err := wire.Accept(c, &wire.Policy{Cluster: "test", Name: "r1", ID: 1}); err != nil {
		return
	}
	var mu sync.Mutex
	running := map[uint32]context.CancelFunc{}
	for {
		req := new(wire.Request)
		if err := c.ReadRequest(req); err != nil {
			return
		}
		if req.Verb == wire.VerbCancel {
			mu.Lock()
			if stop := running[req.Other]; stop != nil {
				stop()
			}
			mu.Unlock()
			c.WriteResponse(&wire.Response{Tag: req.Tag})
			continue
		}
		rctx, rcancel := context.WithCancel(ctx)
		mu.Lock()
		running[req.Tag] = rcancel
		mu.Unlock()
		reqs.Add(1)
		go func() {
			defer reqs.Done()
			defer rcancel()
			r.answer(rctx, c, req)
			mu.Lock()
			delete(running, req.Tag)
			mu.Unlock()
		}()
	}
}

func (r *replicaServer) answer(ctx context.Context, c *wire.Conn, req *wire.Request) {
	resp := &wire.Response{Tag: req.Tag}
	var err error
	switch req.Verb {
	case wire.VerbSnapshot:
		r.snapshot(c, req)
		return
	case wire.VerbWatch:
		r.watch(ctx, c, req)
		return
	case wire.VerbTxn:
		resp.Rev, err = r.s.Txn(ctx, req.Ops)
	case wire.VerbSelf:
		resp.Self = &wire.Self{Name: "r1", ID: 1, Cluster: "test", Role: wire.RoleVoter, Leader: "r1", Applied: r.s.Rev()}
		if r.noLeader.Load() {
			resp.Self.Leader = ""
		}
	case wire.VerbLeaseGrant:
		var res fs.Result
		res, err = r.s.Apply(&fs.Mutation{Kind: fs.MutLeaseGrant, TTL: int64(req.TTL)})
		resp.Lease, resp.TTL = res.Lease, req.TTL
	case wire.VerbLeaseRenew:
		_, err = r.s.Apply(&fs.Mutation{Kind: fs.MutLeaseRenew, Lease: req.Lease})
		resp.TTL = time.Second
	case wire.VerbLeaseRevoke:
		var res fs.Result
		res, err = r.s.Apply(&fs.Mutation{Kind: fs.MutLeaseRevoke, Lease: req.Lease})
		resp.Rev = res.Rev
	case wire.VerbRev, wire.VerbNop:
		resp.Rev = r.s.Rev()
	default:
		err = &fs.Error{Kind: fs.KindUnknownVerb, Detail: req.Verb.String()}
	}
	if err != nil {
		resp = wire.ErrorResponse(req.Tag, err)
	}
	c.WriteResponse(resp)
}

func (r *replicaServer) snapshot(c *wire.Conn, req *wire.Request) {
	t := r.s.Tree()
	data, err := snapshotFile(t)
	if err != nil {
		c.WriteResponse(wire.ErrorResponse(req.Tag, err))
		return
	}
	c.WriteResponse(&wire.Response{Tag: req.Tag, More: true, Size: int64(len(data))})
	for off := 0; off < len(data); off += 16 << 10 {
		end := min(off+16<<10, len(data))
		c.WriteResponse(&wire.Response{Tag: req.Tag, More: end < len(data), Body: data[off:end]})
	}
}

func (r *replicaServer) watch(ctx context.Context, c *wire.Conn, req *wire.Request) {
	g, err := fs.CompileGlob(req.Path)
	if err != nil {
		c.WriteResponse(wire.ErrorResponse(req.Tag, err))
		return
	}
	from := req.Rev
	if from <= 0 {
		from = r.s.Rev() + 1
	}
	c.WriteResponse(&wire.Response{Tag: req.Tag, More: true, Rev: from - 1})
	for {
		cur, changed := r.s.Changed()
		if cur >= from && r.tooLate.CompareAndSwap(true, false) {
			c.WriteResponse(wire.ErrorResponse(req.Tag, &fs.Error{Kind: fs.KindTooLate, Detail: "test"}))
			return
		}
		if cur >= from {
			evs, err := r.s.Tree().Events(from, g)
			if err != nil {
				c.WriteResponse(wire.ErrorResponse(req.Tag, err))
				return
			}
			var keep []fs.Event
			for _, ev := range evs {
				if ev.Rev <= cur {
					keep = append(keep, ev)
				}
			}
			if len(keep) > 0 {
				c.WriteResponse(&wire.Response{Tag: req.Tag, More: true, Rev: cur, Events: keep})
			}
			from = cur + 1
		}
		select {
		case <-changed:
		case <-ctx.Done():
			c.WriteResponse(&wire.Response{Tag: req.Tag})
			return
		}
	}
}

// mirrorHost mounts a Mirror of s, reached through a replica server, as a
// host that runs no replica would.
func mirrorHost(t testing.TB, s *teststore.Store, opts MirrorOptions, mopts Options) (*Mounted, *Mirror, *replicaServer) {
	t.Helper()
	r := startReplica(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := wire.Dial(ctx, []string{r.ln.Addr().String()}, wire.Options{Cluster: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	opts.HealthEvery = 20 * time.Millisecond
	mirror, err := NewMirror(ctx, c, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mirror.Close() })
	return mountAt(t, mirror, mopts), mirror, r
}

func TestAMirrorMountReadsWritesAndNotifiesLikeAReplicaMount(t *testing.T) {
	s := teststore.New()
	s.Set("/d/f", []byte("one\n"))
	a, _, _ := mirrorHost(t, s, MirrorOptions{}, DefaultOptions())
	b := mountAt(t, s, DefaultOptions())

	if got := mustRead(t, filepath.Join(a.Dir(), "d/f")); got != "one\n" {
		t.Errorf("the mirror reads %q", got)
	}
	before := s.Rev()
	bash(t, a.Dir(), "echo two > d/f && sed -i s/two/three/ d/f && mv d/f d/g")
	if got, _ := storeBody(s, "/d/g"); got != "three\n" || s.Rev() != before+3 {
		t.Errorf("the cluster has %q after %d revisions, want %q after 3", got, s.Rev()-before, "three\n")
	}
	if got := mustRead(t, filepath.Join(b.Dir(), "d/g")); got != "three\n" {
		t.Errorf("the other host reads %q", got)
	}
	caughtUp(t, a)
	w := watch(t, a.Dir(), "d")
	bash(t, b.Dir(), "echo four > d/g")
	w.waitFor("CLOSE_WRITE,CLOSE d/g")
	if got := mustRead(t, filepath.Join(a.Dir(), "d/g")); got != "four\n" {
		t.Errorf("the mirror reads %q after a change elsewhere", got)
	}
}

func TestAMirrorMountOfASubtreeFollowsOnlyIt(t *testing.T) {
	s := teststore.New()
	s.Set("/app/conf", []byte("a"))
	s.Set("/other", []byte("o"))
	opts := DefaultOptions()
	opts.Root = "/app"
	a, mirror, _ := mirrorHost(t, s, MirrorOptions{Root: "/app"}, opts)
	if out := bash(t, a.Dir(), "ls"); out != "conf\n" {
		t.Errorf("ls: %q", out)
	}
	s.Set("/other", []byte("changed"))
	rev := s.Set("/app/conf", []byte("b"))
	eventually(t, "the mirror to apply the change", func() bool { cur, _ := mirror.Changed(); return cur >= rev })
	if got := mustRead(t, filepath.Join(a.Dir(), "conf")); got != "b" {
		t.Errorf("conf reads %q", got)
	}
}

func TestAMirrorWithoutALeaderRefusesWritesWithEROFS(t *testing.T) {
	s := teststore.New()
	a, mirror, r := mirrorHost(t, s, MirrorOptions{}, DefaultOptions())
	r.noLeader.Store(true)
	eventually(t, "the health check", func() bool { return mirror.Writable() != nil })
	if out, err := run(t, a.Dir(), "bash", "-c", "echo x > f"); err == nil || !strings.Contains(out, "Read-only file system") {
		t.Errorf("echo without a leader: %v %q", err, out)
	}
	r.noLeader.Store(false)
	eventually(t, "the health check", func() bool { return mirror.Writable() == nil })
	bash(t, a.Dir(), "echo x > f")
}

// A mirror started while its cluster was still electing a leader used to
// refuse writes with EROFS for a whole HealthEvery (2 s) after the leader
// was known.
func TestAMirrorWritesSoonAfterALeaderIsKnown(t *testing.T) {
	s := teststore.New()
	r := startReplica(t, s)
	r.noLeader.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := wire.Dial(ctx, []string{r.ln.Addr().String()}, wire.Options{Cluster: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	mirror, err := NewMirror(ctx, c, MirrorOptions{HealthEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mirror.Close() })
	a := mountAt(t, mirror, DefaultOptions())
	eventually(t, "the health check to see no leader", func() bool { return mirror.Writable() != nil })
	r.noLeader.Store(false)
	eventually(t, "the health check to see the leader", func() bool { return mirror.Writable() == nil })
	bash(t, a.Dir(), "echo x > f")
}

// A mirror whose replica had died used to accept opens for writing until
// its next health check (up to 2 s later), each commit then failing with
// EIO or ETIMEDOUT; now the first commit that finds no replica turns
// writes to EROFS.
func TestAMirrorRefusesWritesWithEROFSOnceACommitFindsNoReplica(t *testing.T) {
	s := teststore.New()
	r := startReplica(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := wire.Dial(ctx, []string{r.ln.Addr().String()}, wire.Options{Cluster: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	mirror, err := NewMirror(ctx, c, MirrorOptions{HealthEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mirror.Close() })
	a := mountAt(t, mirror, DefaultOptions())
	eventually(t, "the first health check", func() bool { return mirror.Writable() == nil })
	bash(t, a.Dir(), "echo x > f")

	r.stop()
	_, err = mirror.Txn(ctx, []fs.Op{{Kind: fs.OpSet, Path: "/f", Rev: fs.Clobber, Body: []byte("y")}})
	if k := fs.KindOf(err); k != fs.KindUnavailable && k != fs.KindTimeout {
		t.Fatalf("Txn with the replica gone: %v, want UNAVAILABLE or TIMEOUT", err)
	}
	if err := mirror.Writable(); fs.KindOf(err) != fs.KindReadOnly {
		t.Errorf("Writable right after a commit found no replica: %v, want READONLY", err)
	}
	if out, err := run(t, a.Dir(), "bash", "-c", "echo z > f"); err == nil || !strings.Contains(out, "Read-only file system") {
		t.Errorf("echo with the replica gone: %v %q", err, out)
	}
	if got := mustRead(t, filepath.Join(a.Dir(), "f")); got != "x\n" {
		t.Errorf("f with the replica gone: %q", got)
	}
}

func TestAMirrorsEphemeralFilesGoWithItsSessionLease(t *testing.T) {
	requireTool(t, "setfattr")
	s := teststore.New()
	s.Set("/svc/me", []byte("10.0.0.2\n"))
	a, mirror, _ := mirrorHost(t, s, MirrorOptions{LeaseTTL: time.Hour}, DefaultOptions())
	bash(t, a.Dir(), "setfattr -n user.doozerfs.ephemeral -v 1 svc/me")
	if _, st, _ := s.Tree().View().Get("/svc/me"); st.Lease == 0 {
		t.Fatalf("svc/me is not bound to a lease")
	}
	if err := mirror.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Get("/svc/me"); ok {
		t.Errorf("svc/me outlived the mirror's session")
	}
}

func TestMirrorTxnReturnsOnceTheRevisionIsAppliedLocally(t *testing.T) {
	s := teststore.New()
	_, mirror, _ := mirrorHost(t, s, MirrorOptions{}, DefaultOptions())
	for i := range 20 {
		rev, err := mirror.Txn(context.Background(), []fs.Op{{Kind: fs.OpSet, Path: "/k", Rev: fs.Clobber, Body: []byte{byte(i)}}})
		if err != nil {
			t.Fatal(err)
		}
		if got := mirror.Tree().Rev(); got < rev {
			t.Fatalf("Txn returned rev %d with the mirror at %d", rev, got)
		}
	}
	_, err := mirror.Txn(context.Background(), []fs.Op{{Kind: fs.OpSet, Path: "/k", Rev: 1, Body: nil}})
	if !errors.Is(err, fs.ErrRevMismatch) {
		t.Errorf("a conditional write that fails: %v", err)
	}
}

func TestAMirrorThatFellBehindTheHistoryReloadsAndTheMountDropsItsCaches(t *testing.T) {
	s := teststore.New()
	s.Set("/d/f", []byte("one\n"))
	a, mirror, r := mirrorHost(t, s, MirrorOptions{}, DefaultOptions())
	for range 3 {
		mustRead(t, filepath.Join(a.Dir(), "d/f"))
	}
	old := mirror.Tree()
	r.tooLate.Store(true)
	s.Set("/d/f", []byte("two, longer\n"))
	eventually(t, "the mirror to reload", func() bool { return mirror.Tree() != old && mirror.Tree().Rev() == s.Rev() })
	caughtUp(t, a)
	if got := mustRead(t, filepath.Join(a.Dir(), "d/f")); got != "two, longer\n" {
		t.Errorf("after the reload the mount reads %q", got)
	}
	bash(t, a.Dir(), "echo three > d/f")
	if got, _ := storeBody(s, "/d/f"); got != "three\n" {
		t.Errorf("after the reload a write gives %q", got)
	}
}
