// Package web is the HTTP face of a replica (`doozerfs serve --http ADDR`,
// SPEC §7): a live web view of the tree, a JSON API, Prometheus metrics
// and, when asked for, pprof.
//
// New returns an http.Handler serving, for one in-process replica:
//
//	GET    /                             the web view (files embedded in the binary)
//	GET    /v1/data/PATH[?rev=R][&recursive=1][&raw=1]
//	PUT    /v1/data/PATH?rev=R[&dir=1]    body: the file's new body (raw bytes)
//	DELETE /v1/data/PATH?rev=R
//	GET    /v1/watch/GLOB[?rev=R]         server-sent events
//	GET    /v1/members, GET /v1/status
//	GET    /metrics                      Prometheus text format
//	GET    /debug/pprof/...               only with Options.Pprof
//
// Errors are JSON objects naming the store's error kind (docs/protocol.md
// §6) with a fitting HTTP status (StatusOf). When the replica has a
// secret, requests carry `Authorization: Bearer TOKEN`: the read-only
// secret reads, the read-write secret also writes. docs/http.md is the
// user's documentation, with curl examples.
//
// The web view is plain HTML, CSS and JavaScript under ui/, embedded with
// go:embed; it makes no request to any other host. It follows the tree
// through /v1/watch/** (read with fetch, so that it can send the token)
// and polls /v1/status and /v1/members for the leader and the members'
// states, which are not tree changes.
package web
