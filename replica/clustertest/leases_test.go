package clustertest

// Issue 7 on a real cluster: leases, `doozerfs register`, `lock` and
// `elect`, and the mount's ephemeral xattr, with three `doozerfs serve`
// processes and their mounts, and the CLI run as child processes.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/doozerfs/doozerfs/fs"
	"github.com/doozerfs/doozerfs/wire"
)

// timedLine is a line a child process printed, and when it was read.
type timedLine struct {
	at   time.Time
	text string
}

// proc is a doozerfs client command running in the background.
type proc struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd

	mu      sync.Mutex
	partial []byte
	lines   []timedLine
	stderr  bytes.Buffer

	done    chan struct{}
	exitErr error // set before done is closed
}

type procStdout struct{ p *proc }

func (w procStdout) Write(b []byte) (int, error) {
	p := w.p
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.partial = append(p.partial, b...)
	for {
		i := bytes.IndexByte(p.partial, '\n')
		if i < 0 {
			break
		}
		p.lines = append(p.lines, timedLine{now, string(p.partial[:i])})
		p.partial = p.partial[i+1:]
	}
	return len(b), nil
}

// startProc runs the doozerfs binary with args (and env added to the
// test's environment) until it exits or the test ends.
func startProc(t *testing.T, name string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, done: make(chan struct{})}
	p.cmd = exec.Command(binary, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout = procStdout{p}
	p.cmd.Stderr = lockedWriter{&p.mu, &p.stderr}
	p.cmd.WaitDelay = 2 * time.Second
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := p.cmd.Wait()
		p.mu.Lock()
		p.exitErr = err
		p.mu.Unlock()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			p.mu.Lock()
			var out strings.Builder
			for _, l := range p.lines {
				fmt.Fprintf(&out, "%s %s\n", l.at.Format("15:04:05.000"), l.text)
			}
			t.Logf("%s (%v): stdout:\n%sstderr:\n%s", p.name, p.exitErr, out.String(), p.stderr.String())
			p.mu.Unlock()
		}
	})
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// find returns the first line starting with prefix.
func (p *proc) find(prefix string) (timedLine, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.lines {
		if strings.HasPrefix(l.text, prefix) {
			return l, true
		}
	}
	return timedLine{}, false
}

// count returns how many lines start with prefix.
func (p *proc) count(prefix string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, l := range p.lines {
		if strings.HasPrefix(l.text, prefix) {
			n++
		}
	}
	return n
}

// waitLine waits up to d for a line starting with prefix; it fails the
// test if the process exits without printing one.
func (p *proc) waitLine(prefix string, d time.Duration) timedLine {
	p.t.Helper()
	var l timedLine
	waitFor(p.t, fmt.Sprintf("%s to print %q", p.name, prefix), d, func() bool {
		var ok bool
		if l, ok = p.find(prefix); ok {
			return true
		}
		if p.exited() {
			if l, ok = p.find(prefix); ok {
				return true
			}
			p.mu.Lock()
			defer p.mu.Unlock()
			p.t.Fatalf("%s exited (%v) without printing %q; stderr: %s", p.name, p.exitErr, prefix, p.stderr.String())
		}
		return false
	})
	return l
}

func (p *proc) signal(sig syscall.Signal) time.Time {
	p.t.Helper()
	at := time.Now()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %v to %s: %v", sig, p.name, err)
	}
	return at
}

// wait waits up to d for the process to exit and returns its error.
func (p *proc) wait(d time.Duration) error {
	p.t.Helper()
	if !p.exited() {
		select {
		case <-p.done:
		case <-time.After(d):
			p.t.Fatalf("%s still running %v later", p.name, d)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exitErr
}

// cli runs one doozerfs command against addr with stdin and returns its
// stdout.
func cli(t *testing.T, addr, stdin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append([]string{args[0], "-a", addr}, args[1:]...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("doozerfs %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// ls lists dir with ls(1); a missing dir lists nothing.
func ls(t *testing.T, dir string) []string {
	t.Helper()
	out, err := exec.Command("ls", dir).Output()
	if err != nil {
		return nil
	}
	return strings.Fields(string(out))
}

// inotify follows dir with inotifywait -m; the lines are "EVENTS NAME".
func inotify(t *testing.T, dir string) <-chan string {
	t.Helper()
	ino := exec.Command("inotifywait", "-m", "-e", "create,delete,close_write", "--format", "%e %f", dir)
	stderr, err := ino.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := ino.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := ino.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ino.Process.Kill(); ino.Wait() })
	es := bufio.NewScanner(stderr)
	established := false
	for es.Scan() {
		if strings.Contains(es.Text(), "Watches established") {
			established = true
			break
		}
	}
	if !established {
		t.Fatalf("inotifywait on %s: no watch established", dir)
	}
	go func() {
		for es.Scan() {
		}
	}()
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	return lines
}

// expectEvent waits up to d for the line want on lines.
func expectEvent(t *testing.T, what string, lines <-chan string, want string, d time.Duration) {
	t.Helper()
	var seen []string
	deadline := time.After(d)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("%s: inotifywait ended; saw %q", what, seen)
			}
			if l == want {
				return
			}
			seen = append(seen, l)
		case <-deadline:
			t.Fatalf("%s: no %q within %v; saw %q", what, want, d, seen)
		}
	}
}

