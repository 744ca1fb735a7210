package integration

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// value is shell w's n-th value: about 150 KiB, more than one FUSE write,
// and recognisable from any slice of it.
func value(w, n int) string {
	line := fmt.Sprintf("shell %d value %d\n", w, n)
	return strings.Repeat(line, 150<<10/len(line))
}

func TestConcurrentShellsOnBothMountsNeverTearAndLosersGetESTALE(t *testing.T) {
	c := newCluster(t)
	const shells, writes = 8, 20
	src := t.TempDir()
	whole := map[string]string{value(-1, 0): "the first value"}
	for w := range shells {
		for n := range writes {
			v := value(w, n)
			whole[v] = fmt.Sprintf("shell %d value %d", w, n)
			if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("%d-%d", w, n)), []byte(v), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.WriteFile(filepath.Join(c.m1, "f"), []byte(value(-1, 0)), 0o644); err != nil {
		t.Fatal(err)
	}
	start := c.rev()
	waitRev(t, c.m2, start)
	watch := c.watchStore("/**", start+1)

	// Each shell writes its values in turn with cat, which reports an
	// error from write(2) and from close(2); bash reports one from open.
	const script = `
for n in $(seq 0 $(($2 - 1))); do
	if { /bin/cat "$1/$3-$n" > f; } 2>"$1/err-$3"; then
		echo "ok $n"
	else
		echo "failed $n $(tr '\n' ' ' < "$1/err-$3")"
	fi
done`
	var (
		mu     sync.Mutex
		acked  = map[string]bool{}
		failed int
		wg     sync.WaitGroup
	)
	for w := range shells {
		dir := c.m1
		if w%2 == 1 {
			dir = c.m2
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := sh(dir, script, src, fmt.Sprint(writes), fmt.Sprint(w))
			if err != nil {
				t.Errorf("shell %d: %v\n%s", w, err, out)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				var n int
				if _, err := fmt.Sscanf(line, "ok %d", &n); err == nil {
					acked[value(w, n)] = true
					continue
				}
				if _, err := fmt.Sscanf(line, "failed %d", &n); err == nil {
					failed++
					if !strings.Contains(line, "Stale file handle") {
						t.Errorf("shell %d on %s: write %d failed with something else than ESTALE: %s", w, filepath.Base(dir), n, line)
					}
					continue
				}
				t.Errorf("shell %d: unexpected output %q", w, line)
			}
		}()
	}

	// Readers on both hosts meanwhile: never a torn value.
	stop := make(chan struct{})
	var rg sync.WaitGroup
	reads := make([]int, 2)
	for i, dir := range []string{c.m1, c.m2} {
		rg.Add(1)
		go func() {
			defer rg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				b, err := os.ReadFile(filepath.Join(dir, "f"))
				if err != nil {
					t.Errorf("reading %s/f: %v", filepath.Base(dir), err)
					return
				}
				if _, ok := whole[string(b)]; !ok {
					t.Errorf("%s read a torn value of %d bytes: %.60q…", filepath.Base(dir), len(b), b)
					return
				}
				reads[i]++
			}
		}()
	}
	wg.Wait()
	close(stop)
	rg.Wait()

	end := parseRev(t, c.mustCLI("end\n", "set", "/sentinel", "0"))
	committed := map[string]bool{}
	for _, ev := range since(watch.upTo(end), start) {
		if ev.rev == end || isSystem(ev.path) {
			continue
		}
		name, ok := whole[ev.body]
		switch {
		case ev.path != "/f" || ev.kind != "set":
			t.Errorf("unexpected event %v", ev)
		case !ok:
			t.Errorf("committed a torn value of %d bytes: %.60q…", len(ev.body), ev.body)
		case committed[ev.body]:
			t.Errorf("%s was committed twice", name)
		}
		committed[ev.body] = true
	}
	for v := range acked {
		if !committed[v] {
			t.Errorf("a write reported as done is not in the watch stream: %s", whole[v])
		}
	}
	for v := range committed {
		if !acked[v] {
			t.Errorf("a write reported as failed was committed: %s", whole[v])
		}
	}
	t.Logf("%d writes done, %d lost the race with ESTALE; %d and %d whole reads on m1 and m2",
		len(acked), failed, reads[0], reads[1])
	if len(acked)+failed != shells*writes {
		t.Errorf("%d writes done and %d failed, of %d", len(acked), failed, shells*writes)
	}
	if len(acked) == 0 {
		t.Errorf("no write succeeded")
	}
	last := read(t, filepath.Join(c.m1, "f"))
	waitRev(t, c.m2, end)
	if got := read(t, filepath.Join(c.m2, "f")); !bytes.Equal([]byte(got), []byte(last)) {
		t.Errorf("m1 and m2 end with different values: %s and %s", whole[last], whole[got])
	}
}
