package chaos

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/doozerfs/doozerfs/fs"
)

// Violation is one thing a check found wrong.
type Violation struct {
	Check  string // which check
	Detail string
}

func (v Violation) String() string { return v.Check + ": " + v.Detail }

// checker collects violations (at most maxPerCheck of each check, then a
// count) and notes.
type checker struct {
	v      []Violation
	counts map[string]int
	notes  []string
	dir    string // where to write porcupine's visualisation
}

const maxPerCheck = 8

func newChecker(dir string) *checker { return &checker{counts: map[string]int{}, dir: dir} }

func (c *checker) fail(check, format string, args ...any) {
	c.counts[check]++
	if c.counts[check] <= maxPerCheck {
		c.v = append(c.v, Violation{check, fmt.Sprintf(format, args...)})
	}
}

func (c *checker) note(format string, args ...any) {
	c.notes = append(c.notes, fmt.Sprintf(format, args...))
}

func (c *checker) violations() []Violation {
	out := slices.Clone(c.v)
	keys := make([]string, 0, len(c.counts))
	for k := range c.counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if n := c.counts[k]; n > maxPerCheck {
			out = append(out, Violation{k, fmt.Sprintf("... and %d more", n-maxPerCheck)})
		}
	}
	return out
}

// eventLog is the committed history as the replicas applied it.
type eventLog struct {
	events []fs.Event // in revision order
	from   int64      // first revision covered
	upTo   int64      // last revision covered
	setAt  map[string]int64
	byPath map[string][]fs.Event
}

func newEventLog(c *checker, evs []fs.Event, from, upTo int64) *eventLog {
	l := &eventLog{events: evs, from: from, upTo: upTo, setAt: map[string]int64{}, byPath: map[string][]fs.Event{}}
	for _, e := range evs {
		l.byPath[e.Path] = append(l.byPath[e.Path], e)
		if e.Kind != fs.EventSet || len(e.Body) == 0 || strings.HasPrefix(e.Path, "/ctl/") {
			continue
		}
		if prev, dup := l.setAt[string(e.Body)]; dup && prev != e.Rev {
			c.fail("applied-once", "body %q was set at revs %d and %d: a write applied twice", e.Body, prev, e.Rev)
			continue
		}
		l.setAt[string(e.Body)] = e.Rev
	}
	return l
}

func (l *eventLog) complete() bool      { return l.from <= 1 }
func (l *eventLog) covers(r int64) bool { return r >= l.from && r <= l.upTo }

// at returns path's file at revision v (the log must start at 1).
func (l *eventLog) at(path string, v int64) FileState {
	var f FileState
	for _, e := range l.byPath[path] {
		if e.Rev > v {
			break
		}
		switch e.Kind {
		case fs.EventSet:
			f = FileState{true, string(e.Body), e.Rev}
		case fs.EventDel:
			f = FileState{}
		}
	}
	return f
}

// seenIn reports whether a read of paths saw their state at one revision
// in [lo, hi].
func (l *eventLog) seenIn(paths []string, got []FileState, lo, hi int64) bool {
	if lo > hi {
		return false
	}
	match := func(v int64) bool {
		for i, p := range paths {
			f := l.at(p, v)
			if f.Present != got[i].Present || (f.Present && (f.Body != got[i].Body || f.Rev != got[i].Rev)) {
				return false
			}
		}
		return true
	}
	if match(lo) {
		return true
	}
	var revs []int64
	for _, p := range paths {
		for _, e := range l.byPath[p] {
			if e.Rev > lo && e.Rev <= hi {
				revs = append(revs, e.Rev)
			}
		}
	}
	for _, r := range revs {
		if match(r) {
			return true
		}
	}
	return false
}

func describeEvents(evs []fs.Event) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "    %d %v %s %q\n", e.Rev, e.Kind, e.Path, e.Body)
	}
	return b.String()
}

func sameEvent(a, b fs.Event) bool {
	return a.Rev == b.Rev && a.Path == b.Path && a.Kind == b.Kind && bytes.Equal(a.Body, b.Body) && a.Time == b.Time && a.Lease == b.Lease
}

