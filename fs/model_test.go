package fs

import (
	"sort"
	"strings"
	"unicode/utf8"
)

// The model is a deliberately naive reimplementation of SPEC §1 as written
// in docs/data-model.md: a flat map from path to node, copied whole at every
// revision. The property tests drive it and the Tree with the same
// mutations and compare everything they can observe.

type mnode struct {
	dir   bool
	body  string
	rev   int64
	time  int64
	lease int64
}

type mstate map[string]mnode

func (s mstate) clone() mstate {
	c := make(mstate, len(s))
	for k, v := range s {
		c[k] = v
	}
	return c
}

// A frozen is a committed model state with its directory index and dump,
// computed once.
type frozen struct {
	s    mstate
	kids map[string][]string // directory → sorted child names
	dump string
}

func freeze(s mstate) *frozen {
	f := &frozen{s: s, kids: map[string][]string{}}
	for q := range s {
		if q != "/" {
			par := parentOf(q)
			f.kids[par] = append(f.kids[par], q[len(par)+boolInt(par != "/"):])
		}
	}
	for _, k := range f.kids {
		sort.Strings(k)
	}
	f.dump = dumpModel(f)
	return f
}

type model struct {
	cur     mstate
	rev     int64
	states  map[int64]*frozen // every revision so far
	events  map[int64][]Event // the events of each revision
	leases  map[int64]int64   // id → TTL
	last    int64
	history int64
	base    int64 // the first revision held (a snapshot's)

	// historyBytes is Config.HistoryBytes (0: none) and costs what each
	// revision costs against it, computed from the spec's rule: 64 a
	// revision, and per event 160, the path's length and the length of the
	// body it replaced or deleted.
	historyBytes int64
	costs        map[int64]int64
}

func newModel(history int) *model {
	root := mstate{"/": {dir: true}}
	return &model{
		cur: root, states: map[int64]*frozen{0: freeze(root)}, events: map[int64][]Event{},
		leases: map[int64]int64{}, history: int64(history), costs: map[int64]int64{},
	}
}

// oldest is the oldest readable revision: the window holds at most history
// revisions and, with a byte bound, as many of the newest ones as fit in
// it (always the current one).
func (m *model) oldest() int64 {
	o := max(m.base, m.rev-m.history+1)
	if m.historyBytes <= 0 {
		return o
	}
	var total int64
	for r := o; r <= m.rev; r++ {
		total += m.cost(r)
	}
	for ; total > m.historyBytes && o < m.rev; o++ {
		total -= m.cost(o)
	}
	return o
}

// cost is what revision r costs against the byte bound: the first
// revision held knows no events and costs the overhead only.
func (m *model) cost(r int64) int64 {
	if c, ok := m.costs[r]; ok && r > m.base {
		return c
	}
	return 64
}

// firstEvent is the oldest revision whose events are known.
func (m *model) firstEvent() int64 { return max(m.base+1, m.oldest(), 1) }

// modelValidPath is the path rule, written from the spec.
func modelValidPath(p string) bool {
	if p == "/" {
		return true
	}
	if len(p) > 4096 || !strings.HasPrefix(p, "/") {
		return false
	}
	for _, c := range strings.Split(p[1:], "/") {
		if len(c) < 1 || len(c) > 255 || c == "." || c == ".." ||
			strings.ContainsRune(c, 0) || !utf8.ValidString(c) {
			return false
		}
	}
	return true
}

func parentOf(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i == 0 {
		return "/"
	}
	return p[:i]
}

// ancestors returns the proper ancestors of p below "/", top down.
func ancestors(p string) []string {
	var out []string
	for q := parentOf(p); q != "/"; q = parentOf(q) {
		out = append([]string{q}, out...)
	}
	return out
}

// mwork is a transaction in progress on the model.
type mwork struct {
	s      mstate
	rev    int64
	time   int64
	events []Event
}

func (w *mwork) touchParent(p string) {
	d := w.s[parentOf(p)]
	d.rev, d.time = w.rev, w.time
	w.s[parentOf(p)] = d
}

// notDir reports whether an ancestor of p is a file.
func (w *mwork) notDir(p string) bool {
	for _, a := range ancestors(p) {
		n, ok := w.s[a]
		if !ok {
			return false
		}
		if !n.dir {
			return true
		}
	}
	return false
}

// mkParents creates the missing ancestors of p.
func (w *mwork) mkParents(p string) {
	for _, a := range ancestors(p) {
		if _, ok := w.s[a]; !ok {
			w.touchParent(a)
			w.s[a] = mnode{dir: true, rev: w.rev, time: w.time}
			w.events = append(w.events, Event{Rev: w.rev, Path: a, Kind: EventMkdir, Time: w.time})
		}
	}
}

func (w *mwork) hasKids(p string) bool {
	prefix := p + "/"
	if p == "/" {
		prefix = "/"
	}
	for q := range w.s {
		if q != "/" && strings.HasPrefix(q, prefix) {
			return true
		}
	}
	return false
}

