package fs

import (
	"strings"
	"testing"
	"unsafe"
)

// ruleTree is the starting point of the rule tables:
//
//	rev 1: /f = "x"
//	rev 2: /d/ (dir)
//	rev 3: /d/g = "y"     (so /d has rev 3)
//	rev 4: /e/ (empty dir)
//	rev 5: /ctl/c = "sys" (System)
//
// and lease 1 is live, lease 2 granted and revoked.
func ruleTree(t *testing.T) *Tree {
	t.Helper()
	tr := New(DefaultConfig())
	mustOps(t, tr, set("/f", 0, "x"), mkdir("/d", 0), set("/d/g", 0, "y"), mkdir("/e", 0))
	mustApply(t, tr, &Mutation{Kind: MutTxn, System: true, Ops: []Op{set("/ctl/c", 0, "sys")}})
	grantLease(t, tr, 1e9)
	l2 := grantLease(t, tr, 1e9)
	mustApply(t, tr, &Mutation{Kind: MutLeaseRevoke, Lease: l2})
	if tr.Rev() != 5 {
		t.Fatalf("rule tree at rev %d, want 5", tr.Rev())
	}
	return tr
}

// A ruleCase applies one mutation to ruleTree and checks the error, or the
// events (one line each: "KIND PATH", all at rev 6) when it succeeds.
type ruleCase struct {
	name   string
	m      *Mutation
	want   error  // nil: success
	events string // "": no new revision
}

func runRules(t *testing.T, cases []ruleCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tr := ruleTree(t)
			before := dump(t, tr.View())
			res, err := tr.Apply(tc.m)
			wantErr(t, describe(tc.m), err, tc.want)
			if err != nil {
				if got := dump(t, tr.View()); got != before || tr.Rev() != 5 {
					t.Errorf("a failed mutation changed the tree:\n%s\nwas\n%s", got, before)
				}
				return
			}
			var lines []string
			for _, ev := range res.Events {
				if ev.Rev != 6 {
					t.Errorf("event %s %s at rev %d, want 6", ev.Kind, ev.Path, ev.Rev)
				}
				lines = append(lines, ev.Kind.String()+" "+ev.Path)
			}
			if got := strings.Join(lines, ", "); got != tc.events {
				t.Errorf("events %q, want %q", got, tc.events)
			}
			if res.Changed != (tc.events != "") || tr.Rev() != res.Rev {
				t.Errorf("Changed=%v Rev=%d tree rev=%d", res.Changed, res.Rev, tr.Rev())
			}
		})
	}
}

func sys(m *Mutation) *Mutation { m.System = true; return m }

