package fs

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"testing"
)

var (
	propSeed  = flag.Int64("fs.seed", -1, "run the property test with this seed only")
	propSeeds = flag.Int("fs.seeds", 120, "how many seeds the property test runs (at most 40 under -race)")
	propSteps = flag.Int("fs.steps", 250, "mutations per seed")
)

// TestTreeAgreesWithModelOnRandomSequences drives random mutations through
// a Tree and the naive model and compares every observable: results,
// errors, events, reads at the current and past revisions, walks, leases,
// a mirror fed by ApplyEvents, and a snapshot round trip. A failure names
// its seed; replay it with -run 'TestTreeAgreesWithModel/seed=N'.
func TestTreeAgreesWithModelOnRandomSequences(t *testing.T) {
	seeds, steps := *propSeeds, *propSteps
	if raceEnabled {
		seeds = min(seeds, 40)
	}
	if testing.Short() {
		seeds, steps = 20, 150
	}
	for s := int64(0); s < int64(seeds); s++ {
		if *propSeed >= 0 && s != *propSeed {
			continue
		}
		t.Run(fmt.Sprintf("seed=%d", s), func(t *testing.T) {
			runProperty(t, s, steps, propNames)
		})
	}
}

// TestTreeAgreesWithModelInWideDirectories runs the property test with
// hundreds of names, so that directories grow past one B-tree leaf and
// shrink again.
func TestTreeAgreesWithModelInWideDirectories(t *testing.T) {
	names := wideNames()
	seeds := 6
	if raceEnabled || testing.Short() {
		seeds = 2
	}
	for s := int64(1000); s < 1000+int64(seeds); s++ {
		if *propSeed >= 0 && s != *propSeed {
			continue
		}
		t.Run(fmt.Sprintf("seed=%d", s), func(t *testing.T) {
			runProperty(t, s, 1200, names)
		})
	}
}

// TestTreeAgreesWithModelUnderAByteBound runs the property test with
// Config.HistoryBytes set, from below the cost of one revision (a window
// of the current revision only) to about the count window's size, and
// bodies of up to 2,000 bytes: the model computes which revisions the
// bound leaves readable, and every read, ViewAt and Events must agree.
func TestTreeAgreesWithModelUnderAByteBound(t *testing.T) {
	seeds, steps := *propSeeds/4, *propSteps
	if raceEnabled {
		seeds = min(seeds, 10)
	}
	if testing.Short() {
		seeds, steps = 6, 150
	}
	bounds := []int64{100, 1000, 3000, 10000, 40000}
	for s := int64(2000); s < 2000+int64(max(seeds, len(bounds))); s++ {
		if *propSeed >= 0 && s != *propSeed {
			continue
		}
		hb := bounds[int(s)%len(bounds)]
		t.Run(fmt.Sprintf("seed=%d/bytes=%d", s, hb), func(t *testing.T) {
			runPropertyWith(t, s, steps, propNames, hb)
		})
	}
}

// TestTreeAgreesWithModelRebuildingPastRevisionsInBatches runs the
// property test with every rebuilt past revision undone in a batch (each
// path once), not event by event.
func TestTreeAgreesWithModelRebuildingPastRevisionsInBatches(t *testing.T) {
	defer func(n int) { undoBatchAbove = n }(undoBatchAbove)
	undoBatchAbove = 0
	seeds := 30
	if raceEnabled || testing.Short() {
		seeds = 8
	}
	for s := int64(3000); s < 3000+int64(seeds); s++ {
		t.Run(fmt.Sprintf("seed=%d", s), func(t *testing.T) {
			runProperty(t, s, *propSteps, propNames)
		})
	}
	runPropertyWith(t, 3999, 1200, wideNames(), 0)
}

// wideNames returns 300 names, enough for directories wider than a B-tree
// leaf.
func wideNames() []string {
	var names []string
	for i := 0; i < 300; i++ {
		names = append(names, fmt.Sprintf("n%03d", i))
	}
	return names
}

// A prop is one run of the property test.
type prop struct {
	t      *testing.T
	rnd    *rand.Rand
	tree   *Tree
	mirror *Tree
	model  *model
	time   int64
	names  []string // components that random paths are made of
	every  int      // compare whole trees every this many steps
	cfg    Config   // the tree's and the mirror's
	big    bool     // bodies of up to 2,000 bytes, not just a few
}

const propHistory = 40

func runProperty(t *testing.T, seed int64, steps int, names []string) {
	runPropertyWith(t, seed, steps, names, 0)
}

