package wire

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doozerfs/doozerfs/fs"
)

// testCtx bounds a test, so that a bug shows as a failure, not a hang.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func dial(t *testing.T, addrs ...string) *Client {
	t.Helper()
	c, err := Dial(testCtx(t), addrs, Options{Cluster: "test", Name: t.Name(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// must takes a call's two results and returns a function that fails the
// test on the error or returns the value: v := must(c.Rev(ctx))(t).
func must[T any](v T, err error) func(*testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func TestClientSpeaksEveryVerb(t *testing.T) {
	ctx := testCtx(t)
	f := startFake(t, newFakeStore(), "r1")
	c := dial(t, f.addr())

	rev := must(c.Set(ctx, "/app/db", fs.Missing, []byte("x\n")))(t)
	body, st := must2(c.Get(ctx, "/app/db", 0))(t)
	if string(body) != "x\n" || st.Rev != rev || st.Type != fs.TypeFile || st.Size != 2 {
		t.Errorf("Get: got %q %+v, want \"x\\n\" at rev %d", body, st, rev)
	}
	if got := must(c.Stat(ctx, "/app", 0))(t); got.Type != fs.TypeDir || got.Children != 1 {
		t.Errorf("Stat: got %+v, want a directory with one child", got)
	}
	must(c.Mkdir(ctx, "/app/conf"))(t)
	want := []fs.DirEntry{{Name: "conf", Type: fs.TypeDir}, {Name: "db", Type: fs.TypeFile}}
	if got := must(c.GetDir(ctx, "/app", 0))(t); !reflect.DeepEqual(got, want) {
		t.Errorf("GetDir: got %+v, want %+v", got, want)
	}
	txnRev := must(c.Txn(ctx, []fs.Op{
		{Kind: fs.OpCheck, Path: "/app/db", Rev: rev},
		{Kind: fs.OpSet, Path: "/app/conf/a", Rev: fs.Missing, Body: []byte("1")},
	}))(t)
	files := must(c.Walk(ctx, "/app/**", 0))(t)
	if len(files) != 2 || files[0].Path != "/app/conf/a" || string(files[1].Body) != "x\n" {
		t.Errorf("Walk: got %+v", files)
	}
	if got := must(c.Rev(ctx))(t); got != txnRev {
		t.Errorf("Rev: got %d, want %d", got, txnRev)
	}
	if err := c.Nop(ctx); err != nil {
		t.Errorf("Nop: %v", err)
	}
	delRev := must(c.Del(ctx, "/app/db", fs.Clobber))(t)
	ev := must(c.Wait(ctx, "/app/*", delRev))(t)
	if ev.Kind != fs.EventDel || ev.Path != "/app/db" || ev.Rev != delRev {
		t.Errorf("Wait: got %+v, want the delete of /app/db at %d", ev, delRev)
	}
	if got := must(c.Members(ctx))(t); len(got) != 1 || got[0].Name != "r1" || !got[0].Leader {
		t.Errorf("Members: got %+v", got)
	}
	if got := must(c.Self(ctx))(t); got.Name != "r1" || got.Cluster != "test" {
		t.Errorf("Self: got %+v", got)
	}
	if c.Seen() != delRev {
		t.Errorf("Seen: got %d, want %d", c.Seen(), delRev)
	}
}

// must2 is must for Get's three results.
func must2(b []byte, st fs.Stat, err error) func(*testing.T) ([]byte, fs.Stat) {
	return func(t *testing.T) ([]byte, fs.Stat) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return b, st
	}
}

func TestLeasesBindFilesAndGoWithThem(t *testing.T) {
	ctx := testCtx(t)
	f := startFake(t, newFakeStore(), "r1")
	c := dial(t, f.addr())
	id := must(c.LeaseGrant(ctx, 3*time.Second))(t)
	must(c.SetLease(ctx, "/svc/web/a", fs.Missing, []byte("10.0.0.1"), id))(t)
	if ttl := must(c.LeaseRenew(ctx, id))(t); ttl != 3*time.Second {
		t.Errorf("LeaseRenew: got %v, want 3s", ttl)
	}
	if err := c.LeaseRevoke(ctx, id); err != nil {
		t.Fatalf("LeaseRevoke: %v", err)
	}
	if _, _, err := c.Get(ctx, "/svc/web/a", 0); !errors.Is(err, fs.ErrNoEnt) {
		t.Errorf("Get after revoke: got %v, want NOENT", err)
	}
	if _, err := c.LeaseRenew(ctx, id); !errors.Is(err, fs.ErrNoLease) {
		t.Errorf("LeaseRenew after revoke: got %v, want NO_LEASE", err)
	}
	if _, err := c.LeaseGrant(ctx, 0); !errors.Is(err, fs.ErrBadRequest) {
		t.Errorf("LeaseGrant(0): got %v, want BAD_REQUEST", err)
	}
}

func TestStoreErrorsComeBackAsFsErrors(t *testing.T) {
	ctx := testCtx(t)
	f := startFake(t, newFakeStore(), "r1")
	c := dial(t, f.addr())
	must(c.Set(ctx, "/a", fs.Missing, []byte("1")))(t)
	_, err := c.Set(ctx, "/a", fs.Missing, []byte("2"))
	var fe *fs.Error
	if !errors.Is(err, fs.ErrRevMismatch) || !errors.As(err, &fe) || fe.Path != "/a" {
		t.Errorf("Set over an existing file with rev 0: got %v, want REV_MISMATCH on /a", err)
	}
	if _, _, err := c.Get(ctx, "/missing", 0); !errors.Is(err, fs.ErrNoEnt) {
		t.Errorf("Get of a missing file: got %v, want NOENT", err)
	}
	if _, err := c.Set(ctx, "/ctl/cluster", fs.Clobber, nil); !errors.Is(err, fs.ErrPermission) {
		t.Errorf("Set under /ctl: got %v, want PERMISSION", err)
	}
	if _, err := c.MkdirRev(ctx, "/", fs.Missing); !errors.Is(err, fs.ErrRevMismatch) {
		t.Errorf("MkdirRev of an existing directory: got %v, want REV_MISMATCH", err)
	}
}

func TestManyConcurrentCallsShareOneConnection(t *testing.T) {
	ctx := testCtx(t)
	f := startFake(t, newFakeStore(), "r1")
	const n = 64
	var mu sync.Mutex
	arrived := 0
	all := make(chan struct{})
	// Hold every GET until all n are in: only a pipelining client passes.
	f.hook = func(ctx context.Context, req *Request) {
		if req.Verb != VerbGet {
			return
		}
		mu.Lock()
		if arrived++; arrived == n {
			close(all)
		}
		mu.Unlock()
		select {
		case <-all:
		case <-ctx.Done():
		}
	}
	c := dial(t, f.addr())
	must(c.Set(ctx, "/k", fs.Clobber, []byte("v")))(t)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if body, _, err := c.Get(ctx, "/k", 0); err != nil || string(body) != "v" {
				t.Errorf("Get: got %q, %v", body, err)
			}
		}()
	}
	wg.Wait()
	if got := f.connections(); got != 1 {
		t.Errorf("got %d connections, want 1", got)
	}
}

// blockVerb makes f hold requests of verb v until they are cancelled,
// reporting each one's tag on the returned channel.
func blockVerb(f *fakeServer, v Verb) <-chan uint32 {
	entered := make(chan uint32, 16)
	f.hook = func(ctx context.Context, req *Request) {
		if req.Verb == v {
			entered <- req.Tag
			<-ctx.Done()
		}
	}
	return entered
}

func TestCancelledCallReturnsContextErrorAndIsCancelledOnTheReplica(t *testing.T) {
	f := startFake(t, newFakeStore(), "r1")
	entered := blockVerb(f, VerbGet)
	f.cancelc = make(chan uint32, 4)
	c := dial(t, f.addr())
	ctx, cancel := context.WithCancel(testCtx(t))
	done := make(chan error, 1)
	go func() {
		_, _, err := c.Get(ctx, "/x", 0)
		done <- err
	}()
	tag := <-entered
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
	if got := <-f.cancelc; got != tag {
		t.Errorf("replica got CANCEL of tag %d, want %d", got, tag)
	}
	if _, err := c.Rev(testCtx(t)); err != nil {
		t.Errorf("the connection should still work: %v", err)
	}
}

func TestWatchStreamsEventsUntilClosed(t *testing.T) {
	ctx := testCtx(t)
	f := startFake(t, newFakeStore(), "r1")
	f.cancelc = make(chan uint32, 4)
	c := dial(t, f.addr())
	must(c.Set(ctx, "/w/before", fs.Clobber, []byte("0")))(t)
	w := must(c.Watch(ctx, "/w/*", 0))(t)
	r1 := must(c.Set(ctx, "/w/a", fs.Clobber, []byte("1")))(t)
	must(c.Set(ctx, "/other", fs.Clobber, []byte("-")))(t)
	r3 := must(c.Txn(ctx, []fs.Op{
		{Kind: fs.OpSet, Path: "/w/b", Rev: fs.Clobber, Body: []byte("2")},
		{Kind: fs.OpDel, Path: "/w/a", Rev: fs.Clobber},
	}))(t)
	ev := must(w.Next(ctx))(t)
	if ev.Rev != r1 || ev.Path != "/w/a" || ev.Kind != fs.EventSet || string(ev.Body) != "1" {
		t.Errorf("first event: got %+v, want the set of /w/a at %d", ev, r1)
	}
	batch := must(w.NextBatch(ctx))(t)
	if len(batch) != 2 || batch[0].Rev != r3 || batch[1].Rev != r3 || batch[1].Kind != fs.EventDel {
		t.Errorf("transaction's batch: got %+v, want its two events at %d", batch, r3)
	}
	w.Close()
	if _, err := w.Next(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Next after Close: got %v, want ErrClosed", err)
	}
	watches := f.requests(VerbWatch)
	if got := <-f.cancelc; len(watches) != 1 || got != watches[0].Tag {
		t.Errorf("replica got CANCEL of tag %d, want the WATCH's %+v", got, watches)
	}
}

func TestEndingTheWatchContextCancelsTheWatchOnTheReplica(t *testing.T) {
	f := startFake(t, newFakeStore(), "r1")
	f.cancelc = make(chan uint32, 4)
	c := dial(t, f.addr())
	ctx, cancel := context.WithCancel(testCtx(t))
	w := must(c.Watch(ctx, "/**", 0))(t)
	cancel()
	if got, watches := <-f.cancelc, f.requests(VerbWatch); got != watches[0].Tag {
		t.Errorf("replica got CANCEL of tag %d, want the WATCH's %d", got, watches[0].Tag)
	}
	if _, err := w.Next(testCtx(t)); !errors.Is(err, context.Canceled) {
		t.Errorf("Next: got %v, want context.Canceled", err)
	}
}

func TestWatchFromAnOldRevisionReplaysHistory(t *testing.T) {
	ctx := testCtx(t)
	f := startFake(t, newFakeStore(), "r1")
	c := dial(t, f.addr())
	r1 := must(c.Set(ctx, "/h", fs.Clobber, []byte("1")))(t)
	must(c.Set(ctx, "/h", fs.Clobber, []byte("2")))(t)
	w := must(c.Watch(ctx, "/h", r1))(t)
	defer w.Close()
	for _, want := range []string{"1", "2"} {
		if ev := must(w.Next(ctx))(t); string(ev.Body) != want {
			t.Errorf("got body %q, want %q", ev.Body, want)
		}
	}
}

func TestWatchBeforeTheHistoryWindowIsTooLate(t *testing.T) {
	store := newFakeStore()
	store.oldest = 5
	f := startFake(t, store, "r1")
	c := dial(t, f.addr())
	if _, err := c.Watch(testCtx(t), "/**", 2); !errors.Is(err, fs.ErrTooLate) {
		t.Errorf("got %v, want TOO_LATE", err)
	}
}

func TestSlowWatchReaderGetsEveryEventAfterOverflow(t *testing.T) {
	old := watchBudget
	watchBudget = 400
	defer func() { watchBudget = old }()
	ctx := testCtx(t)
	f := startFake(t, newFakeStore(), "r1")
	c := dial(t, f.addr())
	w := must(c.Watch(ctx, "/s/*", 0))(t)
	defer w.Close()
	// Each event is let arrive before the next write, so that the replica
	// cannot coalesce them into one response (a first batch is always
	// taken whatever its size), until the budget overflows and the stream
	// stops.
	delivered := func(rev int64) {
		for {
			w.mu.Lock()
			done := w.next > rev || w.stream == nil
			w.mu.Unlock()
			if done {
				return
			}
			select {
			case <-w.notifyc:
			case <-ctx.Done():
				t.Fatalf("event of revision %d never arrived", rev)
			}
		}
	}
	var want []int64
	for i := range 40 {
		rev := must(c.Set(ctx, fmt.Sprintf("/s/%d", i), fs.Clobber, []byte("body")))(t)
		want = append(want, rev)
		delivered(rev)
	}
	var got []int64
	for len(got) < len(want) {
		got = append(got, must(w.Next(ctx))(t).Rev)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got revisions %v, want %v", got, want)
	}
	if n := len(f.requests(VerbWatch)); n < 2 {
		t.Errorf("got %d WATCH requests, want the stream restarted after overflowing", n)
	}
}

func TestClientFailsOverToTheNextAddress(t *testing.T) {
	ctx := testCtx(t)
	store := newFakeStore()
	a, b := startFake(t, store, "a"), startFake(t, store, "b")
	c := dial(t, a.addr(), b.addr())
	must(c.Set(ctx, "/k", fs.Clobber, []byte("v")))(t)
	if c.Addr() != a.addr() {
		t.Fatalf("Addr: got %s, want the first address %s", c.Addr(), a.addr())
	}
	a.kill()
	body, _ := must2(c.Get(ctx, "/k", 0))(t)
	if string(body) != "v" || c.Addr() != b.addr() {
		t.Errorf("after killing a: got %q from %s, want \"v\" from %s", body, c.Addr(), b.addr())
	}
}

func TestWriteInFlightWhenTheConnectionDiesIsTimeoutAndNotRetried(t *testing.T) {
	store := newFakeStore()
	a, b := startFake(t, store, "a"), startFake(t, store, "b")
	entered := blockVerb(a, VerbSet)
	c := dial(t, a.addr(), b.addr())
	done := make(chan error, 1)
	go func() {
		_, err := c.Set(testCtx(t), "/k", fs.Clobber, []byte("v"))
		done <- err
	}()
	<-entered
	a.kill()
	if err := <-done; !errors.Is(err, fs.ErrTimeout) {
		t.Errorf("got %v, want TIMEOUT (outcome unknown)", err)
	}
	if got := b.requests(VerbSet); len(got) != 0 {
		t.Errorf("the write was sent again to b: %+v", got)
	}
}

func TestReadInFlightWhenTheConnectionDiesIsRetriedElsewhere(t *testing.T) {
	ctx := testCtx(t)
	store := newFakeStore()
	a, b := startFake(t, store, "a"), startFake(t, store, "b")
	c := dial(t, a.addr(), b.addr())
	must(c.Set(ctx, "/k", fs.Clobber, []byte("v")))(t)
	entered := blockVerb(a, VerbGet)
	done := make(chan error, 1)
	go func() {
		body, _, err := c.Get(ctx, "/k", 0)
		if err == nil && string(body) != "v" {
			err = fmt.Errorf("got body %q", body)
		}
		done <- err
	}()
	<-entered
	a.kill()
	if err := <-done; err != nil {
		t.Errorf("Get across the failover: %v", err)
	}
}

func TestReadsCarryTheHighestRevisionSeenAcrossFailover(t *testing.T) {
	ctx := testCtx(t)
	store := newFakeStore()
	a, b := startFake(t, store, "a"), startFake(t, store, "b")
	c := dial(t, a.addr(), b.addr())
	var last int64
	for i := range 5 {
		last = must(c.Set(ctx, "/k", fs.Clobber, []byte{byte(i)}))(t)
	}
	a.kill()
	must2(c.Get(ctx, "/k", 0))(t)
	gets := b.requests(VerbGet)
	if len(gets) != 1 || gets[0].MinRev != last {
		t.Errorf("b got GETs %+v, want one with min-rev %d", gets, last)
	}
	if c.Seen() != last {
		t.Errorf("Seen: got %d, want %d", c.Seen(), last)
	}
}

func TestWatchResumesAfterFailoverWithoutGapsOrRepeats(t *testing.T) {
	ctx := testCtx(t)
	store := newFakeStore()
	a, b := startFake(t, store, "a"), startFake(t, store, "b")
	c := dial(t, a.addr(), b.addr())
	w := must(c.Watch(ctx, "/w", 0))(t)
	defer w.Close()
	r1 := must(c.Set(ctx, "/w", fs.Clobber, []byte("1")))(t)
	if ev := must(w.Next(ctx))(t); ev.Rev != r1 {
		t.Fatalf("got rev %d, want %d", ev.Rev, r1)
	}
	a.kill()
	r2 := must(store.apply([]fs.Op{{Kind: fs.OpSet, Path: "/w", Rev: fs.Clobber, Body: []byte("2")}}))(t)
	r3 := must(store.apply([]fs.Op{{Kind: fs.OpSet, Path: "/w", Rev: fs.Clobber, Body: []byte("3")}}))(t)
	for _, want := range []int64{r2, r3} {
		if ev := must(w.Next(ctx))(t); ev.Rev != want {
			t.Errorf("got rev %d, want %d", ev.Rev, want)
		}
	}
	if got := b.requests(VerbWatch); len(got) != 1 || got[0].Rev != r1+1 {
		t.Errorf("b got WATCHes %+v, want one from rev %d", got, r1+1)
	}
}

func TestNoReachableReplicaIsUnavailable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = Dial(testCtx(t), []string{addr}, Options{})
	if !errors.Is(err, fs.ErrUnavailable) {
		t.Errorf("Dial: got %v, want UNAVAILABLE", err)
	}
	f := startFake(t, newFakeStore(), "r1")
	c := dial(t, f.addr())
	f.kill()
	if _, err := c.Rev(testCtx(t)); !errors.Is(err, fs.ErrUnavailable) {
		t.Errorf("Rev with the only replica dead: got %v, want UNAVAILABLE", err)
	}
}