func TestSetFollowsTheRules(t *testing.T) {
	runRules(t, []ruleCase{
		{"new file with rev 0", tx(set("/n", 0, "v")), nil, "set /n"},
		{"new file with clobber", tx(set("/n", -1, "v")), nil, "set /n"},
		{"new file with rev > 0 is a mismatch", tx(set("/n", 5, "v")), ErrRevMismatch, ""},
		{"missing parents are made first", tx(set("/x/y/z", 0, "v")), nil, "mkdir /x, mkdir /x/y, set /x/y/z"},
		{"parents below an existing dir", tx(set("/d/h/i", 0, "v")), nil, "mkdir /d/h, set /d/h/i"},
		{"existing file with clobber", tx(set("/f", -1, "v")), nil, "set /f"},
		{"existing file with its own rev", tx(set("/f", 1, "v")), nil, "set /f"},
		{"existing file with a later rev", tx(set("/f", 5, "v")), nil, "set /f"},
		{"existing file with a rev past the store's", tx(set("/f", 99, "v")), nil, "set /f"},
		{"existing file with rev 0", tx(set("/f", 0, "v")), ErrRevMismatch, ""},
		{"existing file with an older rev", tx(set("/d/g", 2, "v")), ErrRevMismatch, ""},
		{"a directory", tx(set("/d", -1, "v")), ErrIsDir, ""},
		{"a directory with rev 0", tx(set("/d", 0, "v")), ErrIsDir, ""},
		{"the root", tx(set("/", -1, "v")), ErrIsDir, ""},
		{"below a file", tx(set("/f/x", -1, "v")), ErrNotDir, ""},
		{"far below a file", tx(set("/f/x/y", 0, "v")), ErrNotDir, ""},
		{"bad path", tx(set("/a//b", -1, "v")), ErrBadPath, ""},
		{"relative path", tx(set("a", -1, "v")), ErrBadPath, ""},
		{"rev below -1", tx(set("/f", -2, "v")), ErrBadRequest, ""},
		{"under /ctl from a client", tx(set("/ctl/x", -1, "v")), ErrPermission, ""},
		{"/ctl itself from a client", tx(set("/ctl", -1, "v")), ErrPermission, ""},
		{"under /ctl from the system", sys(tx(set("/ctl/x", -1, "v"))), nil, "set /ctl/x"},
		{"/ctlx is not /ctl", tx(set("/ctlx", -1, "v")), nil, "set /ctlx"},
		{"with a live lease", tx(setLease("/n", 0, "v", 1)), nil, "set /n"},
		{"with a revoked lease", tx(setLease("/n", 0, "v", 2)), ErrNoLease, ""},
		{"with a never-granted lease", tx(setLease("/n", 0, "v", 7)), ErrNoLease, ""},
		{"with a negative lease", tx(setLease("/n", 0, "v", -1)), ErrNoLease, ""},
		{"empty body", tx(set("/n", 0, "")), nil, "set /n"},
	})
}

func TestDelFollowsTheRules(t *testing.T) {
	runRules(t, []ruleCase{
		{"file with clobber", tx(del("/f", -1)), nil, "del /f"},
		{"file with its rev", tx(del("/f", 1)), nil, "del /f"},
		{"file with rev 0", tx(del("/f", 0)), ErrRevMismatch, ""},
		{"file with an older rev", tx(del("/d/g", 2)), ErrRevMismatch, ""},
		{"missing with clobber", tx(del("/n", -1)), ErrNoEnt, ""},
		{"missing with rev > 0", tx(del("/n", 3)), ErrNoEnt, ""},
		{"missing with rev 0 is a no-op", tx(del("/n", 0)), nil, ""},
		{"missing parent", tx(del("/n/m", -1)), ErrNoEnt, ""},
		{"empty dir", tx(del("/e", -1)), nil, "del /e"},
		{"empty dir with its rev", tx(del("/e", 4)), nil, "del /e"},
		{"empty dir with rev 0", tx(del("/e", 0)), ErrRevMismatch, ""},
		{"non-empty dir", tx(del("/d", -1)), ErrNotEmpty, ""},
		{"non-empty dir with an older rev", tx(del("/d", 2)), ErrRevMismatch, ""},
		{"the root", tx(del("/", -1)), ErrIsDir, ""},
		{"the root with rev 0", tx(del("/", 0)), ErrIsDir, ""},
		{"below a file", tx(del("/f/x", -1)), ErrNotDir, ""},
		{"below a file with rev 0", tx(del("/f/x", 0)), ErrNotDir, ""},
		{"bad path", tx(del("/f/", -1)), ErrBadPath, ""},
		{"under /ctl from a client", tx(del("/ctl/c", -1)), ErrPermission, ""},
		{"missing under /ctl from a client", tx(del("/ctl/n", 0)), ErrPermission, ""},
		{"under /ctl from the system", sys(tx(del("/ctl/c", -1))), nil, "del /ctl/c"},
	})
}