// runPropertyWith runs the property test with Config.HistoryBytes set to
// historyBytes and, when it is set, bodies of up to 2,000 bytes.
func runPropertyWith(t *testing.T, seed int64, steps int, names []string, historyBytes int64) {
	cfg := Config{History: propHistory, HistoryBytes: historyBytes}
	p := &prop{
		names: names, every: 1 + len(names)/50,
		t: t, rnd: rand.New(rand.NewSource(seed)),
		tree: New(cfg), mirror: New(cfg), cfg: cfg, big: historyBytes > 0,
		model: newModel(propHistory),
	}
	p.model.historyBytes = historyBytes
	for i := 0; i < steps; i++ {
		m := p.mutation()
		p.step(i, m)
		if i%p.every == 0 {
			p.compareReads()
		}
	}
	p.compareAllRevisions()
	p.compareSnapshot()
}

// step applies m to the tree, the model and the mirror, and compares.
func (p *prop) step(i int, m *Mutation) {
	t := p.t
	res, err := p.tree.Apply(m)
	mres, mkind := p.model.apply(m)
	switch {
	case err != nil && mkind < 0:
		t.Fatalf("step %d %s: tree error %v, model succeeded", i, describe(m), err)
	case err == nil && mkind >= 0:
		t.Fatalf("step %d %s: tree succeeded, model error %s", i, describe(m), mkind)
	case err != nil && KindOf(err) != mkind:
		t.Fatalf("step %d %s: tree error %v, model error %s", i, describe(m), err, mkind)
	case err != nil:
		return
	}
	if got, want := describeResult(res), describeResult(mres); got != want {
		t.Fatalf("step %d %s: result\n%s\nwant\n%s", i, describe(m), got, want)
	}
	if res.Changed {
		if err := p.mirror.ApplyEvents(res.Rev, res.Events); err != nil {
			t.Fatalf("step %d: mirror: %v", i, err)
		}
		if i%p.every != 0 {
			return
		}
		if got, want := dump(t, p.mirror.View()), dump(t, p.tree.View()); got != want {
			t.Fatalf("step %d: mirror at %d:\n%s\nwant\n%s", i, res.Rev, got, want)
		}
	}
}

func describeResult(r Result) string {
	return fmt.Sprintf("rev=%d changed=%v lease=%d\n%s", r.Rev, r.Changed, r.Lease, describeEvents(r.Events))
}

// compareReads checks the current revision, one past revision, an event
// range, the leases and some point reads.
func (p *prop) compareReads() {
	t, tr, m := p.t, p.tree, p.model
	if tr.Rev() != m.rev || tr.Oldest() != m.oldest() {
		t.Fatalf("rev %d oldest %d, want %d %d", tr.Rev(), tr.Oldest(), m.rev, m.oldest())
	}
	p.compareView(tr.View(), m.states[m.rev])
	r := m.oldest() + p.rnd.Int63n(m.rev-m.oldest()+1)
	v, err := tr.ViewAt(r)
	if err != nil {
		t.Fatalf("ViewAt(%d): %v", r, err)
	}
	p.compareView(v, m.states[r])
	if _, err := tr.ViewAt(m.oldest() - 1); m.oldest() > 0 && KindOf(err) != KindTooLate {
		t.Fatalf("ViewAt below the window: %v, want TOO_LATE", err)
	}
	p.compareEvents()
	if got, want := fmt.Sprint(tr.Leases()), fmt.Sprint(m.leaseList()); got != want {
		t.Fatalf("leases %s, want %s", got, want)
	}
	for id := int64(1); id <= m.last+1; id++ {
		if got, want := strings.Join(tr.LeaseFiles(id), ","), strings.Join(m.leaseFiles(id), ","); got != want {
			t.Fatalf("LeaseFiles(%d) = %s, want %s", id, got, want)
		}
	}
}

