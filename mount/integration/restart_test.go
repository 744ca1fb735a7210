package integration

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// tryWrite writes body to name in dir with python3, which reports errors
// from open, write and close alike, and returns "ok" or the errno's name.
func tryWrite(t testing.TB, dir, name, body string) string {
	t.Helper()
	const script = `
import errno, sys
try:
    with open(sys.argv[1], "w") as f:
        f.write(sys.argv[2])
    print("ok")
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))
`
	cmd := exec.Command("python3", "-c", script, name, body)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python3: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestTheClientMountOutlivesAKilledReplicaAndCatchesUpWhenItRestarts(t *testing.T) {
	requireTools(t, "python3")
	c := newCluster(t)
	mustSh(t, c.m1, "mkdir d && echo before > d/f")
	waitRev(t, c.m2, c.rev())

	if err := c.serve.signal(syscall.SIGKILL); err == nil {
		t.Fatalf("serve exited cleanly after SIGKILL")
	}
	// The killed daemon left its mount behind, dead.
	var st unix.Statfs_t
	if err := unix.Statfs(c.m1, &st); err != unix.ENOTCONN {
		t.Fatalf("statfs of m1 after the replica was killed: %v, want ENOTCONN", err)
	}

	// Reads go on from the client mount's mirror.
	if got := mustSh(t, c.m2, "cat d/f; ls d"); got != "before\nf\n" {
		t.Errorf("m2 with the replica dead: %q", got)
	}
	// Writes fail: with EROFS once the mirror has noticed, which the
	// first commit that finds no replica (EIO) or loses its connection
	// (ETIMEDOUT) makes it do, if its health check has not yet. None
	// may succeed.
	var early []string
	eventually(t, "a write to m2 to fail with EROFS", func() bool {
		switch got := tryWrite(t, c.m2, "d/f", "during\n"); got {
		case "EROFS":
			return true
		case "EIO", "ETIMEDOUT":
			early = append(early, got)
			return false
		default:
			t.Fatalf("a write to m2 with the replica dead: %s", got)
			return false
		}
	})
	if len(early) > 2 {
		t.Errorf("%d writes failed with %v before the mirror refused writes with EROFS", len(early), early)
	}
	if out, err := sh(c.m2, "echo x > d/g"); err == nil || !strings.Contains(out, "Read-only file system") {
		t.Errorf("echo x > m2/d/g with the replica dead: %v %q", err, out)
	}
	if out, err := sh(c.m2, "rm d/f"); err == nil || !strings.Contains(out, "Read-only file system") {
		t.Errorf("rm m2/d/f with the replica dead: %v %q", err, out)
	}
	if out, err := sh(c.m2, "mkdir e"); err == nil || !strings.Contains(out, "Read-only file system") {
		t.Errorf("mkdir m2/e with the replica dead: %v %q", err, out)
	}

	// The replica restarts on its data directory, over the dead mount.
	c.startServe()
	if got := read(t, filepath.Join(c.m1, "d/f")); got != "before\n" {
		t.Errorf("m1 after the restart reads %q", got)
	}
	mustSh(t, c.m1, "echo after > d/f")
	rev := c.rev()
	waitRev(t, c.m2, rev)
	if got := mustSh(t, c.m2, "cat d/f"); got != "after\n" {
		t.Errorf("m2 after catching up reads %q", got)
	}
	eventually(t, "m2 to take writes again", func() bool {
		switch got := tryWrite(t, c.m2, "d/f", "again\n"); got {
		case "ok":
			return true
		case "EROFS":
			return false
		default:
			t.Fatalf("a write to m2 after the restart: %s", got)
			return false
		}
	})
	if got := mustSh(t, c.m1, "cat d/f"); got != "again\n" {
		t.Errorf("m1 after a write on m2 reads %q", got)
	}
	if got := c.mustCLI("", "get", "/d/f"); got != "again\n" {
		t.Errorf("doozerfs get /d/f: %q", got)
	}
}

func TestSIGTERMUnmountsTheClientMountCleanly(t *testing.T) {
	c := newCluster(t)
	mustSh(t, c.m1, "echo x > f")
	waitRev(t, c.m2, c.rev())

	// A process keeps a file open: the mount goes lazily, at once.
	holder := exec.Command("bash", "-c", `exec 3<f && echo open && { read -r _; true; }`)
	holder.Dir = c.m2
	stdin, err := holder.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })
	if line, _ := bufio.NewReader(stdout).ReadString('\n'); line != "open\n" {
		t.Fatalf("the holder did not open m2/f: %q", line)
	}

	if err := c.mount.signal(syscall.SIGTERM); err != nil {
		t.Fatalf("doozerfs mount after SIGTERM: %v\n%s", err, c.mount.output())
	}
	if mounted(t, c.m2) {
		t.Errorf("m2 is still in /proc/self/mountinfo after doozerfs mount exited")
	}
	if out := c.mount.output(); !strings.Contains(out, "unmounted") {
		t.Errorf("doozerfs mount did not log its unmount:\n%s", out)
	}
	stdin.Close()
	if err := holder.Wait(); err != nil {
		t.Errorf("the holder: %v", err)
	}

	// And the replica's mount goes with SIGTERM to serve.
	if err := c.serve.signal(syscall.SIGTERM); err != nil {
		t.Fatalf("doozerfs serve after SIGTERM: %v\n%s", err, c.serve.output())
	}
	if mounted(t, c.m1) {
		t.Errorf("m1 is still in /proc/self/mountinfo after doozerfs serve exited")
	}
	if _, err := os.Stat(filepath.Join(c.m1, "f")); !os.IsNotExist(err) {
		t.Errorf("m1/f after serve exited: %v, want the empty directory underneath", err)
	}
}

// A replica killed right after acknowledging a write used to recover up
// to the commit point its WAL had recorded, one slot earlier, and serve
// --mount mounted that older state for the few milliseconds until it was
// leader again. (Caught about every other run before the fix.)
func TestARestartedReplicaMountsNothingOlderThanItAcknowledged(t *testing.T) {
	c := newCluster(t)
	for i := range 6 {
		mustSh(t, c.m1, fmt.Sprintf("echo v%d > f", i))
	}
	acked := mountRev(t, c.m1)
	if err := c.serve.signal(syscall.SIGKILL); err == nil {
		t.Fatalf("serve exited cleanly after SIGKILL")
	}
	c.serve = startDaemon(c.t, "serve", filepath.Join(c.work, "serve-again.log"),
		"serve", "--addr", c.addr, "--data", c.data, "--name", "host1", "--mount", c.m1)
	c.daemons = append(c.daemons, c.serve)
	// The first read that the new mount answers, as early as it can be.
	rev := int64(-1)
	deadline := time.Now().Add(20 * time.Second)
	for rev < 0 && time.Now().Before(deadline) {
		if b, err := os.ReadFile(filepath.Join(c.m1, ".doozerfs", "rev")); err == nil {
			rev = parseRev(t, string(b))
		}
	}
	body := read(t, filepath.Join(c.m1, "f"))
	if rev < acked {
		t.Errorf("the restarted replica's mount first showed revision %d; it had acknowledged %d before it was killed", rev, acked)
	}
	if body != "v5\n" {
		t.Errorf("m1/f right after the restart: %q, want the last value acknowledged, %q", body, "v5\n")
	}
}