func TestMkdirFollowsTheRules(t *testing.T) {
	runRules(t, []ruleCase{
		{"new with clobber", tx(mkdir("/n", -1)), nil, "mkdir /n"},
		{"new with rev 0", tx(mkdir("/n", 0)), nil, "mkdir /n"},
		{"new with rev > 0", tx(mkdir("/n", 5)), ErrRevMismatch, ""},
		{"with missing parents", tx(mkdir("/a/b/c", 0)), nil, "mkdir /a, mkdir /a/b, mkdir /a/b/c"},
		{"existing dir with rev 0", tx(mkdir("/e", 0)), ErrRevMismatch, ""},
		{"existing dir with clobber changes nothing", tx(mkdir("/e", -1)), nil, ""},
		{"existing dir with its rev changes nothing", tx(mkdir("/e", 4)), nil, ""},
		{"existing dir with an older rev", tx(mkdir("/d", 2)), ErrRevMismatch, ""},
		{"the root with clobber", tx(mkdir("/", -1)), nil, ""},
		{"the root with rev 0", tx(mkdir("/", 0)), ErrRevMismatch, ""},
		{"existing file with rev 0", tx(mkdir("/f", 0)), ErrRevMismatch, ""},
		{"existing file with clobber", tx(mkdir("/f", -1)), ErrNotDir, ""},
		{"existing file with its rev", tx(mkdir("/f", 1)), ErrNotDir, ""},
		{"below a file", tx(mkdir("/f/x", -1)), ErrNotDir, ""},
		{"bad path", tx(mkdir("/x/..", -1)), ErrBadPath, ""},
		{"under /ctl from a client", tx(mkdir("/ctl/x", -1)), ErrPermission, ""},
		{"existing /ctl from a client", tx(mkdir("/ctl", -1)), ErrPermission, ""},
		{"under /ctl from the system", sys(tx(mkdir("/ctl/x", 0))), nil, "mkdir /ctl/x"},
	})
}

func TestCheckFollowsTheRules(t *testing.T) {
	runRules(t, []ruleCase{
		{"file with its rev", tx(check("/f", 1)), nil, ""},
		{"file with clobber", tx(check("/f", -1)), nil, ""},
		{"file with rev 0", tx(check("/f", 0)), ErrRevMismatch, ""},
		{"file with an older rev", tx(check("/d/g", 2)), ErrRevMismatch, ""},
		{"missing with rev 0", tx(check("/n", 0)), nil, ""},
		{"missing with clobber", tx(check("/n", -1)), ErrNoEnt, ""},
		{"missing with rev > 0", tx(check("/n", 3)), ErrNoEnt, ""},
		{"dir with its rev", tx(check("/d", 3)), nil, ""},
		{"dir with an older rev", tx(check("/d", 2)), ErrRevMismatch, ""},
		{"the root with clobber", tx(check("/", -1)), nil, ""},
		{"below a file", tx(check("/f/x", 0)), ErrNotDir, ""},
		{"bad path", tx(check("//", 0)), ErrBadPath, ""},
		{"/ctl from a client may be checked", tx(check("/ctl/c", -1)), nil, ""},
	})
}

func TestOtherMutationsFollowTheRules(t *testing.T) {
	runRules(t, []ruleCase{
		{"nil mutation", nil, ErrBadRequest, ""},
		{"unknown mutation kind", &Mutation{Kind: 99}, ErrBadRequest, ""},
		{"zero mutation kind", &Mutation{}, ErrBadRequest, ""},
		{"unknown op kind", tx(Op{Kind: 9, Path: "/n"}), ErrBadRequest, ""},
		{"zero op kind", tx(Op{Path: "/n"}), ErrBadRequest, ""},
		{"nop", &Mutation{Kind: MutNop}, nil, ""},
		{"empty txn", tx(), nil, ""},
		{"grant", &Mutation{Kind: MutLeaseGrant, TTL: 5}, nil, ""},
		{"grant with zero TTL", &Mutation{Kind: MutLeaseGrant}, ErrBadRequest, ""},
		{"grant with negative TTL", &Mutation{Kind: MutLeaseGrant, TTL: -1}, ErrBadRequest, ""},
		{"renew live", &Mutation{Kind: MutLeaseRenew, Lease: 1}, nil, ""},
		{"renew revoked", &Mutation{Kind: MutLeaseRenew, Lease: 2}, ErrNoLease, ""},
		{"renew unknown", &Mutation{Kind: MutLeaseRenew, Lease: 3}, ErrNoLease, ""},
		{"revoke without files", &Mutation{Kind: MutLeaseRevoke, Lease: 1}, nil, ""},
		{"revoke revoked", &Mutation{Kind: MutLeaseRevoke, Lease: 2}, ErrNoLease, ""},
		{"expire unknown", &Mutation{Kind: MutLeaseExpire, Lease: 0}, ErrNoLease, ""},
	})
}