// compareView compares a view with a model state: the dump, point reads of
// random paths, a directory listing and a walk.
func (p *prop) compareView(v *View, s *frozen) {
	t := p.t
	if got, want := dump(t, v), s.dump; got != want {
		t.Fatalf("view at %d:\n%s\nwant\n%s", v.Rev(), got, want)
	}
	for i := 0; i < 3; i++ {
		path := p.path()
		body, st, err := v.Get(path)
		mbody, mst, mkind := modelGet(s, path)
		if mkind < 0 && mst.Type == TypeDir {
			mbody, mst, mkind = nil, Stat{}, KindIsDir
		}
		if !sameKind(err, mkind) || !bytes.Equal(body, mbody) || st != mst {
			t.Fatalf("Get(%q) at %d = %q %+v %v, want %q %+v %s", path, v.Rev(), body, st, err, mbody, mst, mkind)
		}
		_, err = v.GetDir(path)
		_, mst, mkind = modelGet(s, path)
		if mkind < 0 && mst.Type == TypeFile {
			mkind = KindNotDir
		}
		if !sameKind(err, mkind) {
			t.Fatalf("GetDir(%q) at %d: %v, want %s", path, v.Rev(), err, mkind)
		}
	}
	pat := p.glob()
	g, err := CompileGlob(pat)
	if err != nil {
		t.Fatalf("CompileGlob(%q): %v", pat, err)
	}
	var got []string
	limit := p.rnd.Intn(8)
	v.Walk(g, func(path string, st Stat, body []byte) bool {
		got = append(got, entryLine(path, st, body))
		return len(got) < limit || limit == 0
	})
	want := modelWalk(s, pat)
	if limit > 0 && len(want) > limit {
		want = want[:limit]
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("Walk(%q) at %d:\n%s\nwant\n%s", pat, v.Rev(), strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func sameKind(err error, k Kind) bool {
	if err == nil {
		return k < 0
	}
	return k >= 0 && KindOf(err) == k
}

// compareEvents compares Events from a random revision through a random
// glob.
func (p *prop) compareEvents() {
	t, m := p.t, p.model
	from := m.oldest() - 1 + p.rnd.Int63n(m.rev-m.oldest()+3)
	pat := p.glob()
	g, _ := CompileGlob(pat)
	got, err := p.tree.Events(from, g)
	if max(from, 1) < m.firstEvent() && from <= m.rev {
		if KindOf(err) != KindTooLate {
			t.Fatalf("Events(%d) with oldest %d: %v, want TOO_LATE", from, m.oldest(), err)
		}
		return
	}
	if err != nil {
		t.Fatalf("Events(%d, %q): %v", from, pat, err)
	}
	var want []Event
	for r := max(from, 1); r <= m.rev; r++ {
		for _, ev := range m.events[r] {
			if naiveMatch(pat, ev.Path) {
				want = append(want, ev)
			}
		}
	}
	if a, b := describeEvents(got), describeEvents(want); a != b {
		t.Fatalf("Events(%d, %q):\n%s\nwant\n%s", from, pat, a, b)
	}
}

// compareAllRevisions checks every revision in the window, on the tree and
// on the mirror.
func (p *prop) compareAllRevisions() {
	for r := p.model.oldest(); r <= p.model.rev; r++ {
		v, err := p.tree.ViewAt(r)
		if err != nil {
			p.t.Fatalf("ViewAt(%d): %v", r, err)
		}
		mv, err := p.mirror.ViewAt(r)
		if err != nil {
			p.t.Fatalf("mirror ViewAt(%d): %v", r, err)
		}
		want := p.model.states[r].dump
		if got := dump(p.t, v); got != want {
			p.t.Fatalf("ViewAt(%d):\n%s\nwant\n%s", r, got, want)
		}
		p.tree.past.Store(nil) // rebuilt from the current revision, not the last one
		if v, err = p.tree.ViewAt(r); err != nil || dump(p.t, v) != want {
			p.t.Fatalf("ViewAt(%d) from the current revision: %v\n%s\nwant\n%s", r, err, dump(p.t, v), want)
		}
		if got := dump(p.t, mv); got != want {
			p.t.Fatalf("mirror ViewAt(%d):\n%s\nwant\n%s", r, got, want)
		}
	}
}

// compareSnapshot round-trips the tree through a snapshot, then applies the
// same further mutations to both copies.
func (p *prop) compareSnapshot() {
	t := p.t
	var buf bytes.Buffer
	if err := p.tree.WriteSnapshot(&buf); err != nil {
		t.Fatalf("WriteSnapshot: %v", err)
	}
	back, err := ReadSnapshot(bytes.NewReader(buf.Bytes()), p.cfg)
	if err != nil {
		t.Fatalf("ReadSnapshot: %v", err)
	}
	if got, want := dump(t, back.View()), dump(t, p.tree.View()); got != want {
		t.Fatalf("snapshot:\n%s\nwant\n%s", got, want)
	}
	p.tree = back
	p.model.base = p.model.rev
	for i := 0; i < 50; i++ {
		p.step(i, p.mutation())
		p.compareReads()
	}
}

// Random inputs. Paths come from a small set of names so that mutations
// collide often.

var propNames = []string{"a", "b", "c", "ctl", "a-b", "é"}

func (p *prop) path() string {
	switch p.rnd.Intn(30) {
	case 0:
		return []string{"", "a", "/a/", "//a", "/a/./b", "/..", "/a\x00"}[p.rnd.Intn(7)]
	case 1, 2:
		return "/"
	}
	n := 1 + p.rnd.Intn(3)
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteString("/" + p.names[p.rnd.Intn(len(p.names))])
	}
	return b.String()
}

func (p *prop) glob() string {
	parts := []string{"a", "*", "?", "**", "b*", "*-*", "c", "é", "?-?", "n1*", "n?0?", "n042"}
	n := p.rnd.Intn(4)
	if n == 0 {
		return []string{"/", "/**"}[p.rnd.Intn(2)]
	}
	var b strings.Builder
	prev := ""
	for i := 0; i < n; i++ {
		c := parts[p.rnd.Intn(len(parts))]
		if c == "**" && prev == "**" {
			c = "a"
		}
		b.WriteString("/" + c)
		prev = c
	}
	return b.String()
}

// rev picks a rev for an op on path: often one that holds, often not.
func (p *prop) rev(path string) int64 {
	n, ok := p.model.cur[path]
	switch p.rnd.Intn(6) {
	case 0:
		return Clobber
	case 1:
		return Missing
	case 2:
		if ok {
			return n.rev
		}
	case 3:
		if ok {
			return n.rev - 1
		}
	case 4:
		return p.model.rev
	}
	return p.rnd.Int63n(p.model.rev+2) - 1
}

// existing returns a random path of the model's current state, a file if
// files is set and there is one.
func (p *prop) existing(files bool) string {
	var paths []string
	for q, n := range p.model.cur {
		if !files || !n.dir {
			paths = append(paths, q)
		}
	}
	if len(paths) == 0 {
		return p.path()
	}
	sort.Strings(paths) // map order is random; the seed must decide
	return paths[p.rnd.Intn(len(paths))]
}

// opPath picks a path for an op: an existing one, a new child of an
// existing directory, or anything.
func (p *prop) opPath(files bool) string {
	switch r := p.rnd.Intn(10); {
	case r < 4:
		return p.existing(files)
	case r < 8:
		d := p.existing(false)
		if n, ok := p.model.cur[d]; ok && n.dir {
			return child(d, p.names[p.rnd.Intn(len(p.names))])
		}
	}
	return p.path()
}

// goodRev picks a rev that holds for path, if any does.
func (p *prop) goodRev(path string) int64 {
	n, ok := p.model.cur[path]
	switch {
	case !ok:
		return []int64{Missing, Clobber}[p.rnd.Intn(2)]
	case p.rnd.Intn(2) == 0:
		return Clobber
	case p.rnd.Intn(2) == 0:
		return n.rev
	}
	return p.model.rev
}

func (p *prop) op() Op {
	var o Op
	switch r := p.rnd.Intn(100); {
	case r < 50:
		o = Op{Kind: OpSet, Path: p.opPath(true)}
		o.Body = []byte(fmt.Sprintf("v%d", p.rnd.Intn(100)))
		if p.big && p.rnd.Intn(2) == 0 {
			o.Body = bytes.Repeat(o.Body, p.rnd.Intn(700))
		}
		if p.rnd.Intn(3) == 0 {
			o.Lease = p.lease()
		}
	case r < 67:
		o = Op{Kind: OpDel, Path: p.opPath(p.rnd.Intn(3) > 0)}
	case r < 85:
		o = Op{Kind: OpMkdir, Path: p.opPath(false)}
	case r < 97:
		o = Op{Kind: OpCheck, Path: p.opPath(false)}
	default:
		o = Op{Kind: OpKind(5 + p.rnd.Intn(250)), Path: p.path()}
	}
	if p.rnd.Intn(2) == 0 {
		o.Rev = p.goodRev(o.Path)
	} else {
		o.Rev = p.rev(o.Path)
	}
	if p.rnd.Intn(50) == 0 {
		o.Rev = -2 - p.rnd.Int63n(5)
	}
	return o
}

// lease picks a lease id: usually a live one.
func (p *prop) lease() int64 {
	if ls := p.model.leaseList(); len(ls) > 0 && p.rnd.Intn(4) > 0 {
		return ls[p.rnd.Intn(len(ls))].ID
	}
	return p.rnd.Int63n(p.model.last + 2)
}

func (p *prop) mutation() *Mutation {
	p.time += 1 + p.rnd.Int63n(1000)
	m := &Mutation{Kind: MutTxn, Time: p.time, System: p.rnd.Intn(4) == 0}
	switch r := p.rnd.Intn(100); {
	case r < 60:
		m.Ops = []Op{p.op()}
	case r < 77:
		for i := p.rnd.Intn(5); i > 0; i-- {
			m.Ops = append(m.Ops, p.op())
		}
	case r < 84:
		m.Kind, m.TTL = MutLeaseGrant, p.rnd.Int63n(8)*1e9
	case r < 87:
		m.Kind, m.Lease = MutLeaseRenew, p.lease()
	case r < 92:
		m.Kind, m.Lease = MutLeaseRevoke, p.lease()
	case r < 96:
		m.Kind, m.Lease = MutLeaseExpire, p.lease()
	case r < 99:
		m.Kind = MutNop
	default:
		m.Kind = MutationKind(7 + p.rnd.Intn(200))
	}
	return m
}
