package integration

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestEachToolPublishesExactlyOneWholeRevision(t *testing.T) {
	requireTools(t, "python3", "vim", "sed", "cp", "tee", "truncate")
	c := newCluster(t)
	// The tools work in /w; the replicas write /ctl on their own.
	mustSh(t, c.m1, "mkdir w && echo one > w/f")
	start := c.rev()
	waitRev(t, c.m2, start)
	w := c.watchStore("/**", start+1)
	m1, m2 := filepath.Join(c.m1, "w"), filepath.Join(c.m2, "w")

	// A reader on the other host rereads f all along: it must only ever
	// see whole values that were committed.
	var (
		mu   sync.Mutex
		seen = map[string]int{}
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
			b, err := os.ReadFile(filepath.Join(m2, "f"))
			v := string(b)
			if err != nil {
				v = "error: " + err.Error()
			}
			mu.Lock()
			seen[v]++
			mu.Unlock()
		}
	}()
	stopReader := func() {
		select {
		case <-stop:
		default:
			close(stop)
			wg.Wait()
		}
	}
	defer stopReader()

	type step struct {
		name, script string
		path, want   string
		from         string // a rename's source, deleted in the same revision
	}
	steps := []step{
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
		{"vim in place", `vim -es -u NONE -N -c 'set backupskip=*' -c 'normal Aeight' -c wq f`, "/f", "seveneight\n", ""},
		{"vim with backup by rename", `vim -es -u NONE -N -c 'set backupskip=' -c 'normal Anine' -c wq f`, "/f", "seveneightnine\n", ""},
	}
	valid := map[string]bool{"one\n": true}
	revOf := map[int64]step{}
	for _, st := range steps {
		before := c.rev()
		mustSh(t, m1, st.script)
		after := c.rev()
		revs := userRevs(since(w.upTo(after), before))
		if len(revs) != 1 {
			t.Errorf("%s: %d new revisions, want 1: %v", st.name, len(revs), since(w.upTo(after), before))
		}
		for _, rev := range revs {
			revOf[rev] = st
		}
		if st.path == "/f" {
			valid[st.want] = true
		}
		if got := read(t, filepath.Join(m1, st.path)); got != st.want {
			t.Errorf("%s: m1 reads %q, want %q", st.name, got, st.want)
		}
		waitRev(t, c.m2, after)
		if got := read(t, filepath.Join(m2, st.path)); got != st.want {
			t.Errorf("%s: m2 reads %q, want %q", st.name, got, st.want)
		}
	}

	// A last revision from elsewhere: once the watch shows it, it has
	// shown everything the tools made, late commits included.
	end := parseRev(t, c.mustCLI("end\n", "set", "/sentinel", "0"))
	for _, ev := range since(w.upTo(end), start) {
		if ev.rev == end || isSystem(ev.path) {
			continue
		}
		st, ok := revOf[ev.rev]
		switch {
		case !ok:
			t.Errorf("a revision no tool accounts for: %v", ev)
		case ev.path == "/w"+st.path && ev.kind == "set" && ev.body == st.want:
		case ev.path == "/w"+st.from && ev.kind == "del":
		default:
			t.Errorf("%s: the watch saw %v, want set %s %q", st.name, ev, st.path, st.want)
		}
	}

	stopReader()
	t.Logf("the reader on m2 saw %d distinct values", len(seen))
	for v, n := range seen {
		if !valid[v] {
			t.Errorf("m2 read %q (%d times), which was never committed", v, n)
		}
	}
	if got := mustSh(t, m2, "ls -A"); got != "f\nmoved\nnew\n" {
		t.Errorf("ls -A on m2 after the tools: %q (temporary files left?)", got)
	}
	if got := mustSh(t, m1, "ls -A"); got != "f\nmoved\nnew\n" {
		t.Errorf("ls -A on m1 after the tools: %q (temporary files left?)", got)
	}
}

// isSystem reports whether path is under /ctl, which the replicas write
// on their own.
func isSystem(path string) bool {
	return path == "/ctl" || strings.HasPrefix(path, "/ctl/")
}

// userRevs returns the revisions of evs that change something outside
// /ctl, in order.
func userRevs(evs []event) []int64 {
	var revs []int64
	for _, ev := range evs {
		if !isSystem(ev.path) && (len(revs) == 0 || revs[len(revs)-1] != ev.rev) {
			revs = append(revs, ev.rev)
		}
	}
	return revs
}

// since returns the events of revisions after rev.
func since(evs []event, rev int64) []event {
	var out []event
	for _, ev := range evs {
		if ev.rev > rev {
			out = append(out, ev)
		}
	}
	return out
}