// leaderOf returns the host the live hosts agree leads.
func leaderOf(t *testing.T, live []*host) *host {
	t.Helper()
	var leader *host
	waitFor(t, "a leader among the live hosts", 20*time.Second, func() bool {
		leader = nil
		for _, h := range live {
			name := selfLeader(h)
			var found *host
			for _, o := range live {
				if o.name == name {
					found = o
				}
			}
			if found == nil || (leader != nil && leader != found) {
				return false
			}
			leader = found
		}
		return leader != nil
	})
	return leader
}

// selfLeader asks h whom it knows as the leader ("" if it cannot tell).
func selfLeader(h *host) string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := wire.Dial(ctx, []string{h.addr}, wire.Options{})
	if err != nil {
		return ""
	}
	defer c.Close()
	s, err := c.Self(ctx)
	if err != nil {
		return ""
	}
	return s.Leader
}

func without(hs []*host, x *host) []*host {
	var out []*host
	for _, h := range hs {
		if h != x {
			out = append(out, h)
		}
	}
	return out
}

// TestRegisterVanishesOnKillAndRevokesOnTerm: `ls` on every mount is the
// service list; a register killed with SIGKILL vanishes from every mount
// within its TTL plus a margin, with IN_DELETE on the other hosts' mounts;
// one stopped with SIGTERM vanishes at once.
func TestRegisterVanishesOnKillAndRevokesOnTerm(t *testing.T) {
	needFUSE(t)
	hs := startCluster(t, 3)
	const ttl = 2 * time.Second
	a := startProc(t, "register a", nil, "register", "-a", hs[0].addr, "/svc/web/a", "--ttl", ttl.String(), "--value", "10.0.0.1:80")
	// b's TTL is long, so that a removal well within it is the revocation.
	const ttlB = 10 * time.Second
	b := startProc(t, "register b", nil, "register", "-a", hs[1].addr, "/svc/web/b", "--ttl", ttlB.String(), "--value", "10.0.0.2:80")
	a.waitLine("registered /svc/web/a", 10*time.Second)
	b.waitLine("registered /svc/web/b", 10*time.Second)
	for _, h := range hs {
		waitFor(t, "ls on "+h.name+" to list a and b", 5*time.Second, func() bool {
			return slices.Equal(ls(t, filepath.Join(h.mnt, "svc", "web")), []string{"a", "b"})
		})
	}
	if body, err := os.ReadFile(filepath.Join(hs[2].mnt, "svc", "web", "a")); err != nil || string(body) != "10.0.0.1:80" {
		t.Fatalf("svc/web/a on host3: %q, %v", body, err)
	}
	inos := map[string]<-chan string{}
	for _, h := range hs[1:] {
		inos[h.name] = inotify(t, filepath.Join(h.mnt, "svc", "web"))
	}

	killed := a.signal(syscall.SIGKILL)
	bound := 2*ttl + 2*time.Second
	for _, h := range hs {
		waitFor(t, "a to vanish from "+h.name, time.Until(killed.Add(bound)), func() bool {
			return slices.Equal(ls(t, filepath.Join(h.mnt, "svc", "web")), []string{"b"})
		})
	}
	t.Logf("SIGKILL: a vanished from every mount %v after the kill (TTL %v)", time.Since(killed).Round(time.Millisecond), ttl)
	for name, lines := range inos {
		expectEvent(t, "inotify on "+name, lines, "DELETE a", 5*time.Second)
	}

	termed := b.signal(syscall.SIGTERM)
	for _, h := range hs {
		waitFor(t, "b to vanish from "+h.name, time.Until(termed.Add(3*time.Second)), func() bool {
			return len(ls(t, filepath.Join(h.mnt, "svc", "web"))) == 0
		})
	}
	t.Logf("SIGTERM: b vanished from every mount %v after the signal (TTL %v)", time.Since(termed).Round(time.Millisecond), ttlB)
	for name, lines := range inos {
		expectEvent(t, "inotify on "+name, lines, "DELETE b", 5*time.Second)
	}
	if err := b.wait(5 * time.Second); err != nil {
		t.Fatalf("register b after SIGTERM: %v", err)
	}
}

