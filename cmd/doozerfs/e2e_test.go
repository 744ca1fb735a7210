package main

// End-to-end tests of the command line (SPEC §5): the real binary, run as
// a child process against real `doozerfs serve` processes. Helpers are in
// e2e_helpers_test.go.

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/doozerfs/doozerfs/fs"
)

func TestE2EHelpAndVersion(t *testing.T) {
	t.Parallel()
	r := dz(t, nil, "", "help")
	if r.code != exitOK {
		t.Fatalf("help: %v", r)
	}
	for _, name := range []string{"serve", "get", "set", "add", "del", "mkdir", "rev", "stat", "ls", "find",
		"wait", "watch", "touch", "nop", "status", "members", "snapshot"} {
		if !strings.Contains(r.stdout, "\n  "+name+" ") {
			t.Errorf("help does not list %s:\n%s", name, r.stdout)
		}
	}
	for _, want := range []string{"-a/--addr", "DOOZERFS_ADDR", "--secret", "Exit status"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("help does not mention %s:\n%s", want, r.stdout)
		}
	}
	for _, args := range [][]string{{"--help"}, {"-h"}} {
		if r2 := dz(t, nil, "", args...); r2.code != exitOK || r2.stdout != r.stdout {
			t.Errorf("%v differs from help: %v", args, r2)
		}
	}
	// No command at all is a usage mistake, answered with the help.
	if r2 := dz(t, nil, ""); r2.code != exitUsage || r2.stdout != r.stdout {
		t.Errorf("no arguments: want exit 2 and the help, got %v", r2)
	}

	want := "doozerfs " + Version + "\n"
	for _, args := range [][]string{{"version"}, {"--version"}} {
		if r := dz(t, nil, "", args...); r.code != exitOK || r.stdout != want {
			t.Errorf("want %q, got %v", want, r)
		}
	}
}

// TestE2EUsage checks that every usage mistake ends with status 2 before
// any replica is dialled (the address is one nobody listens on, which
// would give 3).
func TestE2EUsage(t *testing.T) {
	t.Parallel()
	env := []string{"DOOZERFS_ADDR=127.0.0.1:" + strconv.Itoa(freePort(t))}
	for _, args := range [][]string{
		{"frobnicate"},
		{"get"},
		{"get", "/a", "/b"},
		{"get", "/a", "--bogus"},
		{"get", "--bogus", "/a"},
		{"get", "/a", "--rev"},
		{"get", "/a", "--rev", "yesterday"},
		{"get", "/a", "--timeout", "soon"},
		{"set", "/a"},
		{"set", "/a", "1", "2"},
		{"set", "/a", "notarev"},
		{"set", "/a", "-2"},
		{"set", "--", "/a"},
		{"add"},
		{"add", "/a", "/b"},
		{"del", "/a"},
		{"del", "/a", "x"},
		{"mkdir"},
		{"rev", "extra"},
		{"nop", "extra"},
		{"stat"},
		{"ls"},
		{"find"},
		{"touch"},
		{"wait"},
		{"wait", "/a", "--rev", "-5"},
		{"watch"},
		{"watch", "/a", "/b"},
		{"watch", "/a", "--nope"},
		{"status", "x"},
		{"members", "x", "y"},
		{"snapshot"},
		{"snapshot", "frob"},
		{"snapshot", "save"},
		{"snapshot", "save", "a", "b"},
		{"snapshot", "restore", "f"},
		{"snapshot", "restore", "--data", "d"},
		{"snapshot", "restore", "f", "--bogus", "x"},
		{"serve", "extra"},
		{"serve", "--bogus"},
		{"serve", "--log-level", "loud"},
	} {
		r := dz(t, env, "", args...)
		usage(t, r)
		if r.code == exitUsage && args[0] != "frobnicate" && !strings.Contains(r.stderr, "usage") {
			t.Errorf("%v: no usage line on stderr: %q", args, r.stderr)
		}
	}

	t.Run("recipes", func(t *testing.T) {
		var dialled []string
		for _, args := range [][]string{
			{"elect", "/leader"},                    // no --value
			{"register", "/r", "--ttl", "0s"},       // no positive ttl
			{"register", "/r", "--ttl", "soon"},     // not a duration
			{"lock", "/l"},                          // no command
			{"register", "/a", "/b", "--ttl", "1s"}, // too many paths
		} {
			r := dz(t, env, "", args...)
			if r.code == exitUnreachable {
				dialled = append(dialled, strings.Join(args, " "))
				continue
			}
			usage(t, r)
		}
		if len(dialled) > 0 {
			t.Errorf("these usage mistakes dial first, so with no replica reachable they exit 3, not 2: %q", dialled)
		}
	})
}

// TestE2EUnreachable: status 3 when no replica answers.
func TestE2EUnreachable(t *testing.T) {
	t.Parallel()
	dead1 := "127.0.0.1:" + strconv.Itoa(freePort(t))
	dead2 := "127.0.0.1:" + strconv.Itoa(freePort(t))
	for _, args := range [][]string{
		{"rev", "-a", dead1, "--timeout", "2s"},
		{"get", "/x", "--addr", dead1 + "," + dead2, "--timeout", "2s"},
		{"set", "/x", "-1", "--addr=" + dead1},
		{"status", "-a", dead1},
		{"snapshot", "save", filepath.Join(t.TempDir(), "snap"), "-a", dead1},
	} {
		r := dz(t, nil, "body", args...)
		if r.code != exitUnreachable || !strings.Contains(r.stderr, "UNAVAILABLE") || !strings.Contains(r.stderr, dead1) {
			t.Errorf("want exit 3 naming %s, got %v", dead1, r)
		}
	}
	// The same through the environment.
	if r := dz(t, []string{"DOOZERFS_ADDR=" + dead2}, "", "rev"); r.code != exitUnreachable {
		t.Errorf("DOOZERFS_ADDR=%s: want exit 3, got %v", dead2, r)
	}

	// A port that accepts connections but never answers HELLO: the
	// --timeout ends the dial, and that is still "no replica reachable".
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var held []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	})
	mute := ln.Addr().String()
	for _, args := range [][]string{
		{"rev", "-a", mute, "--timeout", "300ms"},
		{"get", "/x", "-a", mute, "--timeout", "300ms"},
	} {
		start := time.Now()
		r := dz(t, nil, "", args...)
		if r.code != exitUnreachable {
			t.Errorf("a replica that never answers: want exit 3, got %v", r)
		}
		if d := time.Since(start); d > 4*time.Second {
			t.Errorf("%v took %v despite --timeout 300ms", args, d)
		}
	}
}

