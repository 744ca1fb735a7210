package web

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	dfs "github.com/doozerfs/doozerfs/fs"
	"github.com/doozerfs/doozerfs/wire"
)

// nodeJSON is a file or directory as the API shows it.
type nodeJSON struct {
	Path     string      `json:"path"`
	Name     string      `json:"name"`
	Type     string      `json:"type"` // "file" or "dir"
	Rev      int64       `json:"rev"`
	Time     string      `json:"time,omitempty"` // commit time of Rev, RFC 3339 UTC
	TimeNS   int64       `json:"time_ns"`        // the same in Unix nanoseconds
	Size     int64       `json:"size"`           // files: body length; dirs: number of children
	Lease    int64       `json:"lease,omitempty"`
	Body     *string     `json:"body,omitempty"`
	Encoding string      `json:"encoding,omitempty"` // of Body: "utf-8" or "base64"
	Entries  *[]nodeJSON `json:"entries,omitempty"`  // dirs: the children, sorted by name
}

// readJSON is the answer to GET /v1/data/PATH.
type readJSON struct {
	ReadRev int64 `json:"read_rev"` // the revision the read was answered at
	nodeJSON
}

// writeAnswer is the answer to PUT and DELETE.
type writeAnswer struct {
	Rev  int64  `json:"rev"` // the store's revision after the write
	Path string `json:"path"`
}

func fmtTime(ns int64) string {
	if ns == 0 {
		return ""
	}
	return time.Unix(0, ns).UTC().Format(time.RFC3339Nano)
}

// encodeBody returns b as a JSON string and its encoding.
func encodeBody(b []byte) (*string, string) {
	if utf8.Valid(b) {
		s := string(b)
		return &s, "utf-8"
	}
	s := base64.StdEncoding.EncodeToString(b)
	return &s, "base64"
}

func baseName(p string) string {
	if p == "/" {
		return ""
	}
	return path.Base(p)
}

func statJSON(p string, st dfs.Stat) nodeJSON {
	n := nodeJSON{Path: p, Name: baseName(p), Type: st.Type.String(), Rev: st.Rev, Time: fmtTime(st.Time), TimeNS: st.Time,
		Size: st.Size, Lease: st.Lease}
	if st.Type == dfs.TypeDir {
		n.Size = int64(st.Children)
	}
	return n
}