// TestLeaseLeaderKilledExpiresNoneEarly: with registers renewing through
// the followers, kill -9 of the leader never makes their files vanish:
// the new leader starts every lease's TTL afresh. A third lease, held
// through the wire API with a TTL of its own, is renewed half its TTL
// before the kill and next 5/8 of its TTL after the failover: that
// renewal succeeds, and its file stays, only if the TTL did restart at
// the failover, since its last renewal is by then more than a TTL old.
// Once a register is killed, the new leader does expire its lease.
func TestLeaseLeaderKilledExpiresNoneEarly(t *testing.T) {
	needFUSE(t)
	hs := startCluster(t, 3)
	const ttl = 4 * time.Second
	leader := leaderOf(t, hs)
	others := without(hs, leader)
	var regs []*proc
	var files []string
	for i, h := range others {
		name := fmt.Sprintf("r%d", i+1)
		p := startProc(t, "register "+name+" via "+h.name, nil,
			"register", "-a", h.addr, "/svc/db/"+name, "--ttl", ttl.String(), "--value", h.addr)
		p.waitLine("registered", 10*time.Second)
		regs = append(regs, p)
		files = append(files, name)
	}
	c := others[1].client(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const rawTTL = 8 * time.Second
	raw, err := c.LeaseGrant(ctx, rawTTL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetLease(ctx, "/svc/db/raw", fs.Clobber, []byte("raw"), raw); err != nil {
		t.Fatal(err)
	}
	files = append(files, "raw")
	for _, h := range others {
		waitFor(t, "the registered files on "+h.name, 5*time.Second, func() bool {
			return slices.Equal(ls(t, filepath.Join(h.mnt, "svc", "db")), files)
		})
	}
	alive := func(i int) bool { return i >= len(regs) || !regs[i].exited() }

	// Poll the files on the survivors' mounts throughout.
	type miss struct {
		at   time.Time
		host string
		file string
	}
	var (
		mu      sync.Mutex
		misses  []miss
		polls   int
		maxGap  time.Duration
		gapAt   time.Time
		stopAt  = time.Now().Add(time.Hour) // set once the failover is known
		stopped = make(chan struct{})
	)
	go func() {
		defer close(stopped)
		last := time.Now()
		for {
			now := time.Now()
			mu.Lock()
			if gap := now.Sub(last); gap > maxGap {
				maxGap, gapAt = gap, last
			}
			last = now
			end := stopAt
			mu.Unlock()
			if now.After(end) {
				return
			}
			for _, h := range others {
				for i, f := range files {
					if !alive(i) {
						continue
					}
					_, err := os.Stat(filepath.Join(h.mnt, "svc", "db", f))
					mu.Lock()
					polls++
					if err != nil && alive(i) {
						misses = append(misses, miss{time.Now(), h.name, f})
					}
					mu.Unlock()
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	defer func() {
		mu.Lock()
		stopAt = time.Time{}
		mu.Unlock()
		<-stopped
	}()

	renewed := time.Now()
	if _, err := c.LeaseRenew(ctx, raw); err != nil {
		t.Fatal(err)
	}
	time.Sleep(rawTTL / 2) // the scenario: the raw lease's last renewal is old when the leader dies
	killAt := time.Now()
	leader.kill()
	t.Logf("renewed the raw lease %v before the kill; killed the leader %s in %v", killAt.Sub(renewed).Round(time.Millisecond),
		leader.name, time.Since(killAt).Round(time.Millisecond))
	newLeader := leaderOf(t, others)
	failover := time.Now()
	t.Logf("%s leads %v after the kill", newLeader.name, failover.Sub(killAt).Round(time.Millisecond))
	// Renew the raw lease well before the restarted TTL ends, and more
	// than a TTL after its last renewal.
	renewAt := failover.Add(rawTTL * 5 / 8)
	if !renewAt.After(renewed.Add(rawTTL)) {
		t.Fatalf("the failover came too soon after the renewal to tell a restarted TTL from a kept one (%v)", failover.Sub(renewed))
	}
	time.Sleep(time.Until(renewAt))
	if _, err := c.LeaseRenew(ctx, raw); err != nil {
		t.Errorf("renewing the raw lease %v after its last renewal, %v after the failover: %v",
			time.Since(renewed).Round(time.Millisecond), time.Since(failover).Round(time.Millisecond), err)
	} else {
		t.Logf("renewed the raw lease %v after its last renewal (TTL %v)", time.Since(renewed).Round(time.Millisecond), rawTTL)
	}
	mu.Lock()
	stopAt = maxTime(killAt.Add(3*ttl), failover.Add(2*ttl))
	window := stopAt.Sub(killAt)
	mu.Unlock()
	// Keep the raw lease alive through the rest of the window.
	for time.Now().Before(stopAt) {
		time.Sleep(ttl / 4)
		if _, err := c.LeaseRenew(ctx, raw); err != nil {
			t.Errorf("renewing the raw lease: %v", err)
			break
		}
	}
	<-stopped
	mu.Lock()
	t.Logf("%d polls over %v after the kill, longest gap between polls %v, from %v after the kill",
		polls, window.Round(time.Millisecond), maxGap.Round(time.Millisecond), gapAt.Sub(killAt).Round(time.Millisecond))
	for i, m := range misses {
		if i == 5 {
			t.Errorf("... %d misses in all", len(misses))
			break
		}
		t.Errorf("%s missing on %s %v after the leader's kill, its holder alive", m.file, m.host, m.at.Sub(killAt).Round(time.Millisecond))
	}
	// An early expiry shows also without the polls: a register that
	// lost its lease registers again, and the raw lease's renewal fails.
	// The polls only have to be frequent enough to see a file missing
	// for as long as that takes (a loaded machine stretches them).
	if maxGap >= ttl {
		t.Errorf("the polls left a gap of %v", maxGap)
	}
	mu.Unlock()
	for _, p := range regs {
		if p.exited() {
			t.Fatalf("%s exited: %v", p.name, p.wait(0))
		}
		if n := p.count("registered"); n != 1 {
			t.Errorf("%s registered %d times", p.name, n)
		}
	}
	if t.Failed() {
		return
	}

	// The new leader expires a lease whose holder died.
	killed := regs[0].signal(syscall.SIGKILL)
	for _, h := range others {
		waitFor(t, files[0]+" to vanish from "+h.name, time.Until(killed.Add(2*ttl+2*time.Second)), func() bool {
			return slices.Equal(ls(t, filepath.Join(h.mnt, "svc", "db")), files[1:])
		})
	}
	t.Logf("%s vanished %v after its register's SIGKILL (TTL %v)", files[0], time.Since(killed).Round(time.Millisecond), ttl)
	termed := regs[1].signal(syscall.SIGTERM)
	if err := regs[1].wait(5 * time.Second); err != nil {
		t.Fatalf("register after SIGTERM: %v", err)
	}
	if err := c.LeaseRevoke(ctx, raw); err != nil {
		t.Fatal(err)
	}
	for _, h := range others {
		waitFor(t, "r2 and raw to vanish from "+h.name, time.Until(termed.Add(3*time.Second)), func() bool {
			return len(ls(t, filepath.Join(h.mnt, "svc", "db"))) == 0
		})
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// TestLockCounterLosesNoIncrement: processes through every replica
// increment a counter file under `doozerfs lock`, the read and the write
// done by the CLI inside the lock; no increment is lost, and the fencing
// tokens grow with the counter.
func TestLockCounterLosesNoIncrement(t *testing.T) {
	needFUSE(t)
	hs := startCluster(t, 3)
	if _, err := cli(t, hs[0].addr, "0\n", "set", "/counter", "clobber"); err != nil {
		t.Fatal(err)
	}
	const workers, rounds = 8, 5
	path := "PATH=" + filepath.Dir(binary) + ":" + os.Getenv("PATH")
	script := `v=$(doozerfs get /counter) && n=$((v+1)) && echo $n | doozerfs set /counter clobber >/dev/null && echo "$DOOZERFS_LOCK_TOKEN $n"`
	type held struct {
		token, n int64
		worker   int
	}
	var (
		mu    sync.Mutex
		helds []held
		errs  []string
		wg    sync.WaitGroup
	)
	start := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := hs[w%len(hs)]
			for range rounds {
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				cmd := exec.CommandContext(ctx, binary, "lock", "/locks/c", "--ttl", "5s", "--", "sh", "-c", script)
				cmd.Env = append(os.Environ(), "DOOZERFS_ADDR="+h.addr, path)
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				out, err := cmd.Output()
				cancel()
				mu.Lock()
				if err != nil {
					errs = append(errs, fmt.Sprintf("worker %d via %s: %v: %s", w, h.name, err, stderr.String()))
				} else {
					var hd held
					if _, err := fmt.Sscanf(string(out), "%d %d", &hd.token, &hd.n); err != nil {
						errs = append(errs, fmt.Sprintf("worker %d: output %q: %v", w, out, err))
					}
					hd.worker = w
					helds = append(helds, hd)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	t.Logf("%d lock sections in %v", len(helds), time.Since(start).Round(time.Millisecond))
	for _, e := range errs {
		t.Error(e)
	}
	for _, h := range hs {
		out, err := cli(t, h.addr, "", "get", "--consistent", "/counter")
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(out); got != strconv.Itoa(workers*rounds) {
			t.Errorf("counter via %s: %s, want %d", h.name, got, workers*rounds)
		}
	}
	// Each section saw the value the one before it wrote, and held a
	// higher fencing token.
	sort.Slice(helds, func(i, j int) bool { return helds[i].n < helds[j].n })
	for i, hd := range helds {
		if hd.n != int64(i+1) {
			t.Fatalf("section %d wrote %d (sections: %v)", i, hd.n, helds)
		}
		if i > 0 && hd.token <= helds[i-1].token {
			t.Fatalf("token %d after %d: fencing tokens must grow (sections: %v)", hd.token, helds[i-1].token, helds)
		}
	}
}

// electLine parses "elected V term T".
func electLine(t *testing.T, l timedLine) (string, int64) {
	t.Helper()
	var v string
	var term int64
	if _, err := fmt.Sscanf(l.text, "elected %s term %d", &v, &term); err != nil {
		t.Fatalf("%q: %v", l.text, err)
	}
	return v, term
}

// TestElectFailsOverOnKill: three candidates on three replicas; the
// leader's process killed, another is elected within the TTL plus a
// margin, `doozerfs get` shows it, and the terms grow.
func TestElectFailsOverOnKill(t *testing.T) {
	needFUSE(t)
	hs := startCluster(t, 3)
	const ttl = 2 * time.Second
	margin := 3 * time.Second
	elect := func(i int, value string) *proc {
		return startProc(t, "elect "+value, nil, "elect", "-a", hs[i].addr, "/master", "--value", value, "--ttl", ttl.String())
	}
	one := elect(0, "one")
	v, term := electLine(t, one.waitLine("elected ", 10*time.Second))
	if v != "one" {
		t.Fatalf("elected %q", v)
	}
	for _, h := range hs {
		waitFor(t, "master on "+h.name, 5*time.Second, func() bool {
			b, err := os.ReadFile(filepath.Join(h.mnt, "master"))
			return err == nil && string(b) == "one"
		})
	}
	cands := map[string]*proc{"two": elect(1, "two"), "three": elect(2, "three")}
	addrOf := map[string]string{"two": hs[1].addr, "three": hs[2].addr}
	for name, p := range cands {
		p.waitLine("following one", 10*time.Second)
		if l, ok := p.find("elected "); ok {
			t.Fatalf("%s elected while one leads: %q", name, l.text)
		}
	}
	if out, err := cli(t, hs[2].addr, "", "get", "/master"); err != nil || out != "one" {
		t.Fatalf("get /master: %q, %v", out, err)
	}
	cur := one
	for len(cands) > 0 {
		killed := cur.signal(syscall.SIGKILL)
		var winner string
		waitFor(t, "another candidate elected", time.Until(killed.Add(ttl+margin)), func() bool {
			for name, p := range cands {
				if _, ok := p.find("elected "); ok {
					winner = name
					return true
				}
			}
			return false
		})
		p := cands[winner]
		l, _ := p.find("elected ")
		v, next := electLine(t, l)
		t.Logf("%s elected %v after the kill of the leader's process (TTL %v), term %d", v, l.at.Sub(killed).Round(time.Millisecond), ttl, next)
		if v != winner {
			t.Fatalf("%s printed %q", winner, l.text)
		}
		if next <= term {
			t.Fatalf("term %d after term %d", next, term)
		}
		term = next
		delete(cands, winner)
		for name, o := range cands {
			if l, ok := o.find("elected "); ok {
				t.Fatalf("%s and %s both elected: %q", winner, name, l.text)
			}
		}
		if out, err := cli(t, addrOf[winner], "", "get", "/master"); err != nil || out != winner {
			t.Fatalf("get /master: %q, %v; want %q", out, err, winner)
		}
		cur = p
	}
	// The last leader resigns at SIGTERM: nobody leads, at once.
	termed := cur.signal(syscall.SIGTERM)
	if err := cur.wait(5 * time.Second); err != nil {
		t.Fatalf("elect after SIGTERM: %v", err)
	}
	waitFor(t, "/master gone", time.Until(termed.Add(3*time.Second)), func() bool {
		_, err := os.Stat(filepath.Join(hs[0].mnt, "master"))
		return os.IsNotExist(err)
	})
}

// TestEphemeralXattrVanishesWhenHostDies: a file made ephemeral through
// host2's mount carries host2's session lease and vanishes from the
// other mounts (IN_DELETE there) within the session TTL plus a margin
// once host2's serve is killed; a file that is not ephemeral stays.
func TestEphemeralXattrVanishesWhenHostDies(t *testing.T) {
	needFUSE(t)
	const ttl = 3 * time.Second
	hs := startCluster(t, 3, "--session-ttl", ttl.String())
	h1, h2, h3 := hs[0], hs[1], hs[2]
	dir := filepath.Join(h2.mnt, "eph")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"web2", "keep"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("10.0.0.7:80\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	eph := filepath.Join(dir, "web2")
	if out, err := exec.Command("setfattr", "-n", "user.doozerfs.ephemeral", "-v", "1", eph).CombinedOutput(); err != nil {
		t.Fatalf("setfattr: %v: %s", err, out)
	}
	lease := func(file string) string {
		out, err := exec.Command("getfattr", "--only-values", "-n", "user.doozerfs.lease", file).Output()
		if err != nil {
			return ""
		}
		return string(out)
	}
	id := lease(eph)
	if n, err := strconv.ParseInt(id, 10, 64); err != nil || n <= 0 {
		t.Fatalf("getfattr -n user.doozerfs.lease on host2: %q", id)
	}
	if got := lease(filepath.Join(dir, "keep")); got != "" {
		t.Fatalf("keep has a lease: %q", got)
	}
	for _, h := range []*host{h1, h3} {
		waitFor(t, "the lease on "+h.name, 5*time.Second, func() bool {
			return lease(filepath.Join(h.mnt, "eph", "web2")) == id
		})
	}
	inos := map[string]<-chan string{}
	for _, h := range []*host{h1, h3} {
		inos[h.name] = inotify(t, filepath.Join(h.mnt, "eph"))
	}
	leader := leaderOf(t, hs)
	killed := time.Now()
	h2.kill()
	from := killed
	if leader == h2 {
		newLeader := leaderOf(t, []*host{h1, h3})
		from = time.Now()
		t.Logf("host2 led; %s leads %v after the kill", newLeader.name, from.Sub(killed).Round(time.Millisecond))
	}
	for _, h := range []*host{h1, h3} {
		waitFor(t, "web2 to vanish from "+h.name, time.Until(from.Add(ttl+3*time.Second)), func() bool {
			return slices.Equal(ls(t, filepath.Join(h.mnt, "eph")), []string{"keep"})
		})
	}
	t.Logf("web2 vanished %v after host2's kill -9 (session TTL %v)", time.Since(killed).Round(time.Millisecond), ttl)
	for name, lines := range inos {
		expectEvent(t, "inotify on "+name, lines, "DELETE web2", 5*time.Second)
	}
}

// TestLockRetakenBySameSessionReturnsAtOnce (regression): Lock again with
// the session that already holds the lock — what a caller does after a
// Lock that answered TIMEOUT, its outcome unknown, though it took the
// lock — returns the lock held, instead of waiting for its own lock file
// to go, which never happens while the session lives.
func TestLockRetakenBySameSessionReturnsAtOnce(t *testing.T) {
	needFUSE(t)
	hs := startCluster(t, 3)
	c := hs[1].client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := c.NewSession(ctx, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	l, err := c.Lock(ctx, "/locks/again", s, []byte("me"))
	if err != nil {
		t.Fatal(err)
	}
	lctx, lcancel := context.WithTimeout(ctx, 3*time.Second)
	defer lcancel()
	again, err := c.Lock(lctx, "/locks/again", s, []byte("me"))
	if err != nil {
		t.Fatalf("Lock again with the holding session: %v", err)
	}
	if again.Token != l.Token {
		t.Fatalf("token %d, then %d", l.Token, again.Token)
	}
	// Another session still waits.
	other, err := c.NewSession(ctx, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(context.Background())
	octx, ocancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer ocancel()
	if _, err := c.Lock(octx, "/locks/again", other, []byte("other")); err == nil {
		t.Fatal("another session took a held lock")
	}
}

// TestLockStopsCommandWhenCutOff (regression): a `doozerfs lock` whose
// only replica dies stops its command and fails within the TTL (it used
// to go on renewing in vain, the command running, for as long as the
// cluster was out of reach), and another process takes the lock.
func TestLockStopsCommandWhenCutOff(t *testing.T) {
	needFUSE(t)
	hs := startCluster(t, 3)
	const ttl = 2 * time.Second
	dir := t.TempDir()
	first := startProc(t, "lock via host1", nil, "lock", "-a", hs[0].addr, "/locks/cut", "--ttl", ttl.String(), "--",
		"sh", "-c", `echo $$ > `+dir+`/pid; echo held; while :; do sleep 0.05; done`)
	first.waitLine("held", 10*time.Second)
	pidText, err := os.ReadFile(filepath.Join(dir, "pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(pidText)))
	if err != nil {
		t.Fatal(err)
	}
	second := startProc(t, "lock via host2", nil, "lock", "-a", hs[1].addr, "/locks/cut", "--ttl", ttl.String(), "--",
		"sh", "-c", `echo held; while :; do sleep 0.05; done`)
	killed := time.Now()
	hs[0].kill()
	if err := first.wait(ttl + 3*time.Second); err == nil {
		t.Fatal("lock cut off from the cluster exited 0")
	}
	stopped := time.Now()
	t.Logf("the cut-off lock stopped %v after its replica died (TTL %v)", stopped.Sub(killed).Round(time.Millisecond), ttl)
	if err := syscall.Kill(pid, 0); err == nil {
		t.Fatalf("the command of the cut-off lock (pid %d) still runs", pid)
	}
	// The cluster expires the lease no sooner than the holder gave up
	// (the holder counts the TTL from when it sent its last renewal, the
	// leader from when it applied it), and then the other process gets
	// the lock.
	got := second.waitLine("held", 2*ttl+5*time.Second)
	t.Logf("the other lock was taken %v after the kill, %v after the cut-off holder stopped",
		got.at.Sub(killed).Round(time.Millisecond), got.at.Sub(stopped).Round(time.Millisecond))
}

// TestRegisterComesBackAfterLosingItsLease (regression): a register cut
// off from the cluster for longer than its TTL loses its file, and
// registers it again once it reaches the cluster, instead of exiting.
func TestRegisterComesBackAfterLosingItsLease(t *testing.T) {
	needFUSE(t)
	hs := startCluster(t, 3)
	const ttl = 2 * time.Second
	r := startProc(t, "register via host1", nil, "register", "-a", hs[0].addr, "/svc/api/x", "--ttl", ttl.String(), "--value", "v")
	r.waitLine("registered", 10*time.Second)
	others := hs[1:]
	for _, h := range others {
		waitFor(t, "x on "+h.name, 5*time.Second, func() bool {
			return slices.Equal(ls(t, filepath.Join(h.mnt, "svc", "api")), []string{"x"})
		})
	}
	hs[0].kill()
	for _, h := range others {
		waitFor(t, "x to vanish from "+h.name, 2*ttl+10*time.Second, func() bool {
			return len(ls(t, filepath.Join(h.mnt, "svc", "api"))) == 0
		})
	}
	hs[0].start()
	for _, h := range hs {
		waitFor(t, "x back on "+h.name, 20*time.Second, func() bool {
			if r.exited() {
				t.Fatalf("register exited: %v", r.wait(0))
			}
			return slices.Equal(ls(t, filepath.Join(h.mnt, "svc", "api")), []string{"x"})
		})
	}
}