// readPaths returns the paths a read looks at and what it saw of them.
func readPaths(o *Op) ([]string, []FileState) {
	if o.In.Kind == KWalk {
		return []string{groupA, groupB}, []FileState{o.Out.A, o.Out.B}
	}
	return []string{o.In.Key}, []FileState{o.Out.A}
}

// writeRev returns the revision a write made: from its answer or, for an
// unknown outcome, from the log; 0 if it made none that is known.
func writeRev(o *Op, l *eventLog) int64 {
	switch {
	case o.Out.Res == ResOK:
		return o.Out.Rev
	case (o.In.Kind == KSet || o.In.Kind == KTxn) && o.Out.Res == ResUnknown:
		return l.setAt[o.In.Body]
	}
	return 0
}

// checkErrors: every error is one a fault may cause.
func (c *checker) checkErrors(h *History) {
	for i := range h.Ops {
		if o := &h.Ops[i]; strings.HasPrefix(o.Err, "UNEXPECTED") {
			c.fail("errors", "%s", o)
		}
	}
	for _, w := range h.Waits {
		if strings.HasPrefix(w.Err, "UNEXPECTED") {
			c.fail("errors", "wait %s from %d: %s", w.Glob, w.Rev, w.Err)
		}
	}
}

// checkAgainstLog: every acknowledged write is in the log at its revision,
// a write known not to have happened is not, and every event of the
// workload's keys is a write some client made.
func (c *checker) checkAgainstLog(h *History, l *eventLog, extra map[string]bool) {
	bodies := map[string]bool{}
	for k := range extra {
		bodies[k] = true
	}
	ackedDel := map[int64]*Op{}
	unknownDels := map[string]int{}
	for i := range h.Ops {
		o := &h.Ops[i]
		switch o.In.Kind {
		case KSet, KTxn:
			bodies[o.In.Body] = true
			rev, inLog := l.setAt[o.In.Body]
			switch o.Out.Res {
			case ResOK:
				if !l.covers(o.Out.Rev) {
					continue
				}
				if !inLog || rev != o.Out.Rev {
					c.fail("durability", "acknowledged write lost: %s; in the log at rev %d (%v)", o, rev, inLog)
				} else if o.In.Kind == KTxn && !slices.ContainsFunc(l.byPath[groupB], func(e fs.Event) bool {
					return e.Rev == rev && e.Kind == fs.EventSet && string(e.Body) == o.In.Body
				}) {
					c.fail("atomicity", "transaction half applied: %s set %s but not %s at rev %d", o, groupA, groupB, rev)
				}
			case ResMismatch, ResFailed:
				if inLog {
					c.fail("durability", "a write answered %s was applied at rev %d: %s", o.Out.Res, rev, o)
				}
			}
		case KDel:
			switch o.Out.Res {
			case ResOK:
				ackedDel[o.Out.Rev] = o
				if l.covers(o.Out.Rev) && !slices.ContainsFunc(l.byPath[o.In.Key], func(e fs.Event) bool {
					return e.Rev == o.Out.Rev && e.Kind == fs.EventDel
				}) {
					c.fail("durability", "acknowledged delete lost: %s", o)
				}
			case ResUnknown:
				unknownDels[o.In.Key]++
			}
		}
	}
	for i := range h.MountOps {
		m := &h.MountOps[i]
		if !m.Write {
			continue
		}
		bodies[m.Body] = true
		rev, inLog := l.setAt[m.Body]
		if m.Err == "" && l.complete() && !inLog {
			c.fail("durability", "write through the mount of %s acknowledged (close returned 0) but not in the log: %s", m.Node, m)
		} else if m.Err == "" && inLog && !slices.ContainsFunc(l.byPath[m.Path], func(e fs.Event) bool {
			return e.Rev == rev && string(e.Body) == m.Body
		}) {
			c.fail("durability", "mount write %s is in the log at rev %d under another path", m, rev)
		}
	}
	stray := map[string]int{}
	for _, e := range l.events {
		if !strings.HasPrefix(e.Path, "/chaos/") {
			continue
		}
		switch e.Kind {
		case fs.EventSet:
			if !bodies[string(e.Body)] {
				c.fail("phantom", "the log holds a set no client made: %d %s %q", e.Rev, e.Path, e.Body)
			}
		case fs.EventDel:
			if o := ackedDel[e.Rev]; o == nil || o.In.Key != e.Path {
				stray[e.Path]++
			}
		}
	}
	for k, n := range stray {
		if n > unknownDels[k] {
			c.fail("phantom", "the log holds %d deletes of %s that no acknowledged delete made, and only %d deletes had an unknown outcome",
				n, k, unknownDels[k])
		}
	}
}

