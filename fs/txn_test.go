package fs

import (
	"fmt"
	"strings"
	"testing"
)

func TestTxnIsAllOrNothing(t *testing.T) {
	tr := New(Config{})
	mustOps(t, tr, set("/a", 0, "1"))
	before := dump(t, tr.View())
	_, err := tr.Apply(tx(set("/b", 0, "2"), mkdir("/c/d", 0), set("/a", 0, "3")))
	wantErr(t, "txn", err, ErrRevMismatch)
	if got := dump(t, tr.View()); got != before || tr.Rev() != 1 {
		t.Errorf("failed txn left changes:\n%s", got)
	}
	if !strings.Contains(err.Error(), "op 2 (set)") {
		t.Errorf("error %q does not name the failing op", err)
	}
}

func TestTxnOpsSeeEarlierOpsOfTheSameTxn(t *testing.T) {
	tr := New(Config{})
	res := mustApply(t, tr, tx(
		mkdir("/d", 0),
		check("/d", -1),     // exists now
		set("/d/f", 0, "1"), // inside the new directory
		set("/d/f", 1, "2"), // its rev is already 1, the txn's
		del("/d/f", -1),
		check("/d/f", 0), // gone again
		set("/d/g", 0, "3"),
	))
	var got []string
	for _, ev := range res.Events {
		got = append(got, fmt.Sprintf("%d %s %s %s", ev.Rev, ev.Kind, ev.Path, ev.Body))
	}
	want := "1 mkdir /d , 1 set /d/f 1, 1 set /d/f 2, 1 del /d/f , 1 set /d/g 3"
	if strings.Join(got, ", ") != want {
		t.Errorf("events:\n%s\nwant\n%s", strings.Join(got, ", "), want)
	}
	if res.Rev != 1 || tr.Rev() != 1 {
		t.Errorf("txn took rev %d, want exactly one (1)", tr.Rev())
	}
}

func TestTxnWithoutEffectTakesNoRevision(t *testing.T) {
	tr := New(Config{})
	mustOps(t, tr, set("/a", 0, "1"))
	for _, m := range []*Mutation{tx(), tx(check("/a", 1), check("/b", 0)), tx(mkdir("/", -1), del("/zz", 0))} {
		res := mustApply(t, tr, m)
		if res.Changed || res.Rev != 1 || len(res.Events) != 0 {
			t.Errorf("%s: %+v, want no change at rev 1", describe(m), res)
		}
	}
}

func TestTxnEventsShareOneRevisionAndTime(t *testing.T) {
	tr := New(Config{})
	res := mustApply(t, tr, &Mutation{Kind: MutTxn, Time: 77, Ops: []Op{set("/x/a", 0, "1"), set("/y", 0, "2")}})
	for _, ev := range res.Events {
		if ev.Rev != 1 || ev.Time != 77 {
			t.Errorf("event %s %s at rev %d time %d, want 1 and 77", ev.Kind, ev.Path, ev.Rev, ev.Time)
		}
	}
}

// renameOps returns the TXN that renames src to dst as the mount does it:
// CHECK that dst is missing and that each directory of src still has the
// rev it had in v, recreate src's subtree under dst (preorder), then delete
// src's entries bottom up, files on the rev they had in v. So the rename
// fails whole if anything under src changed since v. A directory is deleted
// with Clobber: deleting its children earlier in the same TXN already moved
// its rev to the TXN's own; the CHECK up front stands for it, and DEL of a
// directory that gained a child is NOTEMPTY anyway.
func renameOps(t *testing.T, v *View, src, dst string) []Op {
	t.Helper()
	st, err := v.Stat(src)
	if err != nil {
		t.Fatal(err)
	}
	ops := []Op{check(dst, Missing)}
	var checks, dels []Op
	var copyTree func(from, to string, st Stat)
	copyTree = func(from, to string, st Stat) {
		if st.Type == TypeFile {
			body, _, _ := v.Get(from)
			ops = append(ops, Op{Kind: OpSet, Path: to, Rev: Missing, Body: body, Lease: st.Lease})
			dels = append(dels, del(from, st.Rev))
			return
		}
		ops = append(ops, mkdir(to, Missing))
		checks = append(checks, check(from, st.Rev))
		ents, _ := v.GetDir(from)
		for _, e := range ents {
			cst, _ := v.Stat(child(from, e.Name))
			copyTree(child(from, e.Name), child(to, e.Name), cst)
		}
		dels = append(dels, del(from, Clobber)) // after its children: bottom up
	}
	copyTree(src, dst, st)
	out := append([]Op{ops[0]}, checks...)
	out = append(out, ops[1:]...)
	return append(out, dels...)
}

