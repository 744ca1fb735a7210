package clustertest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/doozerfs/doozerfs/fs"
	"github.com/doozerfs/doozerfs/mount"
	"github.com/doozerfs/doozerfs/wire"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "doozerfs-clustertest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "doozerfs")
	out, err := exec.Command("go", "build", "-o", binary, "github.com/doozerfs/doozerfs/cmd/doozerfs").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building doozerfs: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// needFUSE skips without FUSE on a developer's machine; with CI=true a
// missing capability is a failure.
func needFUSE(t *testing.T) {
	t.Helper()
	_, errDev := os.Stat("/dev/fuse")
	_, errBin := exec.LookPath("fusermount3")
	_, errIno := exec.LookPath("inotifywait")
	if errDev == nil && errBin == nil && errIno == nil {
		return
	}
	msg := fmt.Sprintf("needs /dev/fuse, fusermount3 and inotifywait (%v, %v, %v)", errDev, errBin, errIno)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func freePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no free port for TCP and UDP")
	return 0
}

// host is one replica process with its data dir and mount.
type host struct {
	t     *testing.T
	name  string
	addr  string
	data  string
	mnt   string
	join  string
	extra []string // more serve flags
	cmd   *exec.Cmd
	log   *bytes.Buffer
	logMu *sync.Mutex
	done  chan struct{}
}

func newHost(t *testing.T, name, join string) *host {
	dir := t.TempDir()
	h := &host{t: t, name: name, addr: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		data: filepath.Join(dir, "data"), mnt: filepath.Join(dir, "mnt"), join: join,
		log: new(bytes.Buffer), logMu: new(sync.Mutex)}
	if err := os.Mkdir(h.mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.stop(syscall.SIGKILL)
		exec.Command("fusermount3", "-uz", h.mnt).Run()
		if t.Failed() {
			h.logMu.Lock()
			t.Logf("log of %s:\n%s", h.name, h.log.String())
			h.logMu.Unlock()
		}
	})
	return h
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// start runs `doozerfs serve` and waits until its mount answers.
func (h *host) start() {
	h.t.Helper()
	args := []string{"serve", "--addr", h.addr, "--data", h.data, "--name", h.name, "--mount", h.mnt,
		"--gossip-fast", "--dead-timeout", "2s", "--write-timeout", "5s"}
	if h.join != "" {
		args = append(args, "--join", h.join)
	}
	args = append(args, h.extra...)
	h.cmd = exec.Command(binary, args...)
	h.cmd.Stdout = lockedWriter{h.logMu, h.log}
	h.cmd.Stderr = lockedWriter{h.logMu, h.log}
	if err := h.cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	h.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		cmd.Wait()
		close(done)
	}(h.cmd, h.done)
	waitFor(h.t, h.name+" mounted", 20*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(h.mnt, ".doozerfs", "rev"))
		return err == nil
	})
}

// kill -9s the process and clears its mount the way the next start
// would: a daemon killed while one of its threads used its own mount
// lingers as a zombie until its FUSE connection is aborted.
func (h *host) kill() {
	if h.cmd == nil || h.cmd.Process == nil {
		return
	}
	h.cmd.Process.Kill()
	if _, err := mount.ClearStale(h.mnt); err != nil {
		h.t.Logf("clearing the mount of %s: %v", h.name, err)
	}
	<-h.done
}

// stop sends sig and waits for the process.
func (h *host) stop(sig syscall.Signal) {
	if sig == syscall.SIGKILL {
		h.kill()
		return
	}
	if h.cmd == nil || h.cmd.Process == nil {
		return
	}
	select {
	case <-h.done:
		return
	default:
	}
	h.cmd.Process.Signal(sig)
	select {
	case <-h.done:
	case <-time.After(20 * time.Second):
		h.cmd.Process.Kill()
		<-h.done
	}
}