func TestNilMutationIsBadRequest(t *testing.T) {
	_, err := New(Config{}).Apply(nil)
	wantErr(t, "Apply(nil)", err, ErrBadRequest)
}

func TestFailedMutationTakesNoRevision(t *testing.T) {
	tr := New(Config{})
	mustOps(t, tr, set("/a", 0, "1"))
	for _, m := range []*Mutation{tx(set("/a", 0, "2")), tx(del("/b", -1)), tx(set("/a/b", -1, ""))} {
		if _, err := tr.Apply(m); err == nil {
			t.Fatalf("%s succeeded", describe(m))
		}
	}
	res := mustApply(t, tr, tx(set("/b", 0, "3")))
	if res.Rev != 2 {
		t.Errorf("next change took rev %d, want 2 (failures take none)", res.Rev)
	}
	if _, err := tr.View().Stat("/ctl/err"); err == nil {
		t.Errorf("failures are not recorded in /ctl/err")
	}
}

func TestEveryChangeTakesTheNextRevisionAndTheRestNone(t *testing.T) {
	tr := New(Config{})
	steps := []struct {
		m    *Mutation
		want int64
	}{
		{tx(set("/a", 0, "1")), 1},
		{&Mutation{Kind: MutNop}, 1},
		{tx(check("/a", 1)), 1},
		{tx(mkdir("/", -1)), 1},
		{tx(set("/b", 0, "2"), set("/c", 0, "3"), del("/a", -1)), 2},
		{&Mutation{Kind: MutLeaseGrant, TTL: 1}, 2},
		{&Mutation{Kind: MutLeaseRenew, Lease: 1}, 2},
		{tx(setLease("/l", 0, "", 1)), 3},
		{&Mutation{Kind: MutLeaseRevoke, Lease: 1}, 4},
		{&Mutation{Kind: MutLeaseGrant, TTL: 1}, 4},
		{&Mutation{Kind: MutLeaseExpire, Lease: 2}, 4},
	}
	for i, s := range steps {
		res := mustApply(t, tr, s.m)
		if res.Rev != s.want || tr.Rev() != s.want {
			t.Fatalf("step %d: rev %d (tree %d), want %d", i, res.Rev, tr.Rev(), s.want)
		}
	}
}

func TestFileRevAndTimeAreThoseOfItsLastChange(t *testing.T) {
	tr := New(Config{})
	mustApply(t, tr, &Mutation{Kind: MutTxn, Time: 100, Ops: []Op{set("/a", 0, "1")}})
	mustApply(t, tr, &Mutation{Kind: MutTxn, Time: 200, Ops: []Op{set("/b", 0, "2")}})
	mustApply(t, tr, &Mutation{Kind: MutTxn, Time: 300, Ops: []Op{set("/a", -1, "3")}})
	for p, want := range map[string]Stat{
		"/a": {Type: TypeFile, Size: 1, Rev: 3, Time: 300},
		"/b": {Type: TypeFile, Size: 1, Rev: 2, Time: 200},
	} {
		if got, _ := tr.View().Stat(p); got != want {
			t.Errorf("Stat(%s) = %+v, want %+v", p, got, want)
		}
	}
}

