package fs

import "testing"

func TestResetTakesTheSourceStateAndForgetsHistory(t *testing.T) {
	dst := New(Config{History: 100})
	src := New(Config{History: 100})
	for i, tr := range []*Tree{dst, src, src} {
		if _, err := tr.Apply(&Mutation{Kind: MutTxn, Ops: []Op{{Kind: OpSet, Path: "/f", Rev: Clobber, Body: []byte{byte('a' + i)}}}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := src.Apply(&Mutation{Kind: MutLeaseGrant, TTL: 5}); err != nil {
		t.Fatal(err)
	}
	if err := dst.Reset(src); err != nil {
		t.Fatal(err)
	}
	body, _, err := dst.View().Get("/f")
	if err != nil || string(body) != "c" || dst.Rev() != 2 {
		t.Fatalf("after reset: %q %v at rev %d, want \"c\" at 2", body, err, dst.Rev())
	}
	if _, err := dst.Events(1, mustGlob("/**")); KindOf(err) != KindTooLate {
		t.Fatalf("events before the reset: got %v, want TOO_LATE", err)
	}
	if ls := dst.Leases(); len(ls) != 1 {
		t.Fatalf("leases after reset: %v", ls)
	}
	if err := src.Reset(New(Config{})); KindOf(err) != KindBadRequest {
		t.Fatalf("reset backwards: got %v", err)
	}
}
