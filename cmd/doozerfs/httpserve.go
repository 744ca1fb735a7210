package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/doozerfs/doozerfs/replica"
	"github.com/doozerfs/doozerfs/replica/web"
)

// newServeLogger is serve's logger: level and format (text or json).
func newServeLogger(e *env, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("--log-level: %v", err)
	}
	o := &slog.HandlerOptions{Level: l}
	switch format {
	case "text", "":
		return slog.New(slog.NewTextHandler(e.stderr, o)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(e.stderr, o)), nil
	}
	return nil, usagef("--log-format %q: want text or json", format)
}

// Timeouts of the HTTP server (docs/http.md, "Limits").
const (
	httpHeaderTimeout = 10 * time.Second
	httpReadTimeout   = time.Minute
	httpIdleTimeout   = 2 * time.Minute
)

// startHTTP serves the web view, the JSON API and /metrics of r on addr
// (serve --http), with TLS when tc is set (the certificate of the replica's
// port). It returns the URL served and a function that stops the server.
//
// At most maxConns connections are open at once (see web.LimitListener).
// A request's headers must arrive within httpHeaderTimeout, and the whole
// request, body included, within httpReadTimeout (watch streams then live
// on); an idle keep-alive connection is closed after httpIdleTimeout.
func startHTTP(addr string, r *replica.Replica, tc *tls.Config, pprof bool, maxConns int, log *slog.Logger) (url string, stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("--http %s: %w", addr, err)
	}
	ln = web.LimitListener(ln, maxConns, tc == nil, log)
	scheme := "http"
	if tc != nil {
		tc = tc.Clone()
		tc.NextProtos = []string{"http/1.1"}
		ln = tls.NewListener(ln, tc)
		scheme = "https"
	}
	h := web.New(r, web.Options{Pprof: pprof, Logger: log})
	srv := &http.Server{
		Handler:           h,
		ConnState:         h.ConnState,
		ReadHeaderTimeout: httpHeaderTimeout,
		ReadTimeout:       httpReadTimeout,
		IdleTimeout:       httpIdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
			log.Error("HTTP server stopped", "err", err)
		}
	}()
	log.Info("HTTP server started", "addr", ln.Addr().String(), "pprof", pprof)
	stop = func() {
		h.Close() // ends the watch streams, which Shutdown would wait for
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			srv.Close()
		}
		<-done
	}
	return fmt.Sprintf("%s://%s/", scheme, ln.Addr()), stop, nil
}