func TestE2EAddressFlags(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	dead := "127.0.0.1:" + strconv.Itoa(freePort(t))
	rev := s.okRev(t, "x", "set", "/f", "missing")
	for _, args := range [][]string{
		{"rev", "-a", s.addr},
		{"rev", "--addr", s.addr},
		{"rev", "--addr=" + s.addr},
		{"rev", "-a=" + s.addr},
		{"rev", "-a", dead + "," + s.addr}, // the first address is down: the next is tried
		{"rev", "-a", s.addr, "--timeout", "5s", "--consistent"},
	} {
		// DOOZERFS_ADDR names a dead replica: the flag wins.
		r := dz(t, []string{"DOOZERFS_ADDR=" + dead}, "", args...)
		if r.code != 0 || r.stdout != fmt.Sprintln(rev) {
			t.Errorf("want rev %d, got %v", rev, r)
		}
	}
	if got := s.ok(t, "", "get", "/f", "--consistent"); got != "x" {
		t.Errorf("consistent get: %q", got)
	}
}

func TestE2ESetGet(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	// The replica's own records under /ctl took the first revisions.
	last := s.okRev(t, "", "rev")
	next := func(t *testing.T, stdin string, args ...string) int64 {
		t.Helper()
		rev := s.okRev(t, stdin, args...)
		if rev != last+1 {
			t.Fatalf("%v printed rev %d, want %d", args, rev, last+1)
		}
		last = rev
		return rev
	}
	get := func(t *testing.T, path, want string, extra ...string) {
		t.Helper()
		if got := s.ok(t, "", append([]string{"get", path}, extra...)...); got != want {
			t.Errorf("get %s %v = %q, want %q", path, extra, got, want)
		}
	}

	r1 := next(t, "hello\n", "set", "/a/b", "0")
	get(t, "/a/b", "hello\n")
	// The body is passed through byte for byte: no newline added, NULs kept.
	bin := "x\x00y\xff\n\nz"
	next(t, bin, "set", "/bin", "missing")
	get(t, "/bin", bin)
	next(t, "", "set", "/empty", "missing")
	get(t, "/empty", "")

	// Every spelling of a clobbering write.
	next(t, "v1", "set", "--", "/p", "-1")
	get(t, "/p", "v1")
	next(t, "v2", "set", "/p", "-1")
	get(t, "/p", "v2")
	next(t, "v3", "set", "/p", "clobber")
	get(t, "/p", "v3")
	next(t, "v4", "set", "/p", "CLOBBER")
	next(t, "v5", "set", "-a", s.addr, "--", "/p", "-1")
	get(t, "/p", "v5")
	// missing: only if the path does not exist.
	refused(t, s.run(t, "v6", "set", "/p", "missing"), fs.KindRevMismatch)
	refused(t, s.run(t, "v6", "set", "/p", "0"), fs.KindRevMismatch)
	get(t, "/p", "v5")
	next(t, "q", "set", "/q", "missing")
	get(t, "/q", "q")

	// add is SET with rev 0.
	next(t, "new", "add", "/n")
	get(t, "/n", "new")
	refused(t, s.run(t, "again", "add", "/n"), fs.KindRevMismatch)
	get(t, "/n", "new")

	// Reads at a past revision, with the flag before or after the path.
	get(t, "/a/b", "hello\n", "--rev", strconv.FormatInt(r1, 10))
	pRevs := map[string]int64{}
	for i := 1; i <= 3; i++ {
		body := fmt.Sprintf("gen %d", i)
		pRevs[body] = next(t, body, "set", "/g", "-1")
	}
	for body, rev := range pRevs {
		if got := s.ok(t, "", "get", "--rev", strconv.FormatInt(rev, 10), "/g"); got != body {
			t.Errorf("get --rev %d /g = %q, want %q", rev, got, body)
		}
		get(t, "/g", body, "--rev="+strconv.FormatInt(rev, 10))
	}
	get(t, "/g", "gen 3")
	refused(t, s.run(t, "", "get", "/g", "--rev", strconv.FormatInt(r1, 10)), fs.KindNoEnt)

	if got := s.okRev(t, "", "rev"); got != last {
		t.Errorf("rev = %d, want %d", got, last)
	}
	// A failed write takes no revision.
	refused(t, s.run(t, "", "get", "/nothing"), fs.KindNoEnt)
	if got := s.okRev(t, "", "rev"); got != last {
		t.Errorf("after refused writes rev = %d, want %d", got, last)
	}
}