func TestBadSecretIsPermission(t *testing.T) {
	f := startFake(t, newFakeStore(), "r1")
	f.policy.Secret = "s3cret"
	_, err := Dial(testCtx(t), []string{f.addr()}, Options{Secret: "guess"})
	if !errors.Is(err, fs.ErrPermission) {
		t.Errorf("got %v, want PERMISSION", err)
	}
	c, err := Dial(testCtx(t), []string{f.addr()}, Options{Secret: "s3cret"})
	if err != nil {
		t.Fatalf("with the right secret: %v", err)
	}
	c.Close()
}

func TestSnapshotStreamsEveryByteWithProgress(t *testing.T) {
	f := startFake(t, newFakeStore(), "r1")
	c := dial(t, f.addr())
	var buf bytes.Buffer
	var last, total int64
	calls := 0
	err := c.Snapshot(testCtx(t), &buf, func(done, all int64) {
		calls++
		last, total = done, all
	})
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	if !bytes.Equal(buf.Bytes(), snapshotData) {
		t.Errorf("got %d bytes, want the replica's %d", buf.Len(), len(snapshotData))
	}
	if n := int64(len(snapshotData)); last != n || total != n || calls < 2 {
		t.Errorf("progress: last (%d, %d) after %d calls, want (%d, %d)", last, total, calls, n, n)
	}
	if got := f.connections(); got != 2 {
		t.Errorf("got %d connections, want 2 (the snapshot has its own)", got)
	}
}

