package web

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	iofs "io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	dfs "github.com/doozerfs/doozerfs/fs"
	"github.com/doozerfs/doozerfs/replica"
)

// startReplica opens a real replica on a temporary data directory.
func startReplica(t testing.TB, tweak func(*replica.Config)) *replica.Replica {
	t.Helper()
	cfg := replica.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.Name = "w1"
	if tweak != nil {
		tweak(&cfg)
	}
	r, err := replica.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// startWeb serves r's HTTP API on a test server.
func startWeb(t testing.TB, r *replica.Replica, opts Options) (*httptest.Server, *Handler) {
	t.Helper()
	h := New(r, opts)
	ts := httptest.NewUnstartedServer(h)
	ts.Config.ConnState = h.ConnState
	ts.Start()
	t.Cleanup(func() {
		h.Close()
		ts.Close()
	})
	return ts, h
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// call makes one request and returns the status, headers and body.
func call(t testing.TB, method, url, token string, body io.Reader) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// wantErr checks an error answer: its status and kind.
func wantErr(t testing.TB, what string, status int, b []byte, wantStatus int, kind string) {
	t.Helper()
	if status != wantStatus {
		t.Fatalf("%s: status %d, want %d (%s)", what, status, wantStatus, b)
	}
	var e errorJSON
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("%s: error body is not JSON: %v: %s", what, err, b)
	}
	if e.Kind != kind {
		t.Fatalf("%s: kind %q, want %q (%s)", what, e.Kind, kind, b)
	}
	if k, ok := dfs.ParseKind(kind); !ok || e.Code != int(k) || e.Error == "" {
		t.Fatalf("%s: code %d / error %q do not match kind %s", what, e.Code, e.Error, kind)
	}
}

func decode[T any](t testing.TB, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return v
}

func put(t testing.TB, base, p, rev, body string) (int, []byte) {
	t.Helper()
	st, _, b := call(t, http.MethodPut, base+"/v1/data"+p+"?rev="+rev, "", strings.NewReader(body))
	return st, b
}

func TestDataPutGetDelete(t *testing.T) {
	r := startReplica(t, nil)
	ts, _ := startWeb(t, r, Options{})
	base := ts.URL

	st, b := put(t, base, "/app/conf", "0", "v1")
	if st != 200 {
		t.Fatalf("create: %d %s", st, b)
	}
	w1 := decode[writeAnswer](t, b)
	if w1.Rev <= 0 || w1.Path != "/app/conf" {
		t.Fatalf("create answered %+v", w1)
	}
	st, b = put(t, base, "/app/conf", "0", "again")
	wantErr(t, "create of an existing file", st, b, http.StatusConflict, "REV_MISMATCH")
	st, b = put(t, base, "/app/conf", strconv.FormatInt(w1.Rev, 10), "v2")
	if st != 200 {
		t.Fatalf("CAS write: %d %s", st, b)
	}
	w2 := decode[writeAnswer](t, b)
	st, b = put(t, base, "/app/conf", strconv.FormatInt(w1.Rev, 10), "v3")
	wantErr(t, "stale CAS write", st, b, http.StatusConflict, "REV_MISMATCH")
	st, b = put(t, base, "/app/conf", "", "v3")
	wantErr(t, "PUT without rev", st, b, http.StatusBadRequest, "BAD_REQUEST")
	st, b = put(t, base, "/app/conf", "-2", "v3")
	wantErr(t, "PUT rev -2", st, b, http.StatusBadRequest, "BAD_REQUEST")
	st, b = put(t, base, "/app/bin", "clobber", "\xff\x00\x01")
	if st != 200 {
		t.Fatalf("clobber write: %d %s", st, b)
	}

	// GET: JSON, at a past revision, raw.
	st, h, b := call(t, "GET", base+"/v1/data/app/conf", "", nil)
	if st != 200 {
		t.Fatalf("GET: %d %s", st, b)
	}
	n := decode[readJSON](t, b)
	if n.Type != "file" || n.Body == nil || *n.Body != "v2" || n.Encoding != "utf-8" || n.Rev != w2.Rev || n.Size != 2 ||
		n.Name != "conf" || n.TimeNS == 0 || n.Time == "" || n.ReadRev < w2.Rev {
		t.Fatalf("GET answered %s", b)
	}
	if h.Get("X-Doozerfs-Rev") != strconv.FormatInt(n.ReadRev, 10) {
		t.Fatalf("X-Doozerfs-Rev %q, read_rev %d", h.Get("X-Doozerfs-Rev"), n.ReadRev)
	}
	_, _, b = call(t, "GET", base+"/v1/data/app/conf?rev="+strconv.FormatInt(w1.Rev, 10), "", nil)
	if n := decode[readJSON](t, b); *n.Body != "v1" || n.ReadRev != w1.Rev {
		t.Fatalf("GET at rev %d answered %s", w1.Rev, b)
	}
	st, h, b = call(t, "GET", base+"/v1/data/app/conf?raw=1", "", nil)
	if st != 200 || string(b) != "v2" || h.Get("X-Doozerfs-File-Rev") != strconv.FormatInt(w2.Rev, 10) {
		t.Fatalf("raw GET: %d %q %v", st, b, h)
	}
	_, _, b = call(t, "GET", base+"/v1/data/app/bin", "", nil)
	if n := decode[readJSON](t, b); n.Encoding != "base64" || *n.Body != "/wAB" {
		t.Fatalf("binary body answered %s", b)
	}

	// Directories: listing, trailing slash, recursive, the root.
	for _, u := range []string{"/v1/data/app", "/v1/data/app/"} {
		st, _, b = call(t, "GET", base+u, "", nil)
		d := decode[readJSON](t, b)
		if st != 200 || d.Type != "dir" || d.Entries == nil || len(*d.Entries) != 2 || d.Size != 2 {
			t.Fatalf("GET %s: %d %s", u, st, b)
		}
		e := (*d.Entries)[1]
		if e.Name != "conf" || e.Path != "/app/conf" || e.Type != "file" || e.Rev != w2.Rev || e.Size != 2 || e.Body != nil {
			t.Fatalf("GET %s: entry %+v", u, e)
		}
	}
	_, _, b = call(t, "GET", base+"/v1/data/?recursive=1", "", nil)
	root := decode[readJSON](t, b)
	if root.Path != "/" || root.Entries == nil || len(*root.Entries) != 1 {
		t.Fatalf("recursive root: %s", b)
	}
	app := (*root.Entries)[0]
	if app.Entries == nil || len(*app.Entries) != 2 || (*app.Entries)[1].Body == nil || *(*app.Entries)[1].Body != "v2" {
		t.Fatalf("recursive listing misses the bodies: %s", b)
	}
	st, _, b = call(t, "GET", base+"/v1/data/app?raw=1", "", nil)
	wantErr(t, "raw GET of a directory", st, b, http.StatusConflict, "ISDIR")

	// Errors of reads.
	st, _, b = call(t, "GET", base+"/v1/data/nothing/here", "", nil)
	wantErr(t, "GET of a missing path", st, b, http.StatusNotFound, "NOENT")
	st, _, b = call(t, "GET", base+"/v1/data/app/conf/below", "", nil)
	wantErr(t, "GET below a file", st, b, http.StatusConflict, "NOTDIR")
	st, _, b = call(t, "GET", base+"/v1/data/a//b", "", nil)
	wantErr(t, "GET of a bad path", st, b, http.StatusBadRequest, "BAD_PATH")
	st, _, b = call(t, "GET", base+"/v1/data/a/../b", "", nil)
	wantErr(t, "GET of a path with ..", st, b, http.StatusBadRequest, "BAD_PATH")
	st, _, b = call(t, "GET", base+"/v1/data/app?rev=x", "", nil)
	wantErr(t, "GET rev=x", st, b, http.StatusBadRequest, "BAD_REQUEST")
	st, _, b = call(t, "PUT", base+"/v1/data/app?rev=-1", "", strings.NewReader("x"))
	wantErr(t, "PUT on a directory", st, b, http.StatusConflict, "ISDIR")

	// mkdir, and DEL of a directory with children.
	st, b = put(t, base, "/app/sub", "0&dir=1", "")
	if st != 200 {
		t.Fatalf("mkdir: %d %s", st, b)
	}
	st, _, b = call(t, "DELETE", base+"/v1/data/app?rev=-1", "", nil)
	wantErr(t, "DELETE of a directory with children", st, b, http.StatusConflict, "NOTEMPTY")

	// DELETE.
	st, _, b = call(t, "DELETE", base+"/v1/data/app/conf?rev="+strconv.FormatInt(w1.Rev, 10), "", nil)
	wantErr(t, "stale DELETE", st, b, http.StatusConflict, "REV_MISMATCH")
	st, _, b = call(t, "DELETE", base+"/v1/data/app/conf", "", nil)
	wantErr(t, "DELETE without rev", st, b, http.StatusBadRequest, "BAD_REQUEST")
	st, _, b = call(t, "DELETE", base+"/v1/data/app/conf?rev="+strconv.FormatInt(w2.Rev, 10), "", nil)
	if st != 200 || decode[writeAnswer](t, b).Rev <= w2.Rev {
		t.Fatalf("DELETE: %d %s", st, b)
	}
	st, _, b = call(t, "GET", base+"/v1/data/app/conf", "", nil)
	wantErr(t, "GET after DELETE", st, b, http.StatusNotFound, "NOENT")
	st, _, b = call(t, "DELETE", base+"/v1/data/app/conf?rev=-1", "", nil)
	wantErr(t, "DELETE of a missing file", st, b, http.StatusNotFound, "NOENT")

	// The store refuses writes under /ctl.
	st, b = put(t, base, "/ctl/x", "-1", "x")
	wantErr(t, "PUT under /ctl", st, b, http.StatusForbidden, "PERMISSION")
	st, _, b = call(t, "DELETE", base+"/v1/data/ctl/cluster?rev=-1", "", nil)
	wantErr(t, "DELETE under /ctl", st, b, http.StatusForbidden, "PERMISSION")

	// Methods and routes.
	st, h, b = call(t, "POST", base+"/v1/data/app", "", strings.NewReader("x"))
	wantErr(t, "POST", st, b, http.StatusMethodNotAllowed, "UNKNOWN_VERB")
	if h.Get("Allow") == "" {
		t.Fatal("405 without Allow")
	}
	st, _, b = call(t, "GET", base+"/v2/whatever", "", nil)
	wantErr(t, "unknown endpoint", st, b, http.StatusNotFound, "NOENT")
}

func TestPutBodyLimitIsTheReplicasMaxBody(t *testing.T) {
	r := startReplica(t, func(c *replica.Config) { c.MaxBody = 1000 })
	ts, _ := startWeb(t, r, Options{})
	if st, b := put(t, ts.URL, "/ok", "-1", strings.Repeat("x", 1000)); st != 200 {
		t.Fatalf("a body of max-body bytes: %d %s", st, b)
	}
	st, b := put(t, ts.URL, "/big", "-1", strings.Repeat("x", 1001))
	wantErr(t, "a body over max-body", st, b, http.StatusRequestEntityTooLarge, "TOO_BIG")
	// Without Content-Length (chunked), the limit holds while reading.
	pr, pw := io.Pipe()
	go func() {
		pw.Write(bytes.Repeat([]byte("y"), 5000))
		pw.Close()
	}()
	st, _, b = call(t, "PUT", ts.URL+"/v1/data/big?rev=-1", "", pr)
	wantErr(t, "a chunked body over max-body", st, b, http.StatusRequestEntityTooLarge, "TOO_BIG")
	if _, err := r.Tree().View().Stat("/big"); err == nil {
		t.Fatal("a body over the limit was written")
	}
}

func TestReadsOutsideTheHistoryWindowAreTooLate(t *testing.T) {
	r := startReplica(t, func(c *replica.Config) { c.History = 5 })
	ts, _ := startWeb(t, r, Options{})
	for i := range 20 {
		if st, b := put(t, ts.URL, "/h", "-1", fmt.Sprint(i)); st != 200 {
			t.Fatalf("%d %s", st, b)
		}
	}
	st, _, b := call(t, "GET", ts.URL+"/v1/data/h?rev=2", "", nil)
	wantErr(t, "GET at an old revision", st, b, http.StatusGone, "TOO_LATE")
	st, _, b = call(t, "GET", ts.URL+"/v1/watch/**?rev=2", "", nil)
	wantErr(t, "WATCH from an old revision", st, b, http.StatusGone, "TOO_LATE")
}

// sseEvent is one parsed server-sent event.
type sseEvent struct {
	typ, id, data string
}

// sseReader reads server-sent events from a response body.
type sseReader struct {
	sc *bufio.Scanner
}

func (s *sseReader) next(t testing.TB) sseEvent {
	t.Helper()
	ev := sseEvent{typ: "message"}
	var data []string
	for s.sc.Scan() {
		line := s.sc.Text()
		if line == "" {
			if data != nil {
				ev.data = strings.Join(data, "\n")
				return ev
			}
			continue
		}
		field, val, _ := strings.Cut(line, ":")
		val = strings.TrimPrefix(val, " ")
		switch field {
		case "event":
			ev.typ = val
		case "id":
			ev.id = val
		case "data":
			data = append(data, val)
		}
	}
	t.Fatalf("the stream ended: %v", s.sc.Err())
	return ev
}

func openWatch(t testing.TB, ctx context.Context, url string, hdr map[string]string) (*http.Response, *sseReader) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("watch: %d %s", resp.StatusCode, b)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 8<<20)
	return resp, &sseReader{sc: sc}
}