// TestE2ECAS: a write naming the rev it read succeeds once; naming an
// older rev it fails REV_MISMATCH and changes nothing.
func TestE2ECAS(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	r1 := s.okRev(t, "v1", "set", "/c", "missing")
	r2 := s.okRev(t, "v2", "set", "/c", strconv.FormatInt(r1, 10))
	if r2 != r1+1 {
		t.Fatalf("CAS printed %d, want %d", r2, r1+1)
	}
	st := strings.Fields(s.ok(t, "", "stat", "/c"))
	if len(st) < 3 || st[2] != strconv.FormatInt(r2, 10) {
		t.Fatalf("stat /c = %q, want rev %d", st, r2)
	}
	// The stale rev.
	r := s.run(t, "v3", "set", "/c", strconv.FormatInt(r1, 10))
	refused(t, r, fs.KindRevMismatch)
	if !strings.Contains(r.stderr, "/c") {
		t.Errorf("the refusal does not name the path: %q", r.stderr)
	}
	if got := s.ok(t, "", "get", "/c"); got != "v2" {
		t.Errorf("after a refused CAS /c = %q, want v2", got)
	}
	if got := s.okRev(t, "", "rev"); got != r2 {
		t.Errorf("after a refused CAS rev = %d, want %d", got, r2)
	}
	// A rev of the file's own, or any later global rev, is "unchanged
	// since R" (doozer's rule).
	r3 := s.okRev(t, "o", "set", "/other", "-1")
	r4 := s.okRev(t, "v4", "set", "/c", strconv.FormatInt(r3, 10))
	if r4 != r3+1 {
		t.Errorf("CAS with a later global rev printed %d, want %d", r4, r3+1)
	}
	// A rev > 0 needs the file to exist.
	refused(t, s.run(t, "x", "set", "/nofile", strconv.FormatInt(r4, 10)), fs.KindRevMismatch)
	refused(t, s.run(t, "", "get", "/nofile"), fs.KindNoEnt)

	// del is conditional the same way.
	refused(t, s.run(t, "", "del", "/c", strconv.FormatInt(r1, 10)), fs.KindRevMismatch)
	if got := s.ok(t, "", "get", "/c"); got != "v4" {
		t.Errorf("after a refused del /c = %q", got)
	}
	if out := s.ok(t, "", "del", "/c", strconv.FormatInt(r4, 10)); out != "" {
		t.Errorf("del printed %q", out)
	}
	refused(t, s.run(t, "", "get", "/c"), fs.KindNoEnt)
	if got := s.okRev(t, "", "rev"); got != r4+1 {
		t.Errorf("after del rev = %d, want %d", got, r4+1)
	}
	refused(t, s.run(t, "", "del", "/c", "-1"), fs.KindNoEnt)
}

func TestE2ENamespace(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	start := time.Now()
	r1 := s.okRev(t, "", "mkdir", "/d")
	s.okRev(t, "", "mkdir", "/d/e/f") // missing parents too
	rx := s.okRev(t, "12345", "set", "/d/x", "missing")
	s.okRev(t, "y", "set", "/d/y", "missing")
	s.okRev(t, "z", "set", "/top", "missing")
	s.okRev(t, "my app", "set", "/d/my_app.conf", "missing")

	if got := noCtl(s.ok(t, "", "ls", "/")); got != "d/\ntop\n" {
		t.Errorf("ls / = %q", got)
	}
	if got := s.ok(t, "", "ls", "/d"); got != "e/\nmy_app.conf\nx\ny\n" {
		t.Errorf("ls /d = %q", got)
	}
	if got := s.ok(t, "", "ls", "/d/e/f"); got != "" {
		t.Errorf("ls of an empty directory = %q", got)
	}
	if got := s.ok(t, "", "ls", "/d", "--rev", strconv.FormatInt(r1, 10)); got != "" {
		t.Errorf("ls /d at its creation = %q", got)
	}
	if got := noCtl(s.ok(t, "", "find", "/**")); got != "/d/my_app.conf\n/d/x\n/d/y\n/top\n" {
		t.Errorf("find /** = %q", got)
	}
	if got := s.ok(t, "", "find", "/d/?"); got != "/d/x\n/d/y\n" {
		t.Errorf("find /d/? = %q", got)
	}
	if got := s.ok(t, "", "find", "/*/*.conf"); got != "/d/my_app.conf\n" {
		t.Errorf("find /*/*.conf = %q", got)
	}
	if got := s.ok(t, "", "find", "/nothing/**"); got != "" {
		t.Errorf("find of nothing = %q", got)
	}
	if got := s.ok(t, "", "find", "/d/*", "--rev", strconv.FormatInt(rx, 10)); got != "/d/x\n" {
		t.Errorf("find --rev = %q", got)
	}

	// stat: KIND SIZE REV TIME.
	f := strings.Fields(s.ok(t, "", "stat", "/d/x"))
	if len(f) != 4 || f[0] != "file" || f[1] != "5" || f[2] != strconv.FormatInt(rx, 10) {
		t.Errorf("stat /d/x = %q, want file 5 %d TIME", f, rx)
	} else if tm, err := time.Parse(time.RFC3339Nano, f[3]); err != nil || tm.Before(start.Add(-time.Minute)) || tm.After(time.Now().Add(time.Minute)) {
		t.Errorf("stat /d/x time %q: %v (the test started at %v)", f[3], err, start)
	}
	if f := strings.Fields(s.ok(t, "", "stat", "/d")); len(f) != 4 || f[0] != "dir" {
		t.Errorf("stat /d = %q", f)
	}
	if f := strings.Fields(s.ok(t, "", "stat", "/d/x", "--rev", strconv.FormatInt(rx, 10))); len(f) != 4 || f[2] != strconv.FormatInt(rx, 10) {
		t.Errorf("stat --rev = %q", f)
	}

	// Refusals.
	before := s.okRev(t, "", "rev")
	refused(t, s.run(t, "", "get", "/d"), fs.KindIsDir)
	refused(t, s.run(t, "", "get", "/nope"), fs.KindNoEnt)
	refused(t, s.run(t, "", "stat", "/nope"), fs.KindNoEnt)
	refused(t, s.run(t, "", "ls", "/nope"), fs.KindNoEnt)
	refused(t, s.run(t, "", "ls", "/d/x"), fs.KindNotDir)
	refused(t, s.run(t, "", "del", "/d", "-1"), fs.KindNotEmpty)
	refused(t, s.run(t, "", "del", "/d/e", "-1"), fs.KindNotEmpty)
	refused(t, s.run(t, "b", "set", "/d/x/sub", "-1"), fs.KindNotDir)
	refused(t, s.run(t, "b", "set", "/d", "-1"), fs.KindIsDir)
	refused(t, s.run(t, "", "get", "relative"), fs.KindBadPath)
	refused(t, s.run(t, "", "get", "/a/../b"), fs.KindBadPath)
	refused(t, s.run(t, "", "get", "--", "--bogus"), fs.KindBadPath) // after --, a path
	refused(t, s.run(t, "", "find", "/a**"), fs.KindBadPath)
	refused(t, s.run(t, "x", "set", "/ctl/x", "-1"), fs.KindPermission)
	refused(t, s.run(t, "", "mkdir", "/ctl/y"), fs.KindPermission)
	if got := s.okRev(t, "", "rev"); got != before {
		t.Errorf("refused commands changed the rev from %d to %d", before, got)
	}

	// Directories stay when emptied, and go only when empty.
	s.ok(t, "", "del", "/d/e/f", "-1")
	if got := s.ok(t, "", "ls", "/d/e"); got != "" {
		t.Errorf("ls /d/e = %q", got)
	}
	s.ok(t, "", "del", "/d/e", "-1")
	for _, p := range []string{"/d/x", "/d/y", "/d/my_app.conf"} {
		s.ok(t, "", "del", p, "clobber")
	}
	if got := s.ok(t, "", "ls", "/d"); got != "" {
		t.Errorf("emptied /d lists %q", got)
	}
	s.ok(t, "", "del", "/d", "-1")
	if got := noCtl(s.ok(t, "", "ls", "/")); got != "top\n" {
		t.Errorf("ls / = %q", got)
	}
}

