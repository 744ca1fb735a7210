package replica

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/doozerfs/doozerfs/fs"
	"github.com/doozerfs/doozerfs/wire"
)

func testConfig(t testing.TB, dir string) Config {
	cfg := DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = dir
	cfg.Name = "r1"
	return cfg
}

func startReplica(t testing.TB, cfg Config) *Replica {
	t.Helper()
	r, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func dialReplica(t testing.TB, r *Replica) *wire.Client {
	t.Helper()
	c, err := wire.Dial(context.Background(), []string{r.Addr()}, wire.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestWriteReadRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	r := startReplica(t, cfg)
	ctx := testCtx(t)
	c := dialReplica(t, r)
	var revs []int64
	for i := range 50 {
		rev, err := c.Set(ctx, fmt.Sprintf("/a/%d", i), fs.Clobber, []byte(fmt.Sprint("v", i)))
		if err != nil {
			t.Fatal(err)
		}
		revs = append(revs, rev)
	}
	if _, err := c.Set(ctx, "/a/1", 0, []byte("x")); !errors.Is(err, fs.ErrRevMismatch) {
		t.Fatalf("create of an existing file: got %v, want REV_MISMATCH", err)
	}
	last := revs[len(revs)-1]
	c.Close()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	r2 := startReplica(t, cfg)
	c2 := dialReplica(t, r2)
	body, _, err := c2.Get(ctx, "/a/49", 0)
	if err != nil || string(body) != "v49" {
		t.Fatalf("after restart: got %q, %v", body, err)
	}
	rev, err := c2.Set(ctx, "/b", fs.Clobber, []byte("b"))
	if err != nil {
		t.Fatal(err)
	}
	// After last: the revisions go on from the log (the replica's own
	// /ctl/node write after its start may come first, so not always last+1).
	if rev <= last || rev > last+3 {
		t.Fatalf("revision after restart: got %d, want just after %d", rev, last)
	}
	_ = bytes.Equal
}

// TestInlineReadAnsweredWhileAPipelinedWaitBlocks: a GET answered in the
// reading goroutine is written even when the request after it, sent in the
// same packet, blocks (a WAIT for a change that never comes).
func TestInlineReadAnsweredWhileAPipelinedWaitBlocks(t *testing.T) {
	r := startReplica(t, testConfig(t, t.TempDir()))
	nc, err := net.Dial("tcp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c := wire.NewConn(nc, 0)
	ctx := testCtx(t)
	if _, err := wire.Handshake(ctx, c, wire.Hello{Kind: wire.ConnClient}); err != nil {
		t.Fatal(err)
	}
	var b []byte
	b, err = wire.AppendRequest(b, &wire.Request{Tag: 1, Verb: wire.VerbGet, Path: "/"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err = wire.AppendRequest(b, &wire.Request{Tag: 2, Verb: wire.VerbWait, Path: "/never", Rev: 0}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Write(b); err != nil {
		t.Fatal(err)
	}
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	var resp wire.Response
	if err := c.ReadResponse(&resp); err != nil {
		t.Fatalf("no answer to the GET while the WAIT blocks: %v", err)
	}
	if resp.Tag != 1 || fs.KindOf(resp.Error()) != fs.KindIsDir {
		t.Fatalf("got %+v, want the GET's ISDIR on tag 1", resp)
	}
}
