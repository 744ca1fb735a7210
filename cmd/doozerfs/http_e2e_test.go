package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestServeHTTP runs `serve --http` for real: what the CLI writes shows in
// the JSON API and the reverse, /metrics counts both, the log is JSON with
// --log-format json, and SIGTERM stops the server promptly even with a
// watch stream open.
func TestServeHTTP(t *testing.T) {
	haddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	s := startServer(t, "", "--http", haddr, "--pprof", "--log-format", "json")
	base := "http://" + haddr
	if out := s.stderr.String(); !strings.Contains(out, "web view and HTTP API at "+base+"/") {
		t.Fatalf("no banner for the HTTP server:\n%s", out)
	}
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	rev := s.okRev(t, "from the CLI", "set", "/e2e/a", "clobber")
	st, body := get("/v1/data/e2e/a?raw=1")
	if st != 200 || body != "from the CLI" {
		t.Fatalf("GET after a CLI set: %d %q", st, body)
	}
	_, body = get("/v1/data/e2e/a")
	var n struct {
		Rev  int64  `json:"rev"`
		Body string `json:"body"`
	}
	if err := json.Unmarshal([]byte(body), &n); err != nil || n.Rev != rev {
		t.Fatalf("GET JSON: %v %s (want rev %d)", err, body, rev)
	}
	req, _ := http.NewRequest(http.MethodPut, base+"/v1/data/e2e/b?rev=0", strings.NewReader("from HTTP"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("PUT: %d", resp.StatusCode)
	}
	if out := s.ok(t, "", "get", "/e2e/b"); out != "from HTTP" {
		t.Fatalf("get after an HTTP PUT: %q", out)
	}
	if st, _ := get("/"); st != 200 {
		t.Fatalf("GET /: %d", st)
	}
	if st, _ := get("/debug/pprof/"); st != 200 {
		t.Fatalf("--pprof: GET /debug/pprof/: %d", st)
	}
	_, metrics := get("/metrics")
	for _, want := range []string{
		`doozerfs_requests_total{api="wire",outcome="ok",verb="SET"}`,
		`doozerfs_requests_total{api="http",outcome="ok",verb="SET"} 1`,
		"doozerfs_wal_fsync_duration_seconds_count",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// A watch stream stays open across SIGTERM only until the server ends it.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wreq, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/watch/**", nil)
	wresp, err := http.DefaultClient.Do(wreq)
	if err != nil {
		t.Fatal(err)
	}
	defer wresp.Body.Close()
	sc := bufio.NewScanner(wresp.Body)
	for sc.Scan() && !strings.HasPrefix(sc.Text(), "data:") {
	}
	code, took := s.stop()
	if code != 0 || took > 5*time.Second {
		t.Fatalf("SIGTERM with a watch open: exit %d after %v", code, took)
	}
	for _, line := range strings.Split(strings.TrimSpace(s.stderr.String()), "\n") {
		if !strings.HasPrefix(line, "{") && !strings.HasPrefix(line, "doozerfs: ") {
			t.Errorf("--log-format json: a log line that is not JSON: %q", line)
		}
	}
}

func TestServeHTTPUsage(t *testing.T) {
	usage(t, dz(t, nil, "", "serve", "--data", t.TempDir(), "--pprof"))
	usage(t, dz(t, nil, "", "serve", "--data", t.TempDir(), "--log-format", "xml"))
}
