package fs

import (
	"fmt"
	"strings"
	"testing"
)

func TestLeaseIdsCountUpFromOneAndAreNeverReused(t *testing.T) {
	tr := New(Config{})
	var got []int64
	for i := 0; i < 3; i++ {
		id := grantLease(t, tr, 1e9)
		got = append(got, id)
		mustApply(t, tr, &Mutation{Kind: MutLeaseRevoke, Lease: id})
	}
	if fmt.Sprint(got) != "[1 2 3]" {
		t.Errorf("ids %v, want [1 2 3]", got)
	}
	if tr.Rev() != 0 {
		t.Errorf("grants and empty revokes took revisions: rev %d", tr.Rev())
	}
}

func TestLeasesListsLiveLeasesSortedById(t *testing.T) {
	tr := New(Config{})
	for _, ttl := range []int64{30, 10, 20} {
		grantLease(t, tr, ttl)
	}
	mustApply(t, tr, &Mutation{Kind: MutLeaseExpire, Lease: 2})
	if got, want := fmt.Sprint(tr.Leases()), "[{1 30} {3 20}]"; got != want {
		t.Errorf("Leases() = %s, want %s", got, want)
	}
}

func TestRevokeDeletesEveryFileOfTheLeaseInOneRevision(t *testing.T) {
	tr := New(Config{})
	id := grantLease(t, tr, 1e9)
	other := grantLease(t, tr, 1e9)
	mustOps(t, tr,
		setLease("/svc/web/b", 0, "10.0.0.2", id),
		setLease("/svc/web/a", 0, "10.0.0.1", id),
		setLease("/svc/db/x", 0, "10.0.0.3", other),
		set("/svc/web/static", 0, "forever"),
	)
	if got := strings.Join(tr.LeaseFiles(id), " "); got != "/svc/web/a /svc/web/b" {
		t.Fatalf("LeaseFiles = %q", got)
	}
	res := mustApply(t, tr, &Mutation{Kind: MutLeaseExpire, Lease: id, Time: 99})
	var evs []string
	for _, ev := range res.Events {
		evs = append(evs, fmt.Sprintf("%d %s %s t%d", ev.Rev, ev.Kind, ev.Path, ev.Time))
	}
	if got, want := strings.Join(evs, ", "), "5 del /svc/web/a t99, 5 del /svc/web/b t99"; got != want {
		t.Errorf("events %q, want %q", got, want)
	}
	if res.Lease != id || tr.Rev() != 5 {
		t.Errorf("result %+v, tree rev %d", res, tr.Rev())
	}
	ents, _ := tr.View().GetDir("/svc/web")
	if len(ents) != 1 || ents[0].Name != "static" {
		t.Errorf("/svc/web = %v, want only static (the directory stays)", ents)
	}
	if len(tr.LeaseFiles(id)) != 0 || len(tr.LeaseFiles(other)) != 1 {
		t.Errorf("LeaseFiles after expiry: %v, %v", tr.LeaseFiles(id), tr.LeaseFiles(other))
	}
	_, err := tr.Apply(&Mutation{Kind: MutLeaseRenew, Lease: id})
	wantErr(t, "renew expired", err, ErrNoLease)
}

func TestSetWithoutLeaseUnbindsAFileAndAnotherLeaseRebindsIt(t *testing.T) {
	tr := New(Config{})
	a, b := grantLease(t, tr, 1e9), grantLease(t, tr, 1e9)
	mustOps(t, tr, setLease("/f", 0, "1", a))
	if st, _ := tr.View().Stat("/f"); st.Lease != a {
		t.Fatalf("Stat.Lease = %d, want %d", st.Lease, a)
	}
	mustOps(t, tr, setLease("/f", -1, "2", b))
	if len(tr.LeaseFiles(a)) != 0 || len(tr.LeaseFiles(b)) != 1 {
		t.Fatalf("rebinding: a has %v, b has %v", tr.LeaseFiles(a), tr.LeaseFiles(b))
	}
	mustOps(t, tr, set("/f", -1, "3"))
	if st, _ := tr.View().Stat("/f"); st.Lease != 0 || len(tr.LeaseFiles(b)) != 0 {
		t.Fatalf("after a plain SET: lease %d, b has %v", st.Lease, tr.LeaseFiles(b))
	}
	rev := tr.Rev()
	mustApply(t, tr, &Mutation{Kind: MutLeaseRevoke, Lease: b})
	if tr.Rev() != rev {
		t.Errorf("revoking a lease without files took a revision")
	}
	if _, err := tr.View().Stat("/f"); err != nil {
		t.Errorf("an unbound file went with its old lease: %v", err)
	}
}

func TestDeletingALeasedFileUnbindsIt(t *testing.T) {
	tr := New(Config{})
	id := grantLease(t, tr, 1e9)
	mustOps(t, tr, setLease("/f", 0, "1", id), del("/f", -1), set("/f", 0, "plain"))
	mustApply(t, tr, &Mutation{Kind: MutLeaseRevoke, Lease: id})
	if _, err := tr.View().Stat("/f"); err != nil {
		t.Errorf("revoke deleted a file that was only once bound: %v", err)
	}
}

func TestClientRevokeOfALeaseHoldingCtlFilesIsPermissionButExpiryIsNot(t *testing.T) {
	tr := New(Config{})
	id := grantLease(t, tr, 1e9)
	mustApply(t, tr, &Mutation{Kind: MutTxn, System: true, Ops: []Op{setLease("/ctl/node/n1/addr", 0, "x", id)}})
	_, err := tr.Apply(&Mutation{Kind: MutLeaseRevoke, Lease: id})
	wantErr(t, "client revoke", err, ErrPermission)
	if len(tr.Leases()) != 1 {
		t.Fatalf("a refused revoke dropped the lease")
	}
	mustApply(t, tr, &Mutation{Kind: MutLeaseExpire, Lease: id})
	if _, err := tr.View().Stat("/ctl/node/n1/addr"); !isKind(err, KindNoEnt) {
		t.Errorf("expiry left the /ctl file: %v", err)
	}
}

func TestLeaseFilesOfAnUnknownLeaseIsEmpty(t *testing.T) {
	if got := New(Config{}).LeaseFiles(42); len(got) != 0 {
		t.Errorf("LeaseFiles(42) = %v", got)
	}
}
