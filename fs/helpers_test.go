package fs

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
)

// Helpers shared by the tests: op constructors, a checked Apply, and a dump
// of a whole view for comparisons.

func set(p string, rev int64, body string) Op {
	return Op{Kind: OpSet, Path: p, Rev: rev, Body: []byte(body)}
}

func setLease(p string, rev int64, body string, lease int64) Op {
	return Op{Kind: OpSet, Path: p, Rev: rev, Body: []byte(body), Lease: lease}
}

func del(p string, rev int64) Op   { return Op{Kind: OpDel, Path: p, Rev: rev} }
func mkdir(p string, rev int64) Op { return Op{Kind: OpMkdir, Path: p, Rev: rev} }
func check(p string, rev int64) Op { return Op{Kind: OpCheck, Path: p, Rev: rev} }

func tx(ops ...Op) *Mutation { return &Mutation{Kind: MutTxn, Ops: ops} }

// mustApply applies m and fails the test on error.
func mustApply(t *testing.T, tr *Tree, m *Mutation) Result {
	t.Helper()
	res, err := tr.Apply(m)
	if err != nil {
		t.Fatalf("Apply(%s): %v", describe(m), err)
	}
	return res
}

// mustOps applies each op as its own TXN.
func mustOps(t *testing.T, tr *Tree, ops ...Op) {
	t.Helper()
	for _, o := range ops {
		mustApply(t, tr, tx(o))
	}
}

// grantLease grants a lease and returns its id.
func grantLease(t *testing.T, tr *Tree, ttl int64) int64 {
	t.Helper()
	return mustApply(t, tr, &Mutation{Kind: MutLeaseGrant, TTL: ttl}).Lease
}

// wantErr checks that err is nil when want is nil, or of want's kind.
func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Errorf("%s: got error %v, want none", what, err)
	case want != nil && !errors.Is(err, want):
		t.Errorf("%s: got error %v, want %v", what, err, want)
	}
}

func describe(m *Mutation) string {
	if m == nil {
		return "nil"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "kind=%d time=%d lease=%d ttl=%d sys=%v", m.Kind, m.Time, m.Lease, m.TTL, m.System)
	for i, o := range m.Ops {
		if i == 8 && len(m.Ops) > 9 {
			fmt.Fprintf(&b, " ... %d ops", len(m.Ops))
			break
		}
		fmt.Fprintf(&b, " [%s %q %d %q L%d]", o.Kind, o.Path, o.Rev, o.Body, o.Lease)
	}
	return b.String()
}

func describeEvents(evs []Event) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "%d %s %s %q t%d L%d\n", e.Rev, e.Kind, e.Path, e.Body, e.Time, e.Lease)
	}
	return b.String()
}

// entryLine describes one node for dumps.
func entryLine(p string, st Stat, body []byte) string {
	return fmt.Sprintf("%s %s size=%d rev=%d time=%d kids=%d lease=%d body=%q",
		p, st.Type, st.Size, st.Rev, st.Time, st.Children, st.Lease, body)
}

// dump lists every node of v, depth first in name order, through the
// public read API only.
func dump(t *testing.T, v *View) string {
	t.Helper()
	var lines []string
	var walk func(p string)
	walk = func(p string) {
		st, err := v.Stat(p)
		if err != nil {
			t.Fatalf("Stat(%q) at %d: %v", p, v.Rev(), err)
		}
		if st.Type == TypeFile {
			body, st2, err := v.Get(p)
			if err != nil || st2 != st {
				t.Fatalf("Get(%q) at %d: %v, %+v vs %+v", p, v.Rev(), err, st2, st)
			}
			lines = append(lines, entryLine(p, st, body))
			return
		}
		lines = append(lines, entryLine(p, st, nil))
		ents, err := v.GetDir(p)
		if err != nil {
			t.Fatalf("GetDir(%q) at %d: %v", p, v.Rev(), err)
		}
		if !sort.SliceIsSorted(ents, func(i, j int) bool { return ents[i].Name < ents[j].Name }) {
			t.Fatalf("GetDir(%q) not sorted: %v", p, ents)
		}
		for _, e := range ents {
			walk(child(p, e.Name))
		}
	}
	walk("/")
	return strings.Join(lines, "\n")
}