func modelRevOK(n mnode, exists bool, rev int64) bool {
	switch {
	case rev == -1:
		return true
	case rev == 0:
		return !exists
	}
	return exists && n.rev <= rev
}

// op applies one op, returning the error kind or -1 for success.
func (m *model) op(w *mwork, o Op, system bool) Kind {
	if o.Kind < 1 || o.Kind > 4 {
		return KindBadRequest
	}
	if !modelValidPath(o.Path) {
		return KindBadPath
	}
	if o.Rev < -1 {
		return KindBadRequest
	}
	ctl := o.Path == "/ctl" || strings.HasPrefix(o.Path, "/ctl/")
	if o.Kind != OpCheck && ctl && !system {
		return KindPermission
	}
	if o.Path != "/" && w.notDir(o.Path) {
		return KindNotDir
	}
	switch o.Kind {
	case OpSet:
		return m.set(w, o)
	case OpDel:
		return w.del(o)
	case OpMkdir:
		return w.mkdir(o)
	}
	return w.check(o)
}

func (m *model) set(w *mwork, o Op) Kind {
	n, exists := w.s[o.Path]
	switch {
	case exists && n.dir:
		return KindIsDir
	case !modelRevOK(n, exists, o.Rev):
		return KindRevMismatch
	case o.Lease != 0 && m.leases[o.Lease] == 0:
		return KindNoLease
	}
	w.mkParents(o.Path)
	if !exists {
		w.touchParent(o.Path)
	}
	w.s[o.Path] = mnode{body: string(o.Body), rev: w.rev, time: w.time, lease: o.Lease}
	w.events = append(w.events, Event{Rev: w.rev, Path: o.Path, Kind: EventSet, Body: o.Body, Time: w.time, Lease: o.Lease})
	return -1
}

func (w *mwork) del(o Op) Kind {
	n, exists := w.s[o.Path]
	switch {
	case o.Path == "/":
		return KindIsDir
	case !exists && o.Rev == 0:
		return -1
	case !exists:
		return KindNoEnt
	case !modelRevOK(n, exists, o.Rev):
		return KindRevMismatch
	case n.dir && w.hasKids(o.Path):
		return KindNotEmpty
	}
	delete(w.s, o.Path)
	w.touchParent(o.Path)
	w.events = append(w.events, Event{Rev: w.rev, Path: o.Path, Kind: EventDel, Time: w.time})
	return -1
}

func (w *mwork) mkdir(o Op) Kind {
	n, exists := w.s[o.Path]
	switch {
	case exists && o.Rev == 0:
		return KindRevMismatch
	case exists && !n.dir:
		return KindNotDir
	case !modelRevOK(n, exists, o.Rev):
		return KindRevMismatch
	case exists:
		return -1
	}
	w.mkParents(o.Path)
	w.touchParent(o.Path)
	w.s[o.Path] = mnode{dir: true, rev: w.rev, time: w.time}
	w.events = append(w.events, Event{Rev: w.rev, Path: o.Path, Kind: EventMkdir, Time: w.time})
	return -1
}

func (w *mwork) check(o Op) Kind {
	n, exists := w.s[o.Path]
	switch {
	case !exists && o.Rev == 0:
	case !exists:
		return KindNoEnt
	case !modelRevOK(n, exists, o.Rev):
		return KindRevMismatch
	}
	return -1
}

// apply applies a mutation: the result, or the error kind (-1: none).
func (m *model) apply(mu *Mutation) (Result, Kind) {
	switch mu.Kind {
	case MutTxn:
		w := &mwork{s: m.cur.clone(), rev: m.rev + 1, time: mu.Time}
		for _, o := range mu.Ops {
			if k := m.op(w, o, mu.System); k >= 0 {
				return Result{}, k
			}
		}
		return m.commit(w), -1
	case MutNop:
		return Result{Rev: m.rev}, -1
	case MutLeaseGrant:
		if mu.TTL <= 0 {
			return Result{}, KindBadRequest
		}
		m.last++
		m.leases[m.last] = mu.TTL
		return Result{Rev: m.rev, Lease: m.last}, -1
	case MutLeaseRenew:
		if m.leases[mu.Lease] == 0 {
			return Result{}, KindNoLease
		}
		return Result{Rev: m.rev, Lease: mu.Lease}, -1
	case MutLeaseRevoke, MutLeaseExpire:
		return m.revoke(mu)
	}
	return Result{}, KindBadRequest
}