func TestE2ETouchNop(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	// touch of a missing file creates it empty.
	r1 := s.okRev(t, "", "touch", "/t")
	if got := s.ok(t, "", "get", "/t"); got != "" {
		t.Errorf("touched file holds %q", got)
	}
	r2 := s.okRev(t, "body", "set", "/t", "-1")
	r3 := s.okRev(t, "", "touch", "/t")
	if r2 != r1+1 || r3 != r2+1 {
		t.Errorf("revs %d %d %d are not consecutive", r1, r2, r3)
	}
	if got := s.ok(t, "", "get", "/t"); got != "body" {
		t.Errorf("touch changed the body to %q", got)
	}
	if f := strings.Fields(s.ok(t, "", "stat", "/t")); len(f) < 3 || f[2] != strconv.FormatInt(r3, 10) {
		t.Errorf("stat after touch = %q, want rev %d", f, r3)
	}
	s.ok(t, "", "mkdir", "/dir")
	refused(t, s.run(t, "", "touch", "/dir"), fs.KindIsDir)

	// nop passes through consensus and takes no revision.
	cur := s.okRev(t, "", "rev")
	if out := s.ok(t, "", "nop"); out != "" {
		t.Errorf("nop printed %q", out)
	}
	if got := s.okRev(t, "", "rev"); got != cur {
		t.Errorf("nop moved the rev from %d to %d", cur, got)
	}
}

func TestE2EWait(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	rwt := s.okRev(t, "", "mkdir", "/wt")
	base := s.okRev(t, "", "rev")

	// A wait from the next revision blocks past a change it does not
	// match and returns the change that matches, made by another process.
	w := s.start(t, nil, "wait", "/wt/*", "--rev", strconv.FormatInt(base+1, 10))
	s.okRev(t, "no", "set", "/elsewhere", "-1")
	if !w.running() {
		t.Fatalf("wait ended before a matching change: %v", w.finish(t))
	}
	rx := s.okRev(t, "hello", "set", "/wt/x", "-1")
	r := w.finish(t)
	if r.code != 0 {
		t.Fatalf("wait: %v", r)
	}
	if ev := parseEvent(t, r.stdout); ev != (cliEvent{rx, "set", "/wt/x", "hello"}) {
		t.Errorf("wait printed %v, want %d set /wt/x hello", ev, rx)
	}

	// A wait with --rev of a past change returns it at once.
	r = s.run(t, "", "wait", "/wt/x", "--rev", strconv.FormatInt(rx, 10))
	if ev := parseEvent(t, r.stdout); r.code != 0 || ev != (cliEvent{rx, "set", "/wt/x", "hello"}) {
		t.Errorf("wait --rev %d: %v", rx, r)
	}
	r = s.run(t, "", "wait", "/wt", "--rev", "1")
	if ev := parseEvent(t, r.stdout); r.code != 0 || ev != (cliEvent{rwt, "mkdir", "/wt", ""}) {
		t.Errorf("wait /wt --rev 1: %v", r)
	}

	// A delete is an event too.
	cur := s.okRev(t, "", "rev")
	w = s.start(t, nil, "wait", "/wt/x", "--rev", strconv.FormatInt(cur+1, 10))
	s.ok(t, "", "del", "/wt/x", "-1")
	r = w.finish(t)
	if ev := parseEvent(t, r.stdout); r.code != 0 || ev != (cliEvent{cur + 1, "del", "/wt/x", ""}) {
		t.Errorf("wait for a delete: %v", r)
	}

	// --timeout bounds a wait; running out is TIMEOUT, exit 1.
	refused(t, s.run(t, "", "wait", "/never", "--timeout", "300ms"), fs.KindTimeout)

	// Without --rev, wait takes the first change after the replica's
	// current revision when it asks. When that is, is not observable from
	// outside, so write until the wait has returned (a bounded loop), and
	// check that what it printed is one of those writes.
	cur = s.okRev(t, "", "rev")
	w = s.start(t, nil, "wait", "/wn/*")
	written := map[int64]string{}
	for i := 0; w.running(); i++ {
		if i == 500 {
			t.Fatalf("wait without --rev did not return after %d writes", i)
		}
		body := fmt.Sprintf("write %d", i)
		written[s.okRev(t, body, "set", "/wn/k", "-1")] = body
	}
	r = w.finish(t)
	ev := parseEvent(t, r.stdout)
	if r.code != 0 || ev.rev <= cur || ev.kind != "set" || ev.path != "/wn/k" || written[ev.rev] != ev.body {
		t.Errorf("wait without --rev: %v (writes: %v)", r, written)
	}
}

