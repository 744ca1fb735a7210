package mount

import (
	"context"
	"path/filepath"
	"sync"
	"testing"

	"github.com/doozerfs/doozerfs/fs"
	"github.com/doozerfs/doozerfs/mount/internal/teststore"
)

// quiesce waits until m has no open file handle (every RELEASE, and the
// commit it may make, is done), so that a revision count is final.
func quiesce(t testing.TB, m *Mounted) {
	t.Helper()
	eventually(t, "every handle released", func() bool {
		m.f.mu.Lock()
		hidden := false
		for _, e := range m.f.overlay {
			hidden = hidden || e.kind == entHidden
		}
		m.f.mu.Unlock()
		return m.f.open.Load() == 0 && !hidden
	})
}

// storeLog follows a store's events from now on, as the events of any
// watcher of the cluster would arrive.
type storeLog struct {
	mu   sync.Mutex
	evs  []fs.Event
	stop context.CancelFunc
	done chan struct{}
}

func followStore(t testing.TB, s *teststore.Store) *storeLog {
	ctx, cancel := context.WithCancel(context.Background())
	l := &storeLog{stop: cancel, done: make(chan struct{})}
	from := s.Rev()
	go func() {
		defer close(l.done)
		for {
			cur, c := s.Changed()
			if cur > from {
				evs, err := s.Tree().Events(from+1, nil)
				if err != nil {
					panic(err)
				}
				l.mu.Lock()
				l.evs = append(l.evs, evs...)
				l.mu.Unlock()
				if len(evs) > 0 {
					from = evs[len(evs)-1].Rev
				}
			}
			select {
			case <-c:
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-l.done })
	return l
}

// since returns the events of revisions after rev.
func (l *storeLog) since(rev int64) []fs.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []fs.Event
	for _, ev := range l.evs {
		if ev.Rev > rev {
			out = append(out, ev)
		}
	}
	return out
}

func TestEachToolPublishesExactlyOneRevision(t *testing.T) {
	for _, tool := range []string{"python3", "vim", "sed", "cp", "tee", "truncate"} {
		requireTool(t, tool)
	}
	s, a, b := twoHosts(t)
	s.Set("/f", []byte("one\n"))
	log := followStore(t, s)

	// A reader on the other host, rereading f all along: it must only
	// ever see whole values that were committed.
	var (
		mu   sync.Mutex
		seen = map[string]bool{}
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			body, err := readFile(filepath.Join(b.Dir(), "f"))
			mu.Lock()
			if err != nil {
				seen["error: "+err.Error()] = true
			} else {
				seen[string(body)] = true
			}
			mu.Unlock()
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	steps := []struct {
		name, script string
		path, want   string
		from         string // a rename's source, deleted in the same revision
	}{
		{"echo to a new file", "echo hello > new", "/new", "hello\n", ""},
		{"echo over an existing file", "echo two > f", "/f", "two\n", ""},
		{"printf", "printf 'three\\n' > f", "/f", "three\n", ""},
		{"append", "echo four >> f", "/f", "three\nfour\n", ""},
		{"cp to a new file", "cp f copy", "/copy", "three\nfour\n", ""},
		{"cp over an existing file", "cp new f", "/f", "hello\n", ""},
		{"tee", "echo five | tee f >/dev/null", "/f", "five\n", ""},
		{"sed -i", "sed -i s/five/six/ f", "/f", "six\n", ""},
		{"truncate -s", "truncate -s 2 f", "/f", "si", ""},
		{"mv", "mv copy moved", "/moved", "three\nfour\n", "/copy"},
		{"python", `python3 -c "open('f', 'w').write('seven\n')"`, "/f", "seven\n", ""},
		{"vim in place", `vim -es -u NONE -N -c 'normal Aeight' -c wq f`, "/f", "seveneight\n", ""},
		{"vim with backup by rename", `vim -es -u NONE -N -c 'set backupskip=' -c 'normal Anine' -c wq f`, "/f", "seveneightnine\n", ""},
	}
	valid := map[string]bool{"one\n": true}
	for _, st := range steps {
		before := s.Rev()
		bash(t, a.Dir(), st.script)
		quiesce(t, a)
		if got := s.Rev(); got != before+1 {
			t.Errorf("%s: %d new revisions, want 1: %v", st.name, got-before, log.since(before))
			continue
		}
		if got, _ := storeBody(s, st.path); got != st.want {
			t.Errorf("%s: store has %q, want %q", st.name, got, st.want)
		}
		for _, ev := range log.since(before) {
			switch {
			case ev.Path == st.path && ev.Kind == fs.EventSet && string(ev.Body) == st.want:
			case ev.Path == st.from && ev.Kind == fs.EventDel:
			default:
				t.Errorf("%s: unexpected event %v %s %q", st.name, ev.Kind, ev.Path, ev.Body)
			}
		}
		if got := mustRead(t, filepath.Join(b.Dir(), st.path)); got != st.want {
			t.Errorf("%s: the other host reads %q, want %q", st.name, got, st.want)
		}
		if st.path == "/f" {
			mu.Lock()
			valid[st.want] = true
			mu.Unlock()
		}
	}
	close(stop)
	wg.Wait()
	stop = make(chan struct{}) // for the deferred close
	t.Logf("reader saw %d distinct values: %v", len(seen), seen)
	for v := range seen {
		if !valid[v] {
			t.Errorf("the other host read %q, which was never committed", v)
		}
	}
	if out := bash(t, a.Dir(), "ls -A"); out != "f\nmoved\nnew\n" {
		t.Errorf("ls -A after the tools: %q (temporary files left?)", out)
	}
}