func TestCloseFailsCallsInFlightAndLater(t *testing.T) {
	f := startFake(t, newFakeStore(), "r1")
	entered := blockVerb(f, VerbGet)
	c := dial(t, f.addr())
	w := must(c.Watch(testCtx(t), "/**", 0))(t)
	done := make(chan error, 1)
	go func() {
		_, _, err := c.Get(testCtx(t), "/x", 0)
		done <- err
	}()
	<-entered
	c.Close()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Errorf("call in flight: got %v, want ErrClosed", err)
	}
	if _, err := c.Rev(testCtx(t)); !errors.Is(err, ErrClosed) {
		t.Errorf("call after Close: got %v, want ErrClosed", err)
	}
	if _, err := w.Next(testCtx(t)); !errors.Is(err, ErrClosed) {
		t.Errorf("watch after Close: got %v, want ErrClosed", err)
	}
}

func TestRequestOverTheFrameLimitIsTooBigAndNotSent(t *testing.T) {
	f := startFake(t, newFakeStore(), "r1")
	c, err := Dial(testCtx(t), []string{f.addr()}, Options{MaxFrame: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Set(testCtx(t), "/big", fs.Clobber, make([]byte, 2000)); !errors.Is(err, fs.ErrTooBig) {
		t.Errorf("got %v, want TOO_BIG", err)
	}
	if got := f.requests(VerbSet); len(got) != 0 {
		t.Errorf("the replica got %+v", got)
	}
	if _, err := c.Rev(testCtx(t)); err != nil {
		t.Errorf("the connection should still work: %v", err)
	}
}

func TestConsistentViewMarksItsReads(t *testing.T) {
	ctx := testCtx(t)
	f := startFake(t, newFakeStore(), "r1")
	c := dial(t, f.addr())
	must(c.Set(ctx, "/k", fs.Clobber, nil))(t)
	must2(c.Consistent().Get(ctx, "/k", 0))(t)
	must2(c.Get(ctx, "/k", 0))(t)
	gets := f.requests(VerbGet)
	if len(gets) != 2 || !gets[0].Consistent || gets[1].Consistent {
		t.Errorf("got GETs %+v, want the first consistent and the second not", gets)
	}
}

// TestServerHelpersAnswerGarbageAndCarryOn drives the fake server, which
// is built from Accept, ReadRequest, ErrorResponse and WriteResponse as a
// replica would be, with hostile frames.
func TestServerHelpersAnswerGarbageAndCarryOn(t *testing.T) {
	f := startFake(t, newFakeStore(), "r1")
	nc, err := net.Dial("tcp", f.addr())
	if err != nil {
		t.Fatal(err)
	}
	c := NewConn(nc, 0)
	defer c.Close()
	if _, err := Handshake(testCtx(t), c, Hello{Kind: ConnClient}); err != nil {
		t.Fatal(err)
	}
	for _, frame := range []string{"\xc1", "\x82\xa1t\x07\xa1v\xcc\xfe", "\x81\xa1t\x08", "\x83\xa1t\x09\xa1v\x01\xa1p\x05"} {
		c.WriteFrame([]byte(frame))
	}
	nc.Write([]byte{0, 0, 0, 0}) // an empty frame
	want := []struct {
		tag  uint32
		kind fs.Kind
	}{{0, fs.KindBadRequest}, {7, fs.KindUnknownVerb}, {8, fs.KindUnknownVerb}, {9, fs.KindBadRequest}, {0, fs.KindBadRequest}}
	for _, w := range want {
		var resp Response
		if err := c.ReadResponse(&resp); err != nil {
			t.Fatal(err)
		}
		if resp.Tag != w.tag || resp.Err == nil || resp.Err.Kind != w.kind {
			t.Errorf("got tag %d error %v, want tag %d %v", resp.Tag, resp.Err, w.tag, w.kind)
		}
	}
	c.WriteRequest(&Request{Tag: 10, Verb: VerbRev})
	var resp Response
	if err := c.ReadResponse(&resp); err != nil || resp.Tag != 10 || resp.Err != nil {
		t.Errorf("a good request after the garbage: got %+v, %v", resp, err)
	}
}

func TestCloseEndsEveryGoroutineOfTheClient(t *testing.T) {
	ctx := testCtx(t)
	store := newFakeStore()
	a, b := startFake(t, store, "a"), startFake(t, store, "b")
	c, err := Dial(ctx, []string{a.addr(), b.addr()}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	must(c.Set(ctx, "/k", fs.Clobber, nil))(t)
	w := must(c.Watch(ctx, "/**", 0))(t)
	a.kill() // a broken connection's goroutines must end too
	must(c.Rev(ctx))(t)
	c.Close()
	w.Close()
	// Close has joined the goroutines; a joined goroutine may still be
	// returning from its last call, so give such ones a moment to vanish.
	var left string
	for i := 0; i < 1000; i++ {
		if left = clientGoroutines(); left == "" {
			return
		}
		runtime.Gosched()
	}
	t.Errorf("goroutines of the client left after Close:\n%s", left)
}

// clientGoroutines returns the stacks of goroutines running Client code.
func clientGoroutines() string {
	buf := make([]byte, 1<<20)
	var out []string
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "wire.(*clientConn)") || strings.Contains(g, "wire.(*session)") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

func TestClientSpeaksTLS(t *testing.T) {
	ctx := testCtx(t)
	serverTLS, clientTLS := testTLS(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := serveFake(newFakeStore(), "r1", tls.NewListener(ln, serverTLS))
	t.Cleanup(g.kill)
	c, err := Dial(ctx, []string{g.addr()}, Options{TLS: clientTLS})
	if err != nil {
		t.Fatalf("Dial over TLS: %v", err)
	}
	defer c.Close()
	must(c.Set(ctx, "/tls", fs.Missing, []byte("yes")))(t)
	if body, _ := must2(c.Get(ctx, "/tls", 0))(t); string(body) != "yes" {
		t.Errorf("got %q, want %q", body, "yes")
	}
	if _, err := Dial(ctx, []string{g.addr()}, Options{DialTimeout: time.Second}); err == nil {
		t.Error("a plain client got through to a TLS replica")
	}
}

// testTLS makes a self-signed certificate for 127.0.0.1 and returns a
// server config that presents it and a client config that trusts it.
func testTLS(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "doozerfs test"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	return server, &tls.Config{RootCAs: pool}
}
