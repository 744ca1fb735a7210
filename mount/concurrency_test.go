package mount

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/doozerfs/doozerfs/fs"
)

// value is writer w's n-th value: about 150 KiB, more than one FUSE write,
// and recognisable from any slice of it.
func value(w, n int) []byte {
	line := fmt.Sprintf("writer %d value %d\n", w, n)
	return bytes.Repeat([]byte(line), 150<<10/len(line))
}

func TestConcurrentWritersThroughBothMountsNeverLoseOrTear(t *testing.T) {
	requireTool(t, "python3")
	s, a, b := twoHosts(t)
	s.Set("/f", value(-1, 0))
	log := followStore(t, s)
	start := s.Rev()

	whole := map[string]bool{string(value(-1, 0)): true}
	const writers, writes = 6, 6
	for w := range writers {
		for n := range writes {
			whole[string(value(w, n))] = true
		}
	}
	src := t.TempDir()
	for w := range writers {
		for n := range writes {
			if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("%d-%d", w, n)), value(w, n), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}

	var mu sync.Mutex
	acked := map[string]bool{}
	failed := 0
	var wg sync.WaitGroup
	for w := range writers {
		m := a
		if w%2 == 1 {
			m = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range writes {
				in := filepath.Join(src, fmt.Sprintf("%d-%d", w, n))
				var out string
				var err error
				if n%2 == 0 {
					out, err = run(t, m.Dir(), "bash", "-c", `/bin/cat "$1" > f`, "-", in)
				} else {
					out, err = run(t, m.Dir(), "python3", "-c", "import sys\nwith open('f', 'w') as f: f.write(open(sys.argv[1]).read())", in)
				}
				mu.Lock()
				if err == nil {
					acked[string(value(w, n))] = true
				} else {
					failed++
					if !strings.Contains(string(out), "Stale file handle") {
						t.Errorf("writer %d: %v: %s", w, err, out)
					}
				}
				mu.Unlock()
			}
		}()
	}
	// Readers on both hosts meanwhile.
	stop := make(chan struct{})
	var rg sync.WaitGroup
	for _, m := range []*Mounted{a, b} {
		rg.Add(1)
		go func() {
			defer rg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				body, err := readFile(filepath.Join(m.Dir(), "f"))
				if err != nil {
					t.Errorf("read: %v", err)
					return
				}
				if !whole[string(body)] {
					t.Errorf("read a torn value of %d bytes: %.60q…", len(body), body)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	rg.Wait()
	quiesce(t, a)
	quiesce(t, b)

	committed := map[string]bool{}
	for _, ev := range log.since(start) {
		if ev.Path != "/f" || ev.Kind != fs.EventSet {
			t.Errorf("unexpected event %v %s", ev.Kind, ev.Path)
			continue
		}
		if !whole[string(ev.Body)] {
			t.Errorf("committed a torn value of %d bytes", len(ev.Body))
		}
		committed[string(ev.Body)] = true
	}
	for v := range acked {
		if !committed[v] {
			t.Errorf("an acknowledged write was lost: %.30q", v)
		}
	}
	for v := range committed {
		if !acked[v] {
			t.Errorf("a write reported as failed was committed: %.30q", v)
		}
	}
	t.Logf("%d writes acknowledged, %d lost the race with ESTALE", len(acked), failed)
	if len(acked) == 0 {
		t.Errorf("no write succeeded")
	}
}