func TestWatchStreamsEventsAsServerSentEvents(t *testing.T) {
	r := startReplica(t, nil)
	ts, h := startWeb(t, r, Options{})
	ctx := testCtx(t)
	if _, err := r.Txn(ctx, []dfs.Op{{Kind: dfs.OpSet, Path: "/other", Rev: -1, Body: []byte("o")}}); err != nil {
		t.Fatal(err)
	}
	cur := r.Tree().Rev()
	_, sr := openWatch(t, ctx, ts.URL+"/v1/watch/w/**", nil)
	ev := sr.next(t)
	if ev.typ != "progress" || ev.id != strconv.FormatInt(cur, 10) || decode[progressJSON](t, []byte(ev.data)).Rev != cur {
		t.Fatalf("first event %+v, want progress at %d", ev, cur)
	}
	// One revision of two changes: only its last event carries the id.
	rev, err := r.Txn(ctx, []dfs.Op{
		{Kind: dfs.OpSet, Path: "/w/a", Rev: 0, Body: []byte("A")},
		{Kind: dfs.OpSet, Path: "/w/b", Rev: 0, Body: []byte{0xff}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []eventJSON
	var ids []string
	for len(got) < 3 {
		ev := sr.next(t)
		if ev.typ != "message" {
			continue
		}
		got = append(got, decode[eventJSON](t, []byte(ev.data)))
		ids = append(ids, ev.id)
	}
	if got[0].Kind != "mkdir" || got[0].Path != "/w" || got[1].Path != "/w/a" || *got[1].Body != "A" ||
		got[2].Path != "/w/b" || got[2].Encoding != "base64" || got[2].Rev != rev || got[2].TimeNS == 0 {
		t.Fatalf("events %+v", got)
	}
	if ids[0] != "" || ids[1] != "" || ids[2] != strconv.FormatInt(rev, 10) {
		t.Fatalf("ids %q: want only the last event of revision %d to carry it", ids, rev)
	}
	if _, err := r.Txn(ctx, []dfs.Op{{Kind: dfs.OpDel, Path: "/w/a", Rev: -1}}); err != nil {
		t.Fatal(err)
	}
	for {
		ev := sr.next(t)
		if ev.typ == "message" {
			if e := decode[eventJSON](t, []byte(ev.data)); e.Kind != "del" || e.Path != "/w/a" || e.Body != nil {
				t.Fatalf("del event %+v", e)
			}
			break
		}
	}

	// Resuming with Last-Event-ID (what EventSource sends) replays from
	// the revision after it; ?rev=R starts at R.
	_, sr2 := openWatch(t, ctx, ts.URL+"/v1/watch/w/**", map[string]string{"Last-Event-ID": strconv.FormatInt(rev-1, 10)})
	if ev := sr2.next(t); ev.typ != "progress" || ev.id != strconv.FormatInt(rev-1, 10) {
		t.Fatalf("resumed stream starts with %+v", ev)
	}
	if ev := sr2.next(t); decode[eventJSON](t, []byte(ev.data)).Path != "/w" {
		t.Fatalf("resumed stream: %+v", ev)
	}
	_, sr3 := openWatch(t, ctx, ts.URL+"/v1/watch?rev="+strconv.FormatInt(rev, 10), nil) // no glob: /**
	sr3.next(t)
	if ev := sr3.next(t); decode[eventJSON](t, []byte(ev.data)).Path != "/w" {
		t.Fatalf("watch from rev %d: %+v", rev, ev)
	}

	st, _, b := call(t, "GET", ts.URL+"/v1/watch/a**b", "", nil)
	wantErr(t, "a bad glob", st, b, http.StatusBadRequest, "BAD_PATH")

	// Close ends the streams with a "failed" UNAVAILABLE event.
	h.Close()
	for {
		ev := sr.next(t)
		if ev.typ == "failed" {
			if e := decode[errorJSON](t, []byte(ev.data)); e.Kind != "UNAVAILABLE" {
				t.Fatalf("failed event %+v", e)
			}
			break
		}
	}
}

func TestWatchHeartbeatSendsProgress(t *testing.T) {
	r := startReplica(t, nil)
	ts, _ := startWeb(t, r, Options{Heartbeat: 50 * time.Millisecond})
	ctx := testCtx(t)
	_, sr := openWatch(t, ctx, ts.URL+"/v1/watch/quiet/**", nil)
	sr.next(t)
	if _, err := r.Txn(ctx, []dfs.Op{{Kind: dfs.OpSet, Path: "/loud", Rev: -1}}); err != nil {
		t.Fatal(err)
	}
	want := r.Tree().Rev()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		ev := sr.next(t)
		if ev.typ == "progress" && decode[progressJSON](t, []byte(ev.data)).Rev >= want {
			return
		}
	}
	t.Fatal("no progress event reached the current revision")
}

func TestMembersAndStatus(t *testing.T) {
	r := startReplica(t, nil)
	ts, _ := startWeb(t, r, Options{})
	ctx := testCtx(t)
	if _, err := r.Txn(ctx, []dfs.Op{{Kind: dfs.OpSet, Path: "/x", Rev: -1}}); err != nil {
		t.Fatal(err) // a leader is known once a write went through
	}
	st, _, b := call(t, "GET", ts.URL+"/v1/members", "", nil)
	ms := decode[membersJSON](t, b)
	if st != 200 || len(ms.Members) != 1 || ms.Leader != "w1" {
		t.Fatalf("members: %d %s", st, b)
	}
	m := ms.Members[0]
	if m.Name != "w1" || m.ID != strconv.FormatUint(r.ID(), 10) || m.Role != "voter" || m.State != "alive" || !m.Leader || !m.Self || m.Addr != r.Addr() {
		t.Fatalf("member %+v", m)
	}
	st, _, b = call(t, "GET", ts.URL+"/v1/status", "", nil)
	s := decode[statusJSON](t, b)
	if st != 200 || s.Name != "w1" || !s.IsLeader || s.Leader != "w1" || !s.Writable || s.Rev != r.Tree().Rev() || s.Access != "rw" || s.MaxBody != r.MaxBody() {
		t.Fatalf("status: %d %s", st, b)
	}
	st, _, b = call(t, "PUT", ts.URL+"/v1/members", "", nil)
	wantErr(t, "PUT /v1/members", st, b, http.StatusMethodNotAllowed, "UNKNOWN_VERB")
}

func TestSecrets(t *testing.T) {
	r := startReplica(t, func(c *replica.Config) { c.Secret, c.ROSecret = "rw-secret", "ro-secret" })
	ts, _ := startWeb(t, r, Options{Pprof: true})
	u := ts.URL
	for _, p := range []string{"/v1/data/", "/v1/members", "/v1/status", "/metrics", "/v1/watch/**"} {
		st, h, b := call(t, "GET", u+p, "", nil)
		wantErr(t, "GET "+p+" without a token", st, b, http.StatusUnauthorized, "PERMISSION")
		if !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
			t.Fatalf("401 without WWW-Authenticate: %v", h)
		}
		st, _, b = call(t, "GET", u+p, "wrong", nil)
		wantErr(t, "GET "+p+" with a wrong token", st, b, http.StatusUnauthorized, "PERMISSION")
	}
	st, _, b := call(t, "PUT", u+"/v1/data/f?rev=-1", "ro-secret", strings.NewReader("x"))
	wantErr(t, "PUT with the read-only token", st, b, http.StatusForbidden, "PERMISSION")
	st, _, b = call(t, "DELETE", u+"/v1/data/f?rev=-1", "ro-secret", nil)
	wantErr(t, "DELETE with the read-only token", st, b, http.StatusForbidden, "PERMISSION")
	st, _, b = call(t, "PUT", u+"/v1/data/f?rev=-1", "rw-secret", strings.NewReader("x"))
	if st != 200 {
		t.Fatalf("PUT with the read-write token: %d %s", st, b)
	}
	st, _, b = call(t, "GET", u+"/v1/data/f?raw=1", "ro-secret", nil)
	if st != 200 || string(b) != "x" {
		t.Fatalf("GET with the read-only token: %d %s", st, b)
	}
	_, _, b = call(t, "GET", u+"/v1/status", "ro-secret", nil)
	if s := decode[statusJSON](t, b); s.Access != "ro" {
		t.Fatalf("status access for the ro token: %q", s.Access)
	}
	if st, _, _ := call(t, "GET", u+"/metrics", "ro-secret", nil); st != 200 {
		t.Fatalf("metrics with the ro token: %d", st)
	}
	st, _, b = call(t, "GET", u+"/debug/pprof/", "ro-secret", nil)
	wantErr(t, "pprof with the ro token", st, b, http.StatusForbidden, "PERMISSION")
	if st, _, _ := call(t, "GET", u+"/debug/pprof/", "rw-secret", nil); st != 200 {
		t.Fatalf("pprof with the rw token: %d", st)
	}
	// The page itself holds no data and needs no token; it asks for one.
	if st, _, _ := call(t, "GET", u+"/", "", nil); st != 200 {
		t.Fatalf("GET / without a token: %d", st)
	}
	// Watches need a token too, and the ro one is enough.
	ctx := testCtx(t)
	openWatch(t, ctx, u+"/v1/watch/**", map[string]string{"Authorization": "Bearer ro-secret"})
}

func TestMetricsEndpoint(t *testing.T) {
	r := startReplica(t, nil)
	ts, _ := startWeb(t, r, Options{})
	put(t, ts.URL, "/m", "-1", "x")
	put(t, ts.URL, "/m", "0", "x")
	call(t, "GET", ts.URL+"/v1/data/m", "", nil)
	st, h, b := call(t, "GET", ts.URL+"/metrics", "", nil)
	if st != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/plain") {
		t.Fatalf("metrics: %d %v", st, h)
	}
	text := string(b)
	for _, want := range []string{
		`doozerfs_requests_total{api="http",outcome="ok",verb="SET"} 1`,
		`doozerfs_requests_total{api="http",outcome="REV_MISMATCH",verb="SET"} 1`,
		`doozerfs_requests_total{api="http",outcome="ok",verb="GET"} 1`,
		`doozerfs_http_requests_total{code="409",route="data"} 1`,
		`doozerfs_connections{api="http"} 1`,
		`doozerfs_watches{api="http"} 0`,
		"doozerfs_commit_duration_seconds_bucket",
		"doozerfs_wal_fsync_duration_seconds_bucket",
		"doozerfs_wal_sync_records_bucket",
		"doozerfs_proposal_batch_size_bucket",
		"doozerfs_apply_batch_size_bucket",
		fmt.Sprintf("doozerfs_applied_revision %d", r.Tree().Rev()),
		"doozerfs_leader_changes_total 1",
		"doozerfs_is_leader 1",
		`doozerfs_members{role="voter",state="alive"} 1`,
		"doozerfs_fuse_ops_total",
		"go_goroutines",
		"process_resident_memory_bytes",
	} {
		if want == "doozerfs_fuse_ops_total" {
			// No mount here: the family has no samples yet, so only its
			// help line could show; ObserveFUSE is tested in package replica.
			continue
		}
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// pprof is off unless asked for.
	st, _, b = call(t, "GET", ts.URL+"/debug/pprof/", "", nil)
	wantErr(t, "pprof without Options.Pprof", st, b, http.StatusNotFound, "NOENT")
}

func TestPprofWhenAskedFor(t *testing.T) {
	r := startReplica(t, nil)
	ts, _ := startWeb(t, r, Options{Pprof: true})
	st, _, b := call(t, "GET", ts.URL+"/debug/pprof/", "", nil)
	if st != 200 || !bytes.Contains(b, []byte("goroutine")) {
		t.Fatalf("pprof index: %d", st)
	}
	st, _, b = call(t, "GET", ts.URL+"/debug/pprof/goroutine?debug=1", "", nil)
	if st != 200 || !bytes.Contains(b, []byte("goroutine profile")) {
		t.Fatalf("pprof goroutine: %d", st)
	}
	if st, _, _ := call(t, "GET", ts.URL+"/debug/pprof/cmdline", "", nil); st != 200 {
		t.Fatalf("pprof cmdline: %d", st)
	}
}

func TestThePageIsEmbeddedAndSelfContained(t *testing.T) {
	r := startReplica(t, nil)
	ts, _ := startWeb(t, r, Options{})
	st, h, b := call(t, "GET", ts.URL+"/", "", nil)
	if st != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/html") || !bytes.Contains(b, []byte("/ui/app.js")) {
		t.Fatalf("GET /: %d %v", st, h)
	}
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "connect-src 'self'") || !strings.Contains(csp, "default-src 'none'") {
		t.Fatalf("CSP %q", csp)
	}
	for _, f := range []string{"/ui/app.js", "/ui/style.css", "/ui/favicon.svg"} {
		if st, _, _ := call(t, "GET", ts.URL+f, "", nil); st != 200 {
			t.Fatalf("GET %s: %d", f, st)
		}
	}
	// No reference to another host in any embedded file (the SVG's XML
	// namespace is a name, never fetched).
	ext := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	err := iofs.WalkDir(uiFiles, "ui", func(p string, d iofs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := uiFiles.ReadFile(p)
		if err != nil {
			return err
		}
		for _, m := range ext.FindAllString(string(b), -1) {
			if m != "http://www.w3.org" {
				t.Errorf("%s refers to another host: %s", p, m)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestStatusOfEveryKind(t *testing.T) {
	want := map[dfs.Kind]int{
		dfs.KindOther: 500, dfs.KindBadPath: 400, dfs.KindRevMismatch: 409, dfs.KindNoEnt: 404,
		dfs.KindIsDir: 409, dfs.KindNotDir: 409, dfs.KindNotEmpty: 409, dfs.KindTooLate: 410,
		dfs.KindTooBig: 413, dfs.KindReadOnly: 503, dfs.KindPermission: 403, dfs.KindUnknownVerb: 405,
		dfs.KindBadRequest: 400, dfs.KindNoLease: 409, dfs.KindTimeout: 504, dfs.KindUnavailable: 503,
	}
	for k, s := range want {
		if got := StatusOf(k); got != s {
			t.Errorf("StatusOf(%v) = %d, want %d", k, got, s)
		}
	}
}

func TestRecursiveListingIsBounded(t *testing.T) {
	r := startReplica(t, nil)
	ts, _ := startWeb(t, r, Options{MaxResponse: 4096})
	for i := range 10 {
		if st, b := put(t, ts.URL, fmt.Sprintf("/big/f%d", i), "-1", strings.Repeat("x", 1000)); st != 200 {
			t.Fatalf("%d %s", st, b)
		}
	}
	st, _, b := call(t, "GET", ts.URL+"/v1/data/big?recursive=1", "", nil)
	wantErr(t, "a recursive listing over the bound", st, b, http.StatusRequestEntityTooLarge, "TOO_BIG")
	if st, _, b := call(t, "GET", ts.URL+"/v1/data/big", "", nil); st != 200 {
		t.Fatalf("the plain listing: %d %s", st, b)
	}
}

func TestAStoppedReplicaIsUnavailable(t *testing.T) {
	r := startReplica(t, nil)
	ts, _ := startWeb(t, r, Options{})
	r.Close()
	st, b := put(t, ts.URL, "/x", "-1", "x")
	wantErr(t, "PUT to a stopped replica", st, b, http.StatusServiceUnavailable, "UNAVAILABLE")
	if st, _, b := call(t, "GET", ts.URL+"/v1/watch/**", "", nil); st != http.StatusOK {
		// The stream starts, then ends with a failed event at once.
		t.Fatalf("watch on a stopped replica: %d %s", st, b)
	} else if !bytes.Contains(b, []byte("event: failed")) || !bytes.Contains(b, []byte("UNAVAILABLE")) {
		t.Fatalf("watch on a stopped replica: %s", b)
	}
}

// proposals is how many batches of proposals r has handed to consensus.
func proposals(t testing.TB, r *replica.Replica) uint64 {
	t.Helper()
	mfs, err := r.MetricsRegistry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "doozerfs_proposal_batch_size" {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	t.Fatal("no doozerfs_proposal_batch_size")
	return 0
}

// TestWritesToBadPathsAreRefusedBeforeConsensus: PUT and DELETE of a path
// that breaks the path rules are 400 BAD_PATH, and nothing reaches
// consensus (applying them would refuse them too, but only after
// consensus had carried and logged them).
func TestWritesToBadPathsAreRefusedBeforeConsensus(t *testing.T) {
	r := startReplica(t, nil)
	ts, _ := startWeb(t, r, Options{})
	base := ts.URL
	// Wait for the replica's own start-up write (/ctl/node/w1), so that
	// nothing else is proposed while the test counts.
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, _, err := r.Tree().View().Get("/ctl/node/w1/role"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the replica never recorded itself in /ctl/node")
		}
		time.Sleep(10 * time.Millisecond) // polling a start-up write, bounded by deadline
	}
	before, rev := proposals(t, r), r.Tree().Rev()
	long := "/" + strings.Repeat("a/", 2100) + "a"
	for _, p := range []string{
		"/a//b", "/a/../b", "/a/./b", "/a/%00/b", "/%ff", "/" + strings.Repeat("n", 256), long,
	} {
		for _, c := range []struct{ method, query, body string }{
			{"PUT", "?rev=-1", "x"},
			{"PUT", "?rev=0&dir=1", ""},
			{"DELETE", "?rev=-1", ""},
			{"PUT", "", "no rev either"},
		} {
			st, _, b := call(t, c.method, base+"/v1/data"+p+c.query, "", strings.NewReader(c.body))
			wantErr(t, c.method+" "+p[:min(len(p), 20)]+c.query, st, b, http.StatusBadRequest, "BAD_PATH")
		}
	}
	if n := proposals(t, r); n != before {
		t.Errorf("%d proposals for writes to bad paths", n-before)
	}
	if r.Tree().Rev() != rev {
		t.Errorf("the revision moved from %d to %d", rev, r.Tree().Rev())
	}
	// A good write is counted: the count above would have seen them.
	if st, b := put(t, base, "/a/b", "-1", "x"); st != 200 {
		t.Fatalf("PUT of a good path: %d %s", st, b)
	}
	if proposals(t, r) == before {
		t.Error("a good write was not counted as a proposal")
	}
}
