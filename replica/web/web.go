package web

import (
	"embed"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	dfs "github.com/doozerfs/doozerfs/fs"
	"github.com/doozerfs/doozerfs/replica"
	"github.com/doozerfs/doozerfs/wire"
)

//go:embed ui
var uiFiles embed.FS

// Options configures the HTTP handler.
type Options struct {
	// Pprof serves net/http/pprof under /debug/pprof/ (serve --pprof).
	// When the replica has a secret it needs the read-write token.
	Pprof bool

	// Logger receives the handler's log: per-request lines at debug level
	// only, server-side failures at warn. Nil discards it.
	Logger *slog.Logger

	// MaxResponse bounds a recursive listing, in bytes of paths and
	// bodies (0 means 16 MiB plus the replica's max body). A larger
	// subtree is TOO_BIG.
	MaxResponse int

	// Heartbeat is how often an idle watch stream sends a progress event
	// (0 means 15 s).
	Heartbeat time.Duration
}

// Handler serves the HTTP API and the web view of one replica. It is an
// http.Handler; Close ends the watch streams it is serving.
type Handler struct {
	r    *replica.Replica
	opts Options
	log  *slog.Logger
	ui   http.Handler

	closing   chan struct{}
	closeOnce sync.Once
	conns     sync.Map // net.Conn → func() ending its count

	reqs *prometheus.CounterVec
	dur  *prometheus.HistogramVec
}

// New returns the handler for r.
func New(r *replica.Replica, opts Options) *Handler {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxResponse <= 0 {
		opts.MaxResponse = 16<<20 + r.MaxBody()
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = 15 * time.Second
	}
	sub, err := fs.Sub(uiFiles, "ui")
	if err != nil {
		panic(err) // the embedded directory is part of the binary
	}
	h := &Handler{
		r:       r,
		opts:    opts,
		log:     opts.Logger,
		ui:      http.StripPrefix("/ui/", http.FileServerFS(sub)),
		closing: make(chan struct{}),
	}
	h.reqs = register(r.MetricsRegistry(), prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "doozerfs", Name: "http_requests_total",
		Help: "HTTP requests answered, by route (ui, data, watch, members, status, metrics, pprof, other) and status code.",
	}, []string{"route", "code"}))
	h.dur = register(r.MetricsRegistry(), prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "doozerfs", Name: "http_request_duration_seconds",
		Help:    "Time to answer an HTTP request (for watch streams: how long the stream stayed open), by route.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
	}, []string{"route"}))
	return h
}

// register registers c on reg, or returns the collector already there
// (a second Handler for the same replica shares it).
func register[C prometheus.Collector](reg *prometheus.Registry, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if ex, ok := are.ExistingCollector.(C); ok {
				return ex
			}
		}
		panic(err)
	}
	return c
}

// Close ends every watch stream the handler is serving (their clients
// reconnect), so that http.Server.Shutdown does not wait for them. The
// handler answers new watches with UNAVAILABLE afterwards.
func (h *Handler) Close() {
	h.closeOnce.Do(func() { close(h.closing) })
}

// ConnState counts open HTTP connections in the replica's
// doozerfs_connections{api="http"} gauge; set it as http.Server.ConnState.
func (h *Handler) ConnState(c net.Conn, s http.ConnState) {
	switch s {
	case http.StateNew:
		h.conns.Store(c, h.r.TrackConn("http"))
	case http.StateHijacked, http.StateClosed:
		if done, ok := h.conns.LoadAndDelete(c); ok {
			done.(func())()
		}
	}
}

// statusWriter records the status code of a response. Unwrap lets
// http.ResponseController reach the connection (flushes, deadlines).
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// ServeHTTP routes one request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	sw.Header().Set("X-Content-Type-Options", "nosniff")
	sw.Header().Set("Referrer-Policy", "no-referrer")
	route := h.route(sw, req)
	if sw.code == 0 {
		sw.code = http.StatusOK
	}
	d := time.Since(start)
	h.reqs.WithLabelValues(route, strconv.Itoa(sw.code)).Inc()
	h.dur.WithLabelValues(route).Observe(d.Seconds())
	h.log.Debug("http", "method", req.Method, "path", req.URL.Path, "status", sw.code, "took", d, "remote", req.RemoteAddr)
}