// bigSubtree makes /src with 100 directories of 99 files: 10,000 entries.
func bigSubtree(t *testing.T, tr *Tree) {
	t.Helper()
	for d := 0; d < 100; d++ {
		ops := []Op{mkdir(fmt.Sprintf("/src/d%02d", d), 0)}
		for f := 0; f < 99; f++ {
			ops = append(ops, set(fmt.Sprintf("/src/d%02d/f%02d", d, f), 0, fmt.Sprintf("body %d/%d", d, f)))
		}
		mustApply(t, tr, tx(ops...))
	}
}

func TestRenameOfADirectoryWithTenThousandEntriesIsOneTxn(t *testing.T) {
	tr := New(Config{})
	bigSubtree(t, tr)
	v := tr.View()
	listing := func(v *View, root string) string {
		var b strings.Builder
		v.Walk(mustGlob(root+"/**"), func(p string, st Stat, body []byte) bool {
			fmt.Fprintf(&b, "%s=%s\n", strings.TrimPrefix(p, root), body)
			return true
		})
		return b.String()
	}
	before := listing(v, "/src")
	ops := renameOps(t, v, "/src", "/dst")
	if want := 1 + 101 + 2*10001; len(ops) != want {
		t.Fatalf("rename has %d ops, want %d", len(ops), want)
	}
	res := mustApply(t, tr, tx(ops...))
	if res.Rev != v.Rev()+1 || len(res.Events) != 2*10001 {
		t.Fatalf("rename: rev %d, %d events; want rev %d, %d events", res.Rev, len(res.Events), v.Rev()+1, 2*10001)
	}
	after := tr.View()
	if got := listing(after, "/dst"); got != before {
		t.Errorf("/dst does not hold what /src held")
	}
	if _, err := after.Stat("/src"); !isKind(err, KindNoEnt) {
		t.Errorf("Stat(/src) after rename: %v, want NOENT", err)
	}
	if st, _ := after.Stat("/dst/d42/f17"); st.Rev != res.Rev {
		t.Errorf("renamed file has rev %d, want %d", st.Rev, res.Rev)
	}
}

func TestRenameFailsWholeWhenTheSourceChangedSinceItWasRead(t *testing.T) {
	for _, change := range []Op{
		set("/src/sub/b", -1, "changed"), // a file's body
		set("/src/sub/new", 0, "added"),  // a new entry in a subdirectory
		del("/src/a", -1),                // a removed entry
	} {
		tr := New(Config{})
		mustOps(t, tr, set("/src/a", 0, "1"), set("/src/sub/b", 0, "2"))
		v := tr.View()
		mustOps(t, tr, change)
		before := dump(t, tr.View())
		_, err := tr.Apply(tx(renameOps(t, v, "/src", "/dst")...))
		wantErr(t, "rename after "+change.Kind.String()+" "+change.Path, err, ErrRevMismatch)
		if dump(t, tr.View()) != before {
			t.Errorf("a failed rename changed the tree")
		}
	}
}

func TestRenameOntoAnExistingFileIsSetThenDel(t *testing.T) {
	tr := New(Config{})
	mustOps(t, tr, set("/a", 0, "new"), set("/b", 0, "old"))
	mustApply(t, tr, tx(set("/b", 2, "new"), del("/a", 1)))
	body, _, err := tr.View().Get("/b")
	if err != nil || string(body) != "new" {
		t.Errorf("/b = %q, %v", body, err)
	}
	if _, err := tr.View().Stat("/a"); !isKind(err, KindNoEnt) {
		t.Errorf("/a still there: %v", err)
	}
}

func isKind(err error, k Kind) bool { return err != nil && KindOf(err) == k }