// checkWriteOrder: a write that returned before another was called has a
// lower revision, and no two writes share one.
func (c *checker) checkWriteOrder(h *History, l *eventLog) {
	type w struct {
		op  *Op
		rev int64
	}
	var ws []w
	byRev := map[int64]*Op{}
	for i := range h.Ops {
		o := &h.Ops[i]
		if !o.isWrite() {
			continue
		}
		rev := writeRev(o, l)
		if rev == 0 {
			continue
		}
		if p := byRev[rev]; p != nil {
			c.fail("write-order", "two writes made rev %d:\n  %s\n  %s", rev, p, o)
		}
		byRev[rev] = o
		if o.Out.Res == ResOK {
			ws = append(ws, w{o, rev})
		}
	}
	byRet := slices.Clone(ws)
	sort.Slice(byRet, func(i, j int) bool { return byRet[i].op.Ret < byRet[j].op.Ret })
	sort.Slice(ws, func(i, j int) bool { return ws[i].op.Call < ws[j].op.Call })
	var best *w
	j := 0
	for i := range ws {
		for j < len(byRet) && byRet[j].op.Ret < ws[i].op.Call {
			if best == nil || byRet[j].rev > best.rev {
				best = &byRet[j]
			}
			j++
		}
		if best != nil && best.rev >= ws[i].rev {
			c.fail("write-order", "revision order against real time: %s returned before %s was called", best.op, ws[i].op)
		}
	}
}

// checkReads: every read saw its keys' state at one revision no older than
// its client's session floor (and, for a consistent read, than any write
// acknowledged before it was called), and none newer than a write called
// after it returned.
func (c *checker) checkReads(h *History, l *eventLog) {
	if !l.complete() {
		c.note("reads not checked against the log: it starts at rev %d", l.from)
		return
	}
	type w struct{ call, ret, rev int64 }
	var ws []w
	for i := range h.Ops {
		o := &h.Ops[i]
		if !o.isWrite() {
			continue
		}
		rev := writeRev(o, l)
		if rev == 0 {
			continue
		}
		ret := int64(-1)
		if o.Out.Res == ResOK {
			ret = o.Ret
		}
		ws = append(ws, w{o.Call, ret, rev})
	}
	for i := range h.Ops {
		o := &h.Ops[i]
		if !o.isRead() || (o.Out.Res != ResOK && o.Out.Res != ResMissing) {
			continue
		}
		lo, hi := o.Seen, max(l.upTo, o.Seen)
		for _, x := range ws {
			if o.In.Consistent && x.ret >= 0 && x.ret < o.Call {
				lo = max(lo, x.rev)
			}
			if x.call > o.Ret {
				hi = min(hi, x.rev-1)
			}
		}
		paths, got := readPaths(o)
		if !l.seenIn(paths, got, lo, hi) {
			var hist []fs.Event
			for _, p := range paths {
				hist = append(hist, l.byPath[p]...)
			}
			c.fail("reads", "read saw a state its keys never had at one revision in [%d, %d]: %s; their history:\n%s",
				lo, hi, o, describeEvents(hist))
		}
	}
}