func TestE2EWatch(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	s.ok(t, "", "mkdir", "/w")
	base := s.okRev(t, "", "rev")

	w := s.start(t, nil, "watch", "/w/**", "--rev", strconv.FormatInt(base+1, 10))
	ch := w.events()
	var want []cliEvent
	last := base
	for i := 0; i < 50; i++ {
		path := fmt.Sprintf("/w/k%d", i%5)
		if i == 20 { // a directory
			last = s.okRev(t, "", "mkdir", "/w/sub")
			want = append(want, cliEvent{last, "mkdir", "/w/sub", ""})
			if got := nextEvent(t, w, ch); got != want[len(want)-1] {
				t.Fatalf("watch printed %v, want %v", got, want[len(want)-1])
			}
		}
		var ev cliEvent
		switch {
		case i%10 == 9: // delete what i-5 wrote
			s.ok(t, "", "del", path, "-1")
			last++
			ev = cliEvent{last, "del", path, ""}
		case i%10 == 4: // an empty body
			last = s.okRev(t, "", "set", path, "-1")
			ev = cliEvent{last, "set", path, ""}
		case i%7 == 0: // a body of many lines, without a final newline
			body := fmt.Sprintf("line 1\nline 2 of %d\n\nline 4", i)
			last = s.okRev(t, body, "set", path, "-1")
			ev = cliEvent{last, "set", path, body}
		default:
			body := fmt.Sprintf("value %d\n", i)
			last = s.okRev(t, body, "set", path, "-1")
			ev = cliEvent{last, "set", path, body}
		}
		if i%10 == 5 { // a change the glob does not match
			last = s.okRev(t, "x", "set", "/elsewhere", "-1")
		}
		want = append(want, ev)
		if got := nextEvent(t, w, ch); got != ev {
			t.Fatalf("after write %d the watch printed %v, want %v", i, got, ev)
		}
	}
	// SIGTERM ends a watch cleanly: exit 0, no more events.
	w.cmd.Process.Signal(syscall.SIGTERM)
	r := w.finish(t)
	if r.code != 0 {
		t.Errorf("watch after SIGTERM: %v", r)
	}
	if e, ok := <-ch; ok && e.err == nil {
		t.Errorf("an event after the last write: %v", e.ev)
	}

	// The same stream again, replayed from history by a watch started
	// after the writes.
	w = s.start(t, nil, "watch", "--rev", strconv.FormatInt(base+1, 10), "/w/**")
	ch = w.events()
	for i, ev := range want {
		if got := nextEvent(t, w, ch); got != ev {
			t.Fatalf("replayed event %d is %v, want %v", i, got, ev)
		}
	}
	w.cmd.Process.Signal(syscall.SIGINT)
	if r := w.finish(t); r.code != 0 {
		t.Errorf("watch after SIGINT: %v", r)
	}
}

func TestE2EStatusMembers(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	s.ok(t, "a", "set", "/a", "-1")
	rev := s.okRev(t, "b", "set", "/b", "-1")

	kv := map[string]string{}
	for _, line := range strings.Split(strings.TrimSuffix(s.ok(t, "", "status"), "\n"), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			t.Fatalf("status line %q is not KEY VALUE", line)
		}
		kv[f[0]] = f[1]
	}
	for k, want := range map[string]string{"name": "t1", "addr": s.addr, "cluster": "doozerfs", "role": "voter",
		"leader": "t1", "rev": strconv.FormatInt(rev, 10), "lag": "0", "version": Version} {
		if kv[k] != want {
			t.Errorf("status %s = %q, want %q (all: %v)", k, kv[k], want, kv)
		}
	}
	if id, err := strconv.ParseUint(kv["id"], 10, 64); err != nil || id == 0 {
		t.Errorf("status id = %q", kv["id"])
	}

	lines := strings.Split(strings.TrimSuffix(s.ok(t, "", "members"), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("members: want a header and one member, got %q", lines)
	}
	if h := strings.Fields(lines[0]); strings.Join(h, " ") != "NAME ID ADDR ROLE STATE LEADER REV" {
		t.Errorf("members header %q", lines[0])
	}
	want := []string{"t1", kv["id"], s.addr, "voter", "alive", "*", strconv.FormatInt(rev, 10)}
	if got := strings.Fields(lines[1]); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("members row %q, want %q", got, want)
	}
}