// route answers req and returns its route's name for the metrics.
func (h *Handler) route(w http.ResponseWriter, req *http.Request) string {
	p := req.URL.Path
	switch {
	case p == "/" || p == "/index.html":
		if !h.methods(w, req, http.MethodGet, http.MethodHead) {
			return "ui"
		}
		h.index(w, req)
		return "ui"
	case strings.HasPrefix(p, "/ui/"):
		if !h.methods(w, req, http.MethodGet, http.MethodHead) {
			return "ui"
		}
		setUIHeaders(w)
		w.Header().Set("Cache-Control", "no-cache")
		h.ui.ServeHTTP(w, req)
		return "ui"
	case p == "/v1/data" || strings.HasPrefix(p, "/v1/data/"):
		h.data(w, req, storePath(strings.TrimPrefix(p, "/v1/data")))
		return "data"
	case p == "/v1/watch" || strings.HasPrefix(p, "/v1/watch/"):
		if h.methods(w, req, http.MethodGet) && h.allowed(w, req, wire.AccessRead) {
			g := strings.TrimPrefix(p, "/v1/watch")
			if g == "" || g == "/" {
				g = "/**"
			}
			h.watch(w, req, g)
		}
		return "watch"
	case p == "/v1/members":
		if h.methods(w, req, http.MethodGet) && h.allowed(w, req, wire.AccessRead) {
			h.members(w, req)
		}
		return "members"
	case p == "/v1/status":
		if h.methods(w, req, http.MethodGet) && h.allowed(w, req, wire.AccessRead) {
			h.status(w, req)
		}
		return "status"
	case p == "/metrics":
		if h.methods(w, req, http.MethodGet) && h.allowed(w, req, wire.AccessRead) {
			promhttp.HandlerFor(h.r.MetricsRegistry(), promhttp.HandlerOpts{}).ServeHTTP(w, req)
		}
		return "metrics"
	case h.opts.Pprof && (p == "/debug/pprof" || strings.HasPrefix(p, "/debug/pprof/")):
		if h.allowed(w, req, wire.AccessWrite) {
			h.pprof(w, req)
		}
		return "pprof"
	}
	writeError(w, http.StatusNotFound, &dfs.Error{Kind: dfs.KindNoEnt, Path: p, Detail: "no such endpoint; see docs/http.md"})
	return "other"
}

// storePath turns the rest of a /v1/data URL path into a store path: ""
// is "/", and one trailing slash is dropped ("/a/" is "/a").
func storePath(p string) string {
	if p == "" || p == "/" {
		return "/"
	}
	if strings.HasSuffix(p, "/") && !strings.HasSuffix(p, "//") {
		p = p[:len(p)-1]
	}
	return p
}