// checkSessions: each client's reads never go backwards.
func (c *checker) checkSessions(h *History) {
	byClient := map[int][]*Op{}
	for i := range h.Ops {
		byClient[h.Ops[i].Client] = append(byClient[h.Ops[i].Client], &h.Ops[i])
	}
	for cl, ops := range byClient {
		sort.Slice(ops, func(i, j int) bool { return ops[i].Call < ops[j].Call })
		floor := map[string]int64{}
		var seen int64
		for _, o := range ops {
			if o.Seen < seen {
				c.fail("sessions", "client %d: Seen went backwards from %d to %d", cl, seen, o.Seen)
			}
			seen = o.Seen
			switch {
			case o.In.Kind == KGet && o.Out.Res == ResOK:
				if o.Out.A.Rev < floor[o.In.Key] {
					c.fail("sessions", "client %d read went backwards: rev %d after it saw rev %d of %s: %s", cl, o.Out.A.Rev, floor[o.In.Key], o.In.Key, o)
				}
				floor[o.In.Key] = max(floor[o.In.Key], o.Out.A.Rev)
			case o.In.Kind == KWalk && o.Out.Res == ResOK:
				if o.Out.A.Rev < floor[groupA] {
					c.fail("sessions", "client %d walk went backwards: rev %d after it saw rev %d of %s: %s", cl, o.Out.A.Rev, floor[groupA], groupA, o)
				}
				floor[groupA] = max(floor[groupA], o.Out.A.Rev)
			case o.In.Kind == KSet && o.Out.Res == ResOK, o.In.Kind == KDel && o.Out.Res == ResOK:
				floor[o.In.Key] = max(floor[o.In.Key], o.Out.Rev)
			case o.In.Kind == KTxn && o.Out.Res == ResOK:
				floor[groupA] = max(floor[groupA], o.Out.Rev)
			}
		}
	}
}

// checkPorcupine checks that the writes and the consistent reads are
// linearizable. A write of unknown outcome may take effect any time after
// its call: it is pending to the end, and a set found in the log gets the
// revision it made there (one not found never happened, when the log is
// complete).
func (c *checker) checkPorcupine(h *History, l *eventLog, timeout time.Duration) {
	var end int64
	for i := range h.Ops {
		end = max(end, h.Ops[i].Ret)
	}
	end++
	var hist []porcupine.Operation
	for i := range h.Ops {
		o := &h.Ops[i]
		p := porcupine.Operation{ClientId: o.Client, Input: o.In, Call: o.Call, Output: o.Out, Return: o.Ret, Metadata: o.String()}
		switch {
		case o.Out.Res == ResFailed:
			continue
		case o.isRead() && !o.In.Consistent:
			continue // plain reads are only session-monotonic
		case o.Out.Res == ResUnknown && (o.In.Kind == KSet || o.In.Kind == KTxn):
			if rev, ok := l.setAt[o.In.Body]; ok {
				p.Output, p.Return = OpOut{Res: ResOK, Rev: rev}, end
			} else if l.complete() {
				continue // never applied
			} else {
				p.Return = end
			}
		case o.Out.Res == ResUnknown:
			p.Return = end
		}
		hist = append(hist, p)
	}
	m := model.ToModel()
	m.DescribeOperationMetadata = func(info any) string { return fmt.Sprint(info) }
	start := time.Now()
	res, info := porcupine.CheckOperationsVerbose(m, hist, timeout)
	c.note("porcupine: %s on %d operations in %v", res, len(hist), time.Since(start).Round(time.Millisecond))
	if res == porcupine.Ok {
		return
	}
	path := filepath.Join(c.dir, "linearizability.html")
	if err := porcupine.VisualizePath(m, info, path); err != nil {
		path = fmt.Sprintf("(no visualisation: %v)", err)
	}
	if res == porcupine.Unknown {
		c.note("porcupine could not decide linearizability within %v; visualisation in %s", timeout, path)
		return
	}
	c.fail("linearizability", "the history of writes and consistent reads is not linearizable; visualisation in %s", path)
}

// checkWaits: each WAIT returned the first event matching its glob at or
// after its revision.
func (c *checker) checkWaits(h *History, l *eventLog) {
	for _, w := range h.Waits {
		if !w.OK || w.Rev < l.from {
			continue
		}
		g, err := fs.CompileGlob(w.Glob)
		if err != nil {
			c.fail("wait", "glob %q: %v", w.Glob, err)
			continue
		}
		var want *fs.Event
		for i := range l.events {
			if e := &l.events[i]; e.Rev >= w.Rev && g.Match(e.Path) {
				want = e
				break
			}
		}
		if want == nil || !sameEvent(*want, w.Ev) {
			c.fail("wait", "WAIT %s from rev %d returned %d %v %s %q; the first such event in the log is %v",
				w.Glob, w.Rev, w.Ev.Rev, w.Ev.Kind, w.Ev.Path, w.Ev.Body, describeEvents(ptrSlice(want)))
		}
	}
}