func TestE2ESnapshot(t *testing.T) {
	t.Parallel()
	a := startServer(t, "")
	files := map[string]string{
		"/cfg/a":         "alpha",
		"/cfg/sub/c":     "gamma\n",
		"/bin":           "\x00\x01\xfe",
		"/cfg/empty":     "",
		"/gone/too/late": "deleted below",
	}
	for p, b := range files {
		a.ok(t, b, "set", p, "missing")
	}
	a.ok(t, "", "mkdir", "/emptydir")
	a.ok(t, "", "del", "/gone/too/late", "-1")
	delete(files, "/gone/too/late")
	rev := a.okRev(t, "", "rev")
	find := a.ok(t, "", "find", "/**")

	file := filepath.Join(t.TempDir(), "backup.snap")
	r := a.run(t, "", "snapshot", "save", file)
	if r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "snapshot saved to "+file) {
		t.Fatalf("snapshot save: %v", r)
	}
	if st, err := os.Stat(file); err != nil || st.Size() == 0 {
		t.Fatalf("the snapshot file: %v, %v", st, err)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(file), ".*tmp")); len(left) > 0 {
		t.Errorf("snapshot save left %v", left)
	}

	dir := filepath.Join(t.TempDir(), "restored")
	r = dz(t, nil, "", "snapshot", "restore", file, "--data", dir)
	if r.code != 0 || !strings.Contains(r.stderr, "restored into "+dir) {
		t.Fatalf("snapshot restore: %v", r)
	}

	// Restoring over a data directory in use, or one that was restored
	// into, or any non-empty directory, is refused with a clear message.
	refuseRestore := func(t *testing.T, dir string) {
		t.Helper()
		r := dz(t, nil, "", "snapshot", "restore", file, "--data", dir)
		if r.code != exitRefused || !strings.Contains(r.stderr, "cannot restore into "+dir) || !strings.Contains(r.stderr, "not empty") {
			t.Errorf("restore into %s: want exit 1 and a message that it is not empty, got %v", dir, r)
		}
	}
	refuseRestore(t, a.data) // a's replica runs on it
	refuseRestore(t, dir)
	junk := t.TempDir()
	if err := os.WriteFile(filepath.Join(junk, "notes.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	refuseRestore(t, junk)
	if ents, _ := os.ReadDir(junk); len(ents) != 1 {
		t.Errorf("a refused restore left files in %s: %v", junk, ents)
	}
	// An empty directory that exists is fine.
	if r := dz(t, nil, "", "snapshot", "restore", "--data", t.TempDir(), file); r.code != 0 {
		t.Errorf("restore into an empty directory: %v", r)
	}
	// Not a snapshot, or no file at all.
	notSnap := filepath.Join(t.TempDir(), "not.snap")
	os.WriteFile(notSnap, bytes.Repeat([]byte("junk"), 100), 0o644)
	for _, f := range []string{notSnap, filepath.Join(t.TempDir(), "missing.snap")} {
		r := dz(t, nil, "", "snapshot", "restore", f, "--data", filepath.Join(t.TempDir(), "x"))
		if r.code != exitRefused || strings.TrimSpace(r.stderr) == "" {
			t.Errorf("restore of %s: want exit 1 with a message, got %v", f, r)
		}
	}

	// A replica started on the restored directory founds a new cluster
	// holding the saved state, and goes on from its revision.
	b, err := tryStartServer(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	// It holds the saved revision as it was (its own /ctl records then
	// take the next ones).
	brev := b.okRev(t, "", "rev")
	if brev < rev {
		t.Errorf("the restored replica is at rev %d, before the saved %d", brev, rev)
	}
	if got, want := b.ok(t, "", "find", "/**", "--rev", strconv.FormatInt(rev, 10)), find; got != want {
		t.Errorf("restored find /** --rev %d = %q, want %q", rev, got, want)
	}
	for p, want := range files {
		if got := b.ok(t, "", "get", p); got != want {
			t.Errorf("restored %s = %q, want %q", p, got, want)
		}
	}
	if got := noCtl(b.ok(t, "", "find", "/**")); got != noCtl(find) {
		t.Errorf("restored find /** = %q, want %q", got, noCtl(find))
	}
	if got := b.ok(t, "", "ls", "/emptydir"); got != "" {
		t.Errorf("restored /emptydir lists %q", got)
	}
	refused(t, b.run(t, "", "get", "/gone/too/late"), fs.KindNoEnt)
	if got := b.okRev(t, "new", "set", "/cfg/a", "-1"); got != brev+1 {
		t.Errorf("the first write on the restored replica got rev %d, want %d", got, brev+1)
	}
	// The original goes on by itself.
	if got := a.ok(t, "", "get", "/cfg/a"); got != "alpha" {
		t.Errorf("the original's /cfg/a = %q", got)
	}
	// And the restored one restarts on its directory.
	if code, _ := b.stop(); code != 0 {
		t.Errorf("the restored replica exited %d", code)
	}
	b = startServer(t, dir)
	if got := b.ok(t, "", "get", "/cfg/a"); got != "new" {
		t.Errorf("after restarting the restored replica /cfg/a = %q", got)
	}
}

// TestE2ELimits: TOO_BIG over --max-body, TOO_LATE before --history.
func TestE2ELimits(t *testing.T) {
	t.Parallel()
	s := startServer(t, "", "--max-body", "100", "--history", "5")
	refused(t, s.run(t, strings.Repeat("x", 101), "set", "/big", "-1"), fs.KindTooBig)
	refused(t, s.run(t, strings.Repeat("x", 101), "add", "/big"), fs.KindTooBig)
	refused(t, s.run(t, "", "get", "/big"), fs.KindNoEnt)
	r1 := s.okRev(t, strings.Repeat("x", 100), "set", "/big", "-1")
	if got := s.ok(t, "", "get", "/big"); got != strings.Repeat("x", 100) {
		t.Errorf("a body of exactly --max-body: %q", got)
	}
	var last int64
	for i := 0; i < 20; i++ {
		last = s.okRev(t, strconv.Itoa(i), "set", "/h", "-1")
	}
	old := strconv.FormatInt(r1, 10)
	refused(t, s.run(t, "", "get", "/big", "--rev", old), fs.KindTooLate)
	refused(t, s.run(t, "", "wait", "/**", "--rev", old), fs.KindTooLate)
	refused(t, s.run(t, "", "watch", "/**", "--rev", old), fs.KindTooLate)
	// Inside the window it works.
	r := s.run(t, "", "wait", "/**", "--rev", strconv.FormatInt(last, 10))
	if ev := parseEvent(t, r.stdout); r.code != 0 || ev != (cliEvent{last, "set", "/h", "19"}) {
		t.Errorf("wait inside the window: %v", r)
	}
	if got := s.ok(t, "", "get", "/h", "--rev", strconv.FormatInt(last-2, 10)); got != "17" {
		t.Errorf("get inside the window = %q", got)
	}
}

// TestE2EShutdownRestart: SIGTERM stops serve promptly with status 0; a
// replica restarted on its data directory has every acknowledged write and
// goes on from the next revision. The same after SIGKILL.
func TestE2EShutdownRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startServer(t, dir)
	want := map[string]string{}
	var last int64
	write := func(s *dzServer, n int) {
		for i := 0; i < n; i++ {
			p, b := fmt.Sprintf("/r/k%d", i%7), fmt.Sprintf("body %d of %d", i, last)
			last = s.okRev(t, b, "set", p, "-1")
			want[p] = b
		}
		last = s.okRev(t, "", "mkdir", fmt.Sprintf("/r/dir%d", last))
		s.ok(t, "", "del", "/r/k0", "-1")
		delete(want, "/r/k0")
		last++
	}
	check := func(s *dzServer) {
		t.Helper()
		cur := s.okRev(t, "", "rev")
		if cur < last {
			t.Errorf("after restart rev = %d, before the last acknowledged write %d", cur, last)
		}
		for p, b := range want {
			if got := s.ok(t, "", "get", p); got != b {
				t.Errorf("after restart %s = %q, want %q", p, got, b)
			}
		}
		refused(t, s.run(t, "", "get", "/r/k0"), fs.KindNoEnt)
		w := s.okRev(t, "after", "set", "/r/after", "-1")
		if w != cur+1 {
			t.Errorf("the first write after restart got rev %d, want %d", w, cur+1)
		}
		want["/r/after"] = "after"
		// Between the last write before the restart and this one, only
		// the replica's own record of its new address took revisions.
		watch := s.start(t, nil, "watch", "/**", "--rev", strconv.FormatInt(last+1, 10))
		ch := watch.events()
		for {
			ev := nextEvent(t, watch, ch)
			if ev.rev == w && ev.path == "/r/after" {
				break
			}
			if ev.rev >= w || !strings.HasPrefix(ev.path, "/ctl/") {
				t.Fatalf("after restart: event %v between the writes at %d and %d", ev, last, w)
			}
		}
		watch.cmd.Process.Signal(syscall.SIGTERM)
		watch.finish(t)
		last = w
	}

	write(s, 30)
	code, took := s.stop()
	if code != 0 {
		t.Fatalf("serve exited %d after SIGTERM:\n%s", code, s.stderr.String())
	}
	t.Logf("serve exited %v after SIGTERM", took)
	if took > 5*time.Second {
		t.Errorf("serve took %v to exit after SIGTERM", took)
	}

	s = startServer(t, dir)
	check(s)
	write(s, 10)

	s.kill() // a crash: every acknowledged write was fsynced
	s = startServer(t, dir)
	check(s)

	// What a watch sees after the restarts: the history survived too.
	r := s.run(t, "", "wait", "/r/after", "--rev", "1")
	if ev := parseEvent(t, r.stdout); r.code != 0 || ev.path != "/r/after" || ev.body != "after" {
		t.Errorf("wait after restarts: %v", r)
	}
}

// TestE2ESecrets: with --secret and --ro-secret, no secret or a wrong one is
// PERMISSION, the read-only one reads but cannot write, the read-write one
// does both.
func TestE2ESecrets(t *testing.T) {
	t.Parallel()
	s := startServer(t, "", "--secret", "rw-token", "--ro-secret", "ro-token")

	refused(t, s.run(t, "", "rev"), fs.KindPermission)
	refused(t, s.run(t, "", "get", "/s", "--secret", "wrong"), fs.KindPermission)
	refused(t, s.run(t, "x", "set", "/s", "-1"), fs.KindPermission)
	refused(t, dz(t, []string{"DOOZERFS_ADDR=" + s.addr, "DOOZERFS_SECRET=nope"}, "", "rev"), fs.KindPermission)

	rev := s.okRev(t, "secret data", "set", "/s", "-1", "--secret", "rw-token")
	rwEnv := []string{"DOOZERFS_ADDR=" + s.addr, "DOOZERFS_SECRET=rw-token"}
	if r := dz(t, rwEnv, "more", "set", "/s2", "missing"); r.code != 0 {
		t.Errorf("write with the secret in DOOZERFS_SECRET: %v", r)
	}
	rev++

	ro := []string{"--secret", "ro-token"}
	reads := [][]string{
		{"get", "/s"}, {"rev"}, {"stat", "/s"}, {"ls", "/"}, {"find", "/**"}, {"status"}, {"members"},
		{"wait", "/s", "--rev", "1"},
	}
	for _, args := range reads {
		if r := s.run(t, "", append(args, ro...)...); r.code != 0 {
			t.Errorf("read with the read-only secret: %v", r)
		}
	}
	if got := s.ok(t, "", append([]string{"get", "/s"}, ro...)...); got != "secret data" {
		t.Errorf("get with the read-only secret = %q", got)
	}
	roEnv := []string{"DOOZERFS_ADDR=" + s.addr, "DOOZERFS_SECRET=ro-token"}
	if r := dz(t, roEnv, "", "get", "/s2"); r.code != 0 || r.stdout != "more" {
		t.Errorf("get with the read-only secret in DOOZERFS_SECRET: %v", r)
	}
	for _, args := range [][]string{
		{"set", "/s", "-1"}, {"add", "/new"}, {"del", "/s", "-1"}, {"mkdir", "/d"}, {"touch", "/s"}, {"nop"},
	} {
		refused(t, s.run(t, "ro write", append(args, ro...)...), fs.KindPermission)
	}
	refused(t, dz(t, roEnv, "x", "set", "/s", "-1"), fs.KindPermission)
	// Nothing changed.
	if got := s.okRev(t, "", "rev", "--secret", "rw-token"); got != rev {
		t.Errorf("after refused writes rev = %d, want %d", got, rev)
	}
	if got := s.ok(t, "", "get", "/s", "--secret", "rw-token"); got != "secret data" {
		t.Errorf("/s = %q after refused writes", got)
	}
}

// TestE2ERecipes: register, lock and elect (leases + CAS), and members
// remove on a cluster of one.
func TestE2ERecipes(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")

	t.Run("register", func(t *testing.T) {
		reg := s.start(t, nil, "register", "/svc/web/a", "--ttl", "3s", "--value", "10.0.0.1:80")
		out := reg.lines()
		line := nextLine(t, reg, out)
		var rev, lease int64
		if _, err := fmt.Sscanf(line, "registered /svc/web/a at rev %d (lease %d, ttl 3s)", &rev, &lease); err != nil {
			t.Fatalf("register printed %q: %v", line, err)
		}
		if got := s.ok(t, "", "get", "/svc/web/a"); got != "10.0.0.1:80" {
			t.Errorf("the registered file holds %q", got)
		}
		if st := s.ok(t, "", "stat", "/svc/web/a"); !strings.Contains(st, fmt.Sprintf(" lease=%d", lease)) || !strings.HasPrefix(st, fmt.Sprintf("file 11 %d ", rev)) {
			t.Errorf("stat of the registered file: %q (rev %d, lease %d)", st, rev, lease)
		}
		if got := s.ok(t, "", "ls", "/svc/web"); got != "a\n" {
			t.Errorf("ls /svc/web = %q", got)
		}
		// Stopped cleanly, it revokes its lease: the file goes at once.
		if code := reg.stop(t); code != 0 {
			t.Errorf("register after SIGTERM exited %d: %s", code, reg.stderr.String())
		}
		refused(t, s.run(t, "", "get", "/svc/web/a"), fs.KindNoEnt)

		// Killed, its file goes when the lease expires.
		reg = s.start(t, nil, "register", "/svc/web/b", "--ttl", "1s", "--value", "b")
		line = nextLine(t, reg, reg.lines())
		if _, err := fmt.Sscanf(line, "registered /svc/web/b at rev %d", &rev); err != nil {
			t.Fatalf("register printed %q: %v", line, err)
		}
		reg.cmd.Process.Kill()
		reg.exit(t)
		r := s.run(t, "", "wait", "/svc/web/b", "--rev", strconv.FormatInt(rev+1, 10))
		if ev := parseEvent(t, r.stdout); r.code != 0 || ev.kind != "del" || ev.path != "/svc/web/b" {
			t.Errorf("the file of a killed register: %v", r)
		}
		refused(t, s.run(t, "", "get", "/svc/web/b"), fs.KindNoEnt)
	})

	t.Run("lock", func(t *testing.T) {
		// The command runs under the lock, sees its token, and its exit
		// status is lock's.
		r := s.run(t, "", "lock", "/locks/x", "--", "sh", "-c", `echo "token=$DOOZERFS_LOCK_TOKEN path=$DOOZERFS_LOCK_PATH"; exit 7`)
		var token int64
		if _, err := fmt.Sscanf(r.stdout, "token=%d path=/locks/x\n", &token); err != nil || r.code != 7 || token <= 0 {
			t.Errorf("lock -- sh: want exit 7 and a token, got %v (%v)", r, err)
		}
		refused(t, s.run(t, "", "get", "/locks/x"), fs.KindNoEnt) // released

		// A second holder waits for the first.
		a := s.start(t, nil, "lock", "/locks/y", "--", "sh", "-c", `echo "A $DOOZERFS_LOCK_TOKEN"; exec sleep 60`)
		aout := a.lines()
		var ta, tb int64
		if _, err := fmt.Sscanf(nextLine(t, a, aout), "A %d", &ta); err != nil {
			t.Fatal(err)
		}
		b := s.start(t, nil, "lock", "/locks/y", "--", "sh", "-c", `echo "B $DOOZERFS_LOCK_TOKEN"`)
		bout := b.lines()
		// b is waiting (it cannot have the lock: a's file is there).
		if got := s.ok(t, "", "get", "/locks/y"); !b.running() || got == "" {
			t.Errorf("while a holds the lock: b running %v, lock file %q", b.running(), got)
		}
		a.stop(t) // a's child is stopped, a unlocks
		if _, err := fmt.Sscanf(nextLine(t, b, bout), "B %d", &tb); err != nil {
			t.Fatal(err)
		}
		if code := b.exit(t); code != 0 {
			t.Errorf("b exited %d: %s", code, b.stderr.String())
		}
		if tb <= ta {
			t.Errorf("the second holder's fencing token %d is not above the first's %d", tb, ta)
		}
	})

	t.Run("elect", func(t *testing.T) {
		a := s.start(t, nil, "elect", "/leader", "--value", "A", "--ttl", "2s")
		aout := a.lines()
		var terma, termb int64
		if _, err := fmt.Sscanf(nextLine(t, a, aout), "elected A term %d", &terma); err != nil {
			t.Fatal(err)
		}
		b := s.start(t, nil, "elect", "/leader", "--value", "B", "--ttl", "2s")
		bout := b.lines()
		if l := nextLine(t, b, bout); l != "following A" {
			t.Fatalf("the second candidate printed %q, want following A", l)
		}
		if got := s.ok(t, "", "get", "/leader"); got != "A" {
			t.Errorf("leader record %q", got)
		}
		if code := a.stop(t); code != 0 {
			t.Errorf("the leader exited %d after SIGTERM: %s", code, a.stderr.String())
		}
		if _, err := fmt.Sscanf(nextLine(t, b, bout), "elected B term %d", &termb); err != nil {
			t.Fatal(err)
		}
		if termb <= terma {
			t.Errorf("term %d after term %d", termb, terma)
		}
		if got := s.ok(t, "", "get", "/leader"); got != "B" {
			t.Errorf("leader record %q", got)
		}
		if code := b.stop(t); code != 0 {
			t.Errorf("the second leader exited %d after SIGTERM: %s", code, b.stderr.String())
		}
		refused(t, s.run(t, "", "get", "/leader"), fs.KindNoEnt)
	})

	t.Run("usage", func(t *testing.T) {
		usage(t, s.run(t, "", "elect", "/leader"))                // no --value
		usage(t, s.run(t, "", "register", "/r", "--ttl", "0s"))   // no positive ttl
		usage(t, s.run(t, "", "lock", "/l"))                      // no command
		usage(t, s.run(t, "", "register", "/r", "--ttl", "soon")) // not a duration
		usage(t, s.run(t, "", "members", "remove"))
		usage(t, s.run(t, "", "members", "delete", "t1"))
	})

	t.Run("members remove", func(t *testing.T) {
		refused(t, s.run(t, "", "members", "remove", "nosuch"), fs.KindNoEnt)
		// The last voter stays.
		r := s.run(t, "", "members", "remove", "t1")
		if r.code != exitRefused || !strings.Contains(r.stderr, "last voter") {
			t.Errorf("removing the only voter: %v", r)
		}
		if !strings.Contains(s.ok(t, "", "members"), "t1") {
			t.Errorf("t1 is no longer a member")
		}
	})
}