// methods checks req's method against the allowed ones, answering 405
// UNKNOWN_VERB when it is not one of them.
func (h *Handler) methods(w http.ResponseWriter, req *http.Request, allowed ...string) bool {
	for _, m := range allowed {
		if req.Method == m {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	writeError(w, http.StatusMethodNotAllowed, &dfs.Error{Kind: dfs.KindUnknownVerb,
		Detail: req.Method + " is not allowed here; allowed: " + strings.Join(allowed, ", ")})
	return false
}

// bearer returns the token of an "Authorization: Bearer TOKEN" header.
func bearer(req *http.Request) string {
	a := req.Header.Get("Authorization")
	if len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		return strings.TrimSpace(a[7:])
	}
	return ""
}

// allowed checks that req's token gives at least need, answering 401
// (no or a wrong token) or 403 (a read-only token for a write) with
// PERMISSION otherwise.
func (h *Handler) allowed(w http.ResponseWriter, req *http.Request, need wire.Access) bool {
	have := h.r.Access(bearer(req))
	if have >= need {
		return true
	}
	if have == wire.AccessNone {
		w.Header().Set("WWW-Authenticate", `Bearer realm="doozerfs"`)
		detail := "a token is needed: Authorization: Bearer TOKEN"
		if bearer(req) != "" {
			detail = "the token matches no secret"
		}
		writeError(w, http.StatusUnauthorized, &dfs.Error{Kind: dfs.KindPermission, Detail: detail})
		return false
	}
	writeError(w, http.StatusForbidden, &dfs.Error{Kind: dfs.KindPermission, Detail: "this token is read-only"})
	return false
}

// StatusOf is the HTTP status an error of kind k is answered with.
func StatusOf(k dfs.Kind) int {
	switch k {
	case dfs.KindBadPath, dfs.KindBadRequest:
		return http.StatusBadRequest
	case dfs.KindRevMismatch, dfs.KindIsDir, dfs.KindNotDir, dfs.KindNotEmpty, dfs.KindNoLease:
		return http.StatusConflict
	case dfs.KindNoEnt:
		return http.StatusNotFound
	case dfs.KindTooLate:
		return http.StatusGone
	case dfs.KindTooBig:
		return http.StatusRequestEntityTooLarge
	case dfs.KindReadOnly, dfs.KindUnavailable:
		return http.StatusServiceUnavailable
	case dfs.KindPermission:
		return http.StatusForbidden
	case dfs.KindUnknownVerb:
		return http.StatusMethodNotAllowed
	case dfs.KindTimeout:
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

// errorJSON is the body of every error answer.
type errorJSON struct {
	Error  string `json:"error"` // the whole message: "KIND: path: detail"
	Kind   string `json:"kind"`  // the error kind's name, such as "REV_MISMATCH"
	Code   int    `json:"code"`  // the kind's stable number (docs/protocol.md §6)
	Path   string `json:"path,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// asError converts any error to the store's error type.
func asError(err error) *dfs.Error {
	var fe *dfs.Error
	if errors.As(err, &fe) {
		return fe
	}
	return &dfs.Error{Kind: dfs.KindOf(err), Detail: err.Error()}
}

// writeError answers err with status (0: StatusOf its kind).
func writeError(w http.ResponseWriter, status int, err error) {
	fe := asError(err)
	if status == 0 {
		status = StatusOf(fe.Kind)
	}
	writeJSON(w, status, errorJSON{Error: fe.Error(), Kind: fe.Kind.String(), Code: int(fe.Kind), Path: fe.Path, Detail: fe.Detail})
}

// writeJSON answers v as indented JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":"OTHER: encoding the answer failed","kind":"OTHER","code":0}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// setUIHeaders locks the web view to this origin: no request leaves it.
func setUIHeaders(w http.ResponseWriter) {
	w.Header().Set("Content-Security-Policy",
		"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	w.Header().Set("X-Frame-Options", "DENY")
}

func (h *Handler) index(w http.ResponseWriter, req *http.Request) {
	b, err := uiFiles.ReadFile("ui/index.html")
	if err != nil {
		writeError(w, 0, err)
		return
	}
	setUIHeaders(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	if req.Method == http.MethodHead {
		return
	}
	w.Write(b)
}

func (h *Handler) pprof(w http.ResponseWriter, req *http.Request) {
	switch strings.TrimPrefix(req.URL.Path, "/debug/pprof/") {
	case "cmdline":
		pprof.Cmdline(w, req)
	case "profile":
		pprof.Profile(w, req)
	case "symbol":
		pprof.Symbol(w, req)
	case "trace":
		pprof.Trace(w, req)
	default:
		if req.URL.Path == "/debug/pprof" {
			http.Redirect(w, req, "/debug/pprof/", http.StatusMovedPermanently)
			return
		}
		pprof.Index(w, req)
	}
}