func ptrSlice(e *fs.Event) []fs.Event {
	if e == nil {
		return nil
	}
	return []fs.Event{*e}
}

// checkWatches: each WATCH stream delivered every matching event of the
// log from its revision on, once, in order, without gaps, up to until (or
// the revision it had reached when it ended early).
func (c *checker) checkWatches(h *History, l *eventLog, until int64) {
	for _, w := range h.Watches {
		g, err := fs.CompileGlob(w.Glob)
		if err != nil {
			c.fail("watch", "glob %q: %v", w.Glob, err)
			continue
		}
		got := w.Events
		for i := 1; i < len(got); i++ {
			if got[i].Rev < got[i-1].Rev {
				c.fail("watch", "%s: rev %d after rev %d (out of order)", w.Name, got[i].Rev, got[i-1].Rev)
			}
		}
		to := until
		if w.End != "" {
			c.note("%s ended early: %s", w.Name, w.End)
			to = 0
			if len(got) > 0 {
				to = got[len(got)-1].Rev
			}
		} else if len(got) == 0 || got[len(got)-1].Rev < until {
			c.fail("watch", "%s never delivered rev %d (stalled at %v)", w.Name, until, lastRev(got))
		}
		from := max(w.From, l.from)
		var want []fs.Event
		for _, e := range l.events {
			if e.Rev >= from && e.Rev <= to && g.Match(e.Path) {
				want = append(want, e)
			}
		}
		got = slices.DeleteFunc(slices.Clone(got), func(e fs.Event) bool { return e.Rev < from || e.Rev > to })
		if i, ok := firstDiff(want, got); !ok {
			c.fail("watch", "%s from rev %d: delivered events differ from the log at position %d:\n  log:\n%s  delivered:\n%s",
				w.Name, w.From, i, describeEvents(window(want, i)), describeEvents(window(got, i)))
		}
	}
}

func lastRev(evs []fs.Event) int64 {
	if len(evs) == 0 {
		return 0
	}
	return evs[len(evs)-1].Rev
}

func firstDiff(a, b []fs.Event) (int, bool) {
	for i := range min(len(a), len(b)) {
		if !sameEvent(a[i], b[i]) {
			return i, false
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b)), false
	}
	return 0, true
}

func window(evs []fs.Event, i int) []fs.Event {
	return evs[max(0, i-2):min(len(evs), i+3)]
}

// mountErrnos are the errors a mount may give while its replica runs and
// the cluster has faults: the outcome is unknown, or nothing was done.
var mountErrnos = map[syscall.Errno]bool{
	syscall.ESTALE: true, syscall.EROFS: true, syscall.ETIMEDOUT: true, syscall.EIO: true,
	syscall.EINTR: true, syscall.EAGAIN: true,
}

// checkMountOps: errors of a mount whose replica ran are expected ones,
// and every read saw a whole body some write made.
func (c *checker) checkMountOps(h *History) {
	written := map[string]map[string]bool{}
	for _, m := range h.MountOps {
		if m.Write {
			if written[m.Path] == nil {
				written[m.Path] = map[string]bool{}
			}
			written[m.Path][m.Body] = true
		}
	}
	for i := range h.MountOps {
		m := &h.MountOps[i]
		if m.Err != "" {
			if m.Up && !mountErrnos[m.Errno] && !(m.Errno == syscall.ENOENT && !m.Write) {
				c.fail("mount", "unexpected error from a mount whose replica was running: %s", m)
			}
			continue
		}
		if !m.Write && !written[m.Path][m.Body] {
			c.fail("mount", "read a body no write made (torn or stale garbage): %s", m)
		}
	}
}

// scanLog reports panics and data races in a replica's log.
func (c *checker) scanLog(n *Node) {
	b, err := os.ReadFile(n.Log)
	if err != nil {
		c.fail("logs", "%s: %v", n.Name, err)
		return
	}
	for _, bad := range []string{"panic:", "DATA RACE", "fatal error:"} {
		if i := bytes.Index(b, []byte(bad)); i >= 0 {
			c.fail("logs", "%s logged %q (%s):\n%s", n.Name, bad, n.Log, b[max(0, i-200):min(len(b), i+3000)])
		}
	}
}