func join(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// lister builds listings from one view, within a budget of bytes.
type lister struct {
	v      *dfs.View
	budget int
}

var errTooBig = errors.New("over budget")

// node describes p. depth 0: the node alone; 1: a directory with its
// children's stats; -1: the whole subtree with every body.
func (l *lister) node(p string, st dfs.Stat, body []byte, depth int) (nodeJSON, error) {
	n := statJSON(p, st)
	l.budget -= len(p) + 160
	if st.Type == dfs.TypeFile && body != nil {
		l.budget -= len(body) * 4 / 3
		n.Body, n.Encoding = encodeBody(body)
	}
	if l.budget < 0 {
		return n, errTooBig
	}
	if st.Type != dfs.TypeDir || depth == 0 {
		return n, nil
	}
	ents, err := l.v.GetDir(p)
	if err != nil {
		return n, err
	}
	kids := make([]nodeJSON, 0, len(ents))
	for _, e := range ents {
		cp := join(p, e.Name)
		var cst dfs.Stat
		var cbody []byte
		if depth < 0 && e.Type == dfs.TypeFile {
			cbody, cst, err = l.v.Get(cp)
		} else {
			cst, err = l.v.Stat(cp)
		}
		if err != nil {
			return n, err
		}
		cdepth := depth
		if depth > 0 {
			cdepth = depth - 1
		}
		c, err := l.node(cp, cst, cbody, cdepth)
		if err != nil {
			return n, err
		}
		kids = append(kids, c)
	}
	n.Entries = &kids
	return n, nil
}

func truthy(s string) bool {
	switch strings.ToLower(s) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

// readRev parses the rev of a read: absent or 0 means the current one.
func readRev(q string) (int64, error) {
	if q == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(q, 10, 64)
	if err != nil || n < 0 {
		return 0, &dfs.Error{Kind: dfs.KindBadRequest, Detail: fmt.Sprintf("rev=%q: want a revision (0 or more)", q)}
	}
	return n, nil
}

// writeRev parses the rev a write names (SPEC §1): required; -1 or
// "clobber", 0 or "missing", or R > 0.
func writeRev(q string, have bool) (int64, error) {
	switch strings.ToLower(q) {
	case "clobber":
		return dfs.Clobber, nil
	case "missing":
		return dfs.Missing, nil
	}
	if !have {
		return 0, &dfs.Error{Kind: dfs.KindBadRequest, Detail: "rev is required: -1 (clobber), 0 (missing: create only) or R > 0 (unchanged since revision R)"}
	}
	n, err := strconv.ParseInt(q, 10, 64)
	if err != nil || n < -1 {
		return 0, &dfs.Error{Kind: dfs.KindBadRequest, Detail: fmt.Sprintf("rev=%q: want -1 (clobber), 0 (missing) or a revision", q)}
	}
	return n, nil
}

// data answers /v1/data/PATH.
func (h *Handler) data(w http.ResponseWriter, req *http.Request, p string) {
	switch req.Method {
	case http.MethodGet, http.MethodHead:
		if h.allowed(w, req, wire.AccessRead) {
			h.get(w, req, p)
		}
	case http.MethodPut:
		if h.allowed(w, req, wire.AccessWrite) && h.writePath(w, req, p) {
			h.put(w, req, p)
		}
	case http.MethodDelete:
		if h.allowed(w, req, wire.AccessWrite) && h.writePath(w, req, p) {
			h.del(w, req, p)
		}
	default:
		h.methods(w, req, http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete)
	}
}

// writePath refuses a write to a path that breaks the path rules with
// 400 BAD_PATH before anything else is done: applying the write would
// refuse it too, but only after consensus had carried and logged it.
func (h *Handler) writePath(w http.ResponseWriter, req *http.Request, p string) bool {
	err := dfs.ValidPath(p)
	if err == nil {
		return true
	}
	verb := wire.VerbDel
	if req.Method == http.MethodPut {
		verb = wire.VerbSet
		if truthy(req.URL.Query().Get("dir")) {
			verb = wire.VerbMkdir
		}
	}
	h.r.ObserveRequest("http", verb.String(), err)
	writeError(w, 0, err)
	return false
}

func (h *Handler) get(w http.ResponseWriter, req *http.Request, p string) {
	q := req.URL.Query()
	recursive := truthy(q.Get("recursive"))
	verb := wire.VerbGet.String()
	if recursive {
		verb = wire.VerbWalk.String()
	}
	err := h.getErr(w, req, p, recursive)
	h.r.ObserveRequest("http", verb, err)
	if err != nil {
		writeError(w, 0, err)
	}
}

func (h *Handler) getErr(w http.ResponseWriter, req *http.Request, p string, recursive bool) error {
	q := req.URL.Query()
	rev, err := readRev(q.Get("rev"))
	if err != nil {
		return err
	}
	minRev, err := readRev(q.Get("min_rev"))
	if err != nil {
		return err
	}
	ctx := req.Context()
	if truthy(q.Get("consistent")) {
		if err := h.r.WaitConsistent(ctx); err != nil {
			return err
		}
	}
	if err := h.r.WaitRev(ctx, max(minRev, rev)); err != nil {
		return err
	}
	v := h.r.Tree().View()
	if rev > 0 {
		if v, err = h.r.Tree().ViewAt(rev); err != nil {
			return err
		}
	}
	st, err := v.Stat(p)
	if err != nil {
		return err
	}
	w.Header().Set("X-Doozerfs-Rev", strconv.FormatInt(v.Rev(), 10))
	var body []byte
	if st.Type == dfs.TypeFile {
		if body, st, err = v.Get(p); err != nil {
			return err
		}
		if truthy(q.Get("raw")) {
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			w.Header().Set("X-Doozerfs-File-Rev", strconv.FormatInt(st.Rev, 10))
			w.Header().Set("Cache-Control", "no-store")
			if req.Method != http.MethodHead {
				w.Write(body)
			}
			return nil
		}
	} else if truthy(q.Get("raw")) {
		return &dfs.Error{Kind: dfs.KindIsDir, Path: p, Detail: "raw=1 reads a file's body; this is a directory"}
	}
	depth := 1
	if recursive {
		depth = -1
	}
	l := &lister{v: v, budget: h.opts.MaxResponse}
	n, err := l.node(p, st, body, depth)
	if errors.Is(err, errTooBig) {
		return &dfs.Error{Kind: dfs.KindTooBig, Path: p,
			Detail: fmt.Sprintf("the answer would be over %d bytes; list it without recursive=1, or read deeper paths", h.opts.MaxResponse)}
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, readJSON{ReadRev: v.Rev(), nodeJSON: n})
	return nil
}

func (h *Handler) put(w http.ResponseWriter, req *http.Request, p string) {
	q := req.URL.Query()
	kind, verb := dfs.OpSet, wire.VerbSet.String()
	if truthy(q.Get("dir")) {
		kind, verb = dfs.OpMkdir, wire.VerbMkdir.String()
	}
	rev, err := h.putErr(req, p, kind)
	h.r.ObserveRequest("http", verb, err)
	if err != nil {
		writeError(w, 0, err)
		return
	}
	writeJSON(w, http.StatusOK, writeAnswer{Rev: rev, Path: p})
}

func (h *Handler) putErr(req *http.Request, p string, kind dfs.OpKind) (int64, error) {
	q := req.URL.Query()
	rev, err := writeRev(q.Get("rev"), q.Has("rev"))
	if err != nil {
		return 0, err
	}
	max := h.r.MaxBody()
	if req.ContentLength > int64(max) {
		return 0, &dfs.Error{Kind: dfs.KindTooBig, Path: p, Detail: fmt.Sprintf("body of %d bytes is over the %d-byte limit", req.ContentLength, max)}
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, int64(max)+1))
	if err != nil {
		return 0, &dfs.Error{Kind: dfs.KindBadRequest, Path: p, Detail: "reading the body: " + err.Error()}
	}
	if len(body) > max {
		return 0, &dfs.Error{Kind: dfs.KindTooBig, Path: p, Detail: fmt.Sprintf("body over the %d-byte limit", max)}
	}
	op := dfs.Op{Kind: kind, Path: p, Rev: rev}
	if kind == dfs.OpSet {
		op.Body = body
	} else if len(body) > 0 {
		return 0, &dfs.Error{Kind: dfs.KindBadRequest, Path: p, Detail: "dir=1 makes a directory and takes no body"}
	}
	return h.r.Txn(req.Context(), []dfs.Op{op})
}

func (h *Handler) del(w http.ResponseWriter, req *http.Request, p string) {
	q := req.URL.Query()
	rev, err := writeRev(q.Get("rev"), q.Has("rev"))
	var nrev int64
	if err == nil {
		nrev, err = h.r.Txn(req.Context(), []dfs.Op{{Kind: dfs.OpDel, Path: p, Rev: rev}})
	}
	h.r.ObserveRequest("http", wire.VerbDel.String(), err)
	if err != nil {
		writeError(w, 0, err)
		return
	}
	if nrev == 0 {
		nrev = h.r.Tree().Rev() // DEL 0 of a missing path changes nothing
	}
	writeJSON(w, http.StatusOK, writeAnswer{Rev: nrev, Path: p})
}

// memberJSON is one member in /v1/members. Ids are strings: they are
// 64-bit, more than a JSON number holds exactly in JavaScript.
type memberJSON struct {
	Name    string `json:"name"`
	ID      string `json:"id"`
	Addr    string `json:"addr"`
	Role    string `json:"role"`  // voter or learner
	State   string `json:"state"` // alive, suspect or dead
	Leader  bool   `json:"leader"`
	Self    bool   `json:"self"`
	Applied int64  `json:"applied,omitempty"`
}

type membersJSON struct {
	Rev     int64        `json:"rev"`
	Leader  string       `json:"leader"` // the leader's name, "" if none is known
	Members []memberJSON `json:"members"`
}

func (h *Handler) members(w http.ResponseWriter, _ *http.Request) {
	self := h.r.ID()
	out := membersJSON{Rev: h.r.Tree().Rev(), Leader: h.r.Self().Leader, Members: []memberJSON{}}
	for _, m := range h.r.Members() {
		out.Members = append(out.Members, memberJSON{Name: m.Name, ID: strconv.FormatUint(m.ID, 10), Addr: m.Addr,
			Role: m.Role, State: m.State, Leader: m.Leader, Self: m.ID == self, Applied: m.Applied})
	}
	h.r.ObserveRequest("http", wire.VerbMembers.String(), nil)
	writeJSON(w, http.StatusOK, out)
}

// statusJSON is /v1/status: the replica as it sees itself.
type statusJSON struct {
	Name        string `json:"name"`
	ID          string `json:"id"`
	Addr        string `json:"addr"`
	Cluster     string `json:"cluster"`
	Role        string `json:"role"`
	Leader      string `json:"leader"` // "" if none is known
	IsLeader    bool   `json:"is_leader"`
	Rev         int64  `json:"rev"`
	Oldest      int64  `json:"oldest"`
	SnapshotRev int64  `json:"snapshot_rev"`
	Lag         int64  `json:"lag"`
	Writable    bool   `json:"writable"`
	Version     string `json:"version"`
	MaxBody     int    `json:"max_body"`
	Access      string `json:"access"` // what the request's token may do: "rw" or "ro"
}

func (h *Handler) status(w http.ResponseWriter, req *http.Request) {
	st := h.r.Status()
	self := h.r.Self()
	h.r.ObserveRequest("http", wire.VerbSelf.String(), nil)
	writeJSON(w, http.StatusOK, statusJSON{
		Name: st.Name, ID: strconv.FormatUint(st.ID, 10), Addr: st.Addr, Cluster: st.Cluster, Role: st.Role,
		Leader: self.Leader, IsLeader: st.Leader != 0 && st.Leader == st.ID, Rev: st.Rev, Oldest: st.Oldest,
		SnapshotRev: st.SnapRev, Lag: self.Lag, Writable: st.Writable, Version: self.Version, MaxBody: h.r.MaxBody(),
		Access: h.r.Access(bearer(req)).String(),
	})
}
