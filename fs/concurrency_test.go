package fs

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
)

// TestReadsRunSafelyWhileApplyRuns runs readers of every kind against one
// applying goroutine; under -race it checks the concurrency contract, and
// it checks that every view a reader gets shows whole transactions.
func TestReadsRunSafelyWhileApplyRuns(t *testing.T) {
	tr := New(Config{History: 50})
	const writes = 1500
	done := make(chan struct{})
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func(r int) {
			defer wg.Done()
			errc <- readUntilDone(tr, r, done)
		}(r)
	}
	for i := 1; i <= writes; i++ {
		v := []byte(fmt.Sprint(i))
		m := tx(Op{Kind: OpSet, Path: "/x", Rev: -1, Body: v}, Op{Kind: OpSet, Path: "/y/z", Rev: -1, Body: v})
		if i%100 == 0 {
			m = &Mutation{Kind: MutLeaseGrant, TTL: int64(i)}
		}
		if _, err := tr.Apply(m); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			t.Error(err)
		}
	}
}

func readUntilDone(tr *Tree, r int, done <-chan struct{}) error {
	last := int64(0)
	g := mustGlob("/**")
	for n := 0; ; n++ {
		select {
		case <-done:
			return nil
		default:
		}
		v := tr.View()
		if v.Rev() < last {
			return fmt.Errorf("reader %d: revision went back from %d to %d", r, last, v.Rev())
		}
		last = v.Rev()
		if err := sameXY(v); err != nil {
			return err
		}
		if old, err := tr.ViewAt(tr.Oldest()); err == nil {
			if err := sameXY(old); err != nil {
				return err
			}
		}
		v.Walk(g, func(string, Stat, []byte) bool { return true })
		v.GetDir("/y")
		if _, err := tr.Events(tr.Rev(), g); err != nil && KindOf(err) != KindTooLate {
			return err
		}
		tr.Leases()
		tr.LeaseFiles(1)
		if n%50 == r {
			var buf bytes.Buffer
			if err := tr.WriteSnapshot(&buf); err != nil {
				return err
			}
		}
	}
}

// sameXY checks that /x and /y/z, always set together, agree in v.
func sameXY(v *View) error {
	x, _, errx := v.Get("/x")
	z, _, errz := v.Get("/y/z")
	if (errx == nil) != (errz == nil) || !bytes.Equal(x, z) {
		return fmt.Errorf("view %d shows half a transaction: /x=%q (%v), /y/z=%q (%v)", v.Rev(), x, errx, z, errz)
	}
	return nil
}