func (h *host) client(t *testing.T) *wire.Client {
	c, err := wire.Dial(context.Background(), []string{h.addr}, wire.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startCluster starts n hosts, the first founding, the rest joining it,
// and waits until n voters (at most 3) are listed. extra are more serve
// flags for every host.
func startCluster(t *testing.T, n int, extra ...string) []*host {
	var hs []*host
	for i := range n {
		join := ""
		if i > 0 {
			join = hs[0].addr
		}
		h := newHost(t, fmt.Sprintf("host%d", i+1), join)
		h.extra = extra
		h.start()
		hs = append(hs, h)
	}
	c := hs[0].client(t)
	waitFor(t, "all members in /ctl/node", 30*time.Second, func() bool {
		ms, err := c.Members(context.Background())
		if err != nil {
			return false
		}
		voters := 0
		for _, m := range ms {
			if m.Role == wire.RoleVoter {
				voters++
			}
		}
		ents, err := os.ReadDir(filepath.Join(hs[0].mnt, "ctl", "node"))
		return err == nil && len(ents) == n && voters == min(n, 3)
	})
	return hs
}

func TestThreeHostsWithMounts(t *testing.T) {
	needFUSE(t)
	hs := startCluster(t, 3)
	a, c := hs[0], hs[2]
	// ls /mnt/ctl/node on any host lists the three.
	for _, h := range hs {
		waitFor(t, "/ctl/node on "+h.name, 10*time.Second, func() bool {
			ents, err := os.ReadDir(filepath.Join(h.mnt, "ctl", "node"))
			if err != nil || len(ents) != 3 {
				return false
			}
			for i, e := range ents {
				if e.Name() != fmt.Sprintf("host%d", i+1) {
					return false
				}
			}
			return true
		})
	}
	if err := os.MkdirAll(filepath.Join(a.mnt, "app"), 0o755); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "app/ on host3", 10*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(c.mnt, "app"))
		return err == nil
	})
	// inotifywait on C.
	ino := exec.Command("inotifywait", "-m", "-e", "modify,close_write,create,delete", "--format", "%e %f", filepath.Join(c.mnt, "app"))
	out, err := ino.StderrPipe()
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
	defer func() { ino.Process.Kill(); ino.Wait() }()
	es := bufio.NewScanner(out)
	for es.Scan() {
		if strings.Contains(es.Text(), "Watches established") {
			break
		}
	}
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	// echo on A, cat on C as soon as the write returns on A.
	for i := range 5 {
		want := fmt.Sprintf("value %d\n", i)
		sh := exec.Command("sh", "-c", fmt.Sprintf("echo 'value %d' > %s", i, filepath.Join(a.mnt, "app", "db.conf")))
		if out, err := sh.CombinedOutput(); err != nil {
			t.Fatalf("echo on host1: %v %s", err, out)
		}
		// host3 sees the write once its replica has applied it: the
		// leader sends the new commit point to every replica before it
		// applies and answers, so this is one network hop behind host1.
		start := time.Now()
		var got []byte
		var tries int
		waitFor(t, "the write on host3", 5*time.Second, func() bool {
			tries++
			got, err = os.ReadFile(filepath.Join(c.mnt, "app", "db.conf"))
			return err == nil && string(got) == want
		})
		t.Logf("write %d visible on host3 after %v (%d reads)", i, time.Since(start), tries)
	}
	seen := map[string]bool{}
	deadline := time.After(10 * time.Second)
	for !seen["CLOSE_WRITE,CLOSE db.conf"] || !seen["CREATE db.conf"] {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("inotifywait ended")
			}
			seen[l] = true
		case <-deadline:
			t.Fatalf("inotify on host3 saw %v, want CREATE and CLOSE_WRITE of db.conf", seen)
		}
	}
}

func TestKillLeaderAndWholeClusterLosesNoAcknowledgedWrite(t *testing.T) {
	needFUSE(t)
	hs := startCluster(t, 3)
	addrs := []string{hs[0].addr, hs[1].addr, hs[2].addr}
	type ack struct {
		path string
		body string
		rev  int64
	}
	var mu sync.Mutex
	var acks []ack
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := wire.Dial(ctx, addrs, wire.Options{})
			if err != nil {
				return
			}
			defer c.Close()
			for i := 0; ctx.Err() == nil; i++ {
				p := fmt.Sprintf("/w%d/%d", w, i%50)
				body := fmt.Sprintf("%d-%d", w, i)
				wctx, wcancel := context.WithTimeout(ctx, 3*time.Second)
				rev, err := c.Set(wctx, p, fs.Clobber, []byte(body))
				wcancel()
				if err == nil {
					mu.Lock()
					acks = append(acks, ack{p, body, rev})
					mu.Unlock()
				}
			}
		}()
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(acks) }
	waitFor(t, "some writes", 20*time.Second, func() bool { return count() > 100 })
	// Kill -9 the leader; writes go on through the others; restart it.
	var leader *host
	c0 := hs[1].client(t)
	self, err := c0.Self(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hs {
		if h.name == self.Leader {
			leader = h
		}
	}
	if leader == nil {
		t.Fatalf("leader %q not found", self.Leader)
	}
	n := count()
	leader.kill()
	waitFor(t, "writes after the leader died", 20*time.Second, func() bool { return count() > n+100 })
	leader.start()
	n = count()
	waitFor(t, "more writes", 20*time.Second, func() bool { return count() > n+100 })
	// Kill -9 every replica at once, mid-stream.
	for _, h := range hs {
		h.cmd.Process.Kill()
	}
	cancel()
	wg.Wait()
	for _, h := range hs {
		h.kill()
	}
	for _, h := range hs {
		h.start()
	}
	c := hs[0].client(t)
	// Latest acknowledged value per path must be present (or a later one).
	latest := map[string]ack{}
	for _, a := range acks {
		if a.rev > latest[a.path].rev {
			latest[a.path] = a
		}
	}
	var maxRev int64
	for _, a := range latest {
		maxRev = max(maxRev, a.rev)
	}
	rctx, rcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer rcancel()
	waitFor(t, "the cluster to serve again", 30*time.Second, func() bool {
		rev, err := c.Consistent().Rev(rctx)
		return err == nil && rev >= maxRev
	})
	for p, a := range latest {
		body, st, err := c.Get(rctx, p, 0)
		if err != nil {
			t.Fatalf("%s: acknowledged at rev %d, now: %v", p, a.rev, err)
		}
		if st.Rev < a.rev || (st.Rev == a.rev && string(body) != a.body) {
			t.Fatalf("%s: acknowledged %q at rev %d, found %q at rev %d", p, a.body, a.rev, body, st.Rev)
		}
	}
	t.Logf("%d acknowledged writes, %d paths checked after kill -9 of the whole cluster", len(acks), len(latest))
	// And it takes writes again.
	if _, err := c.Set(rctx, "/after", fs.Clobber, []byte("ok")); err != nil {
		t.Fatal(err)
	}
}
