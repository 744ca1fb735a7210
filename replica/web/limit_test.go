package web

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"testing"
	"time"
)

// startLimitedWeb serves r's HTTP API with at most max connections, as
// serve --http does, the server tweaked by tweak.
func startLimitedWeb(t *testing.T, opts Options, max int, tweak func(*http.Server)) *httptest.Server {
	t.Helper()
	r := startReplica(t, nil)
	h := New(r, opts)
	ts := httptest.NewUnstartedServer(h)
	ts.Listener = LimitListener(ts.Listener, max, true, nil)
	ts.Config.ConnState = h.ConnState
	if tweak != nil {
		tweak(ts.Config)
	}
	ts.Start()
	t.Cleanup(func() {
		h.Close()
		ts.Close()
	})
	return ts
}

// TestConnectionLimit: with the HTTP port full, more connections are
// answered 503 and closed at once, while a client already connected keeps
// getting answers on its connection; once connections close, new ones are
// served again.
func TestConnectionLimit(t *testing.T) {
	const max = 4
	ts := startLimitedWeb(t, Options{}, max, nil)
	addr := ts.Listener.Addr().String()

	// The well-behaved client: one keep-alive connection.
	good := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1}}
	defer good.CloseIdleConnections()
	reused := 0
	get := func(c *http.Client, what string) (int, []byte) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
			if i.Reused {
				reused++
			}
		}})
		req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/v1/status", nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return resp.StatusCode, b
	}
	if st, b := get(good, "first request"); st != 200 {
		t.Fatalf("first request: %d %s", st, b)
	}

	// Fill the port with connections that send nothing.
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	var held []net.Conn
	for range max - 1 {
		held = append(held, dial())
	}
	// Every connection over the limit is answered 503 and closed.
	for i := range 3 * max {
		c := dial()
		c.SetReadDeadline(time.Now().Add(30 * time.Second)) // a bound, not a measure
		b, err := io.ReadAll(c)
		if err != nil {
			t.Fatalf("connection %d over the limit: %v (read %q)", i, err, b)
		}
		if !bytes.HasPrefix(b, []byte("HTTP/1.1 503 ")) || !bytes.Contains(b, []byte(`"kind":"UNAVAILABLE"`)) {
			t.Fatalf("connection %d over the limit got %q", i, b)
		}
		// Between refusals, the connected client is answered.
		if st, b := get(good, "request while full"); st != 200 {
			t.Fatalf("request while full: %d %s", st, b)
		}
	}
	if reused != 3*max {
		t.Errorf("the well-behaved client's connection was reused %d times, want %d", reused, 3*max)
	}

	// A Go client over the limit gets the 503 or a closed connection,
	// never an answer.
	other := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	req, _ := http.NewRequest("GET", ts.URL+"/v1/status", nil)
	if resp, err := other.Do(req); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("a client over the limit: %d %s", resp.StatusCode, b)
		}
	}

	// Once the idle connections close, their slots are free again.
	for _, c := range held {
		c.Close()
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, b := get(other, "request after the idle connections closed")
		if st == 200 {
			break
		}
		if st != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("request after the idle connections closed: %d %s", st, b)
		}
		time.Sleep(10 * time.Millisecond) // the server closes its ends as it notices; bounded by deadline
	}
	if st, b := get(good, "last request"); st != 200 {
		t.Fatalf("last request: %d %s", st, b)
	}
}

// TestWatchOutlivesTheReadTimeout: the server's read timeout (serve
// --http sets one) bounds the reading of a request, not a watch stream
// that follows it (net/http clears the read deadline once a request
// without a body is read).
func TestWatchOutlivesTheReadTimeout(t *testing.T) {
	const readTimeout = 100 * time.Millisecond
	heartbeat := readTimeout / 5
	ts := startLimitedWeb(t, Options{Heartbeat: heartbeat}, 16, func(s *http.Server) { s.ReadTimeout = readTimeout })
	ctx := testCtx(t)
	_, sr := openWatch(t, ctx, ts.URL+"/v1/watch/w/**", nil)
	// Heartbeats go out at least heartbeat apart: 3 × 5 of them span
	// three read timeouts.
	for range 3 * 5 {
		if ev := sr.next(t); ev.typ != "progress" {
			t.Fatalf("event %+v on a quiet watch", ev)
		}
	}
	st, b := put(t, ts.URL, "/w/x", "-1", "v")
	if st != 200 {
		t.Fatalf("PUT: %d %s", st, b)
	}
	for {
		ev := sr.next(t)
		if strings.Contains(ev.data, `"/w/x"`) {
			break
		}
		if ev.typ != "progress" && !strings.Contains(ev.data, `"/w"`) {
			t.Fatalf("event %+v, want the write of /w/x", ev)
		}
	}
}