func TestDirectoryRevChangesOnlyWhenItsMembersDo(t *testing.T) {
	tr := New(Config{})
	at := func(time int64, ops ...Op) { mustApply(t, tr, &Mutation{Kind: MutTxn, Time: time, Ops: ops}) }
	stat := func(p string) Stat {
		st, err := tr.View().Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	at(10, set("/d/a", 0, "1")) // rev 1 creates /d
	if st := stat("/d"); st.Rev != 1 || st.Time != 10 || st.Children != 1 || st.Size != 1 {
		t.Fatalf("/d after create: %+v", st)
	}
	at(20, set("/d/a", -1, "2")) // rev 2 changes a body: /d keeps rev 1
	if st := stat("/d"); st.Rev != 1 || st.Time != 10 {
		t.Fatalf("/d after a body change: %+v, want rev 1", st)
	}
	at(30, set("/d/b", 0, "3")) // rev 3 adds a child
	if st := stat("/d"); st.Rev != 3 || st.Time != 30 || st.Children != 2 {
		t.Fatalf("/d after an add: %+v, want rev 3", st)
	}
	at(40, set("/d/sub/x", 0, "4")) // rev 4 adds /d/sub (a child of /d) and /d/sub/x
	if st := stat("/d"); st.Rev != 4 || st.Children != 3 {
		t.Fatalf("/d after an add below: %+v, want rev 4", st)
	}
	at(50, set("/d/sub/y", 0, "5")) // rev 5: a grandchild does not count
	if st := stat("/d"); st.Rev != 4 {
		t.Fatalf("/d after a grandchild: %+v, want rev 4", st)
	}
	if st := stat("/d/sub"); st.Rev != 5 || st.Time != 50 {
		t.Fatalf("/d/sub: %+v, want rev 5", st)
	}
	at(60, del("/d/a", -1)) // rev 6 removes a child
	if st := stat("/d"); st.Rev != 6 || st.Time != 60 || st.Children != 2 {
		t.Fatalf("/d after a delete: %+v, want rev 6", st)
	}
	if st := stat("/"); st.Rev != 1 || st.Time != 10 {
		t.Fatalf("/: %+v, want rev 1 (made /d)", st)
	}
}

func TestDirectoriesDoNotVanishWhenEmptied(t *testing.T) {
	tr := New(Config{})
	mustOps(t, tr, set("/x/y/z", 0, "v"), del("/x/y/z", -1))
	for _, p := range []string{"/x", "/x/y"} {
		st, err := tr.View().Stat(p)
		if err != nil || st.Type != TypeDir {
			t.Errorf("Stat(%s) = %+v, %v; want a directory", p, st, err)
		}
	}
	if ents, _ := tr.View().GetDir("/x/y"); len(ents) != 0 {
		t.Errorf("GetDir(/x/y) = %v, want empty", ents)
	}
}

func TestApplyKeepsTheBodyItIsGiven(t *testing.T) {
	tr := New(Config{})
	body := []byte("shared")
	mustOps(t, tr, Op{Kind: OpSet, Path: "/a", Rev: 0, Body: body})
	got, _, _ := tr.View().Get("/a")
	if &got[0] != &body[0] {
		t.Errorf("Get returned a copy of the body; the tree should keep the caller's slice")
	}
}

func TestNodeNamesDoNotKeepTheMutationsPathAlive(t *testing.T) {
	tr := New(Config{})
	path := "/dir/file"
	mustOps(t, tr, set(path, 0, "x"), mkdir("/dir2", 0))
	lo := uintptr(unsafe.Pointer(unsafe.StringData(path)))
	for _, n := range []*node{tr.View().root.lookup("dir"), tr.View().root.lookup("dir").lookup("file")} {
		p := uintptr(unsafe.Pointer(unsafe.StringData(n.name)))
		if p >= lo && p < lo+uintptr(len(path)) {
			t.Errorf("node %q shares the bytes of the path %q", n.name, path)
		}
	}
}