func (m *model) revoke(mu *Mutation) (Result, Kind) {
	if m.leases[mu.Lease] == 0 {
		return Result{}, KindNoLease
	}
	files := m.leaseFiles(mu.Lease)
	for _, p := range files {
		if (p == "/ctl" || strings.HasPrefix(p, "/ctl/")) && !mu.System && mu.Kind == MutLeaseRevoke {
			return Result{}, KindPermission
		}
	}
	delete(m.leases, mu.Lease)
	w := &mwork{s: m.cur.clone(), rev: m.rev + 1, time: mu.Time}
	for _, p := range files {
		delete(w.s, p)
		w.touchParent(p)
		w.events = append(w.events, Event{Rev: w.rev, Path: p, Kind: EventDel, Time: w.time})
	}
	res := m.commit(w)
	res.Lease = mu.Lease
	return res, -1
}

func (m *model) commit(w *mwork) Result {
	if len(w.events) == 0 {
		return Result{Rev: m.rev}
	}
	cost, sizes := int64(64), map[string]int{}
	for _, ev := range w.events {
		old, ok := sizes[ev.Path]
		if !ok {
			old = len(m.cur[ev.Path].body) // 0 for a directory or nothing
		}
		cost += 160 + int64(len(ev.Path)+old)
		sizes[ev.Path] = len(ev.Body) // 0 after a del or a mkdir
	}
	m.costs[w.rev] = cost
	m.rev = w.rev
	m.cur = w.s
	m.states[m.rev] = freeze(w.s)
	m.events[m.rev] = w.events
	return Result{Rev: m.rev, Changed: true, Events: w.events}
}

func (m *model) leaseFiles(id int64) []string {
	var out []string
	for p, n := range m.cur {
		if !n.dir && n.lease == id {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

func (m *model) leaseList() []Lease {
	out := []Lease{}
	for id, ttl := range m.leases {
		out = append(out, Lease{ID: id, TTL: ttl})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (n mnode) stat(f *frozen, p string) Stat {
	if !n.dir {
		return Stat{Type: TypeFile, Size: int64(len(n.body)), Rev: n.rev, Time: n.time, Lease: n.lease}
	}
	k := len(f.kids[p])
	return Stat{Type: TypeDir, Size: int64(k), Rev: n.rev, Time: n.time, Children: k}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// dumpModel lists a model state the way dump lists a View.
func dumpModel(f *frozen) string {
	var lines []string
	var walk func(p string)
	walk = func(p string) {
		n := f.s[p]
		if !n.dir {
			lines = append(lines, entryLine(p, n.stat(f, p), []byte(n.body)))
			return
		}
		lines = append(lines, entryLine(p, n.stat(f, p), nil))
		for _, k := range f.kids[p] {
			walk(child(p, k))
		}
	}
	walk("/")
	return strings.Join(lines, "\n")
}

// modelGet answers Get the way the spec says: the error kind or -1.
func modelGet(f *frozen, p string) ([]byte, Stat, Kind) {
	if !modelValidPath(p) {
		return nil, Stat{}, KindBadPath
	}
	s := f.s
	w := &mwork{s: s}
	if p != "/" && w.notDir(p) {
		return nil, Stat{}, KindNotDir
	}
	n, ok := s[p]
	if !ok {
		return nil, Stat{}, KindNoEnt
	}
	return []byte(n.body), n.stat(f, p), -1
}

// modelWalk lists the files matching pattern, depth first in name order.
func modelWalk(f *frozen, pattern string) []string {
	var out []string
	var walk func(p string)
	walk = func(p string) {
		n := f.s[p]
		if !n.dir {
			if naiveMatch(pattern, p) {
				out = append(out, entryLine(p, n.stat(f, p), []byte(n.body)))
			}
			return
		}
		for _, k := range f.kids[p] {
			walk(child(p, k))
		}
	}
	walk("/")
	return out
}

// naiveMatch is an independent, exponential-time glob matcher for tests:
// pattern and path are split into components and matched recursively.
func naiveMatch(pattern, path string) bool {
	if !modelValidPath(path) {
		return false
	}
	comps := func(s string) []string {
		if s == "/" {
			return nil
		}
		return strings.Split(s[1:], "/")
	}
	return naiveComps(comps(pattern), comps(path))
}

func naiveComps(pat, path []string) bool {
	if len(pat) == 0 {
		return len(path) == 0
	}
	if pat[0] == "**" {
		for i := 0; i <= len(path); i++ {
			if naiveComps(pat[1:], path[i:]) {
				return true
			}
		}
		return false
	}
	return len(path) > 0 && naiveComponent([]rune(pat[0]), []rune(path[0])) && naiveComps(pat[1:], path[1:])
}

func naiveComponent(pat, s []rune) bool {
	if len(pat) == 0 {
		return len(s) == 0
	}
	switch pat[0] {
	case '*':
		for i := 0; i <= len(s); i++ {
			if naiveComponent(pat[1:], s[i:]) {
				return true
			}
		}
		return false
	case '?':
		return len(s) > 0 && naiveComponent(pat[1:], s[1:])
	}
	return len(s) > 0 && s[0] == pat[0] && naiveComponent(pat[1:], s[1:])
}
