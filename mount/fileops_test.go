package mount

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/doozerfs/doozerfs/fs"
	"github.com/doozerfs/doozerfs/mount/internal/teststore"
)

func stat(t testing.TB, path string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	return st
}

func TestStatShowsBodySizeCommitTimeAndTheMountOptions(t *testing.T) {
	s := teststore.New()
	opts := DefaultOptions()
	opts.UID, opts.GID = 1234, 5678
	opts.FileMode, opts.DirMode = 0o640, 0o750
	m := mountAt(t, s, opts)
	rev := s.Set("/d/f", []byte("twelve bytes"))
	_, fst, _ := s.Tree().View().Get("/d/f")

	st := stat(t, filepath.Join(m.Dir(), "d/f"))
	if st.Size != 12 {
		t.Errorf("size %d, want 12", st.Size)
	}
	if got := time.Unix(st.Mtim.Unix()).UnixNano(); got != fst.Time {
		t.Errorf("mtime %d, want the commit time %d", got, fst.Time)
	}
	if st.Ctim != st.Mtim {
		t.Errorf("ctime %v, want mtime %v", st.Ctim, st.Mtim)
	}
	if st.Mode != unix.S_IFREG|0o640 || st.Uid != 1234 || st.Gid != 5678 {
		t.Errorf("mode %o uid %d gid %d, want %o 1234 5678", st.Mode, st.Uid, st.Gid, unix.S_IFREG|0o640)
	}
	dst := stat(t, filepath.Join(m.Dir(), "d"))
	if dst.Mode != unix.S_IFDIR|0o750 || dst.Uid != 1234 {
		t.Errorf("dir mode %o uid %d", dst.Mode, dst.Uid)
	}
	if got, _ := readXattr(filepath.Join(m.Dir(), "d/f"), xattrRev); got != strconv.FormatInt(rev, 10) {
		t.Errorf("%s = %q, want %d", xattrRev, got, rev)
	}
}

func readXattr(path, name string) (string, error) {
	buf := make([]byte, 256)
	n, err := unix.Getxattr(path, name, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

func TestInodeNumbersAreStablePerPathAcrossMountsAndChanges(t *testing.T) {
	s, a, b := twoHosts(t)
	s.Set("/x", []byte("1"))
	ia := stat(t, filepath.Join(a.Dir(), "x")).Ino
	ib := stat(t, filepath.Join(b.Dir(), "x")).Ino
	s.Set("/x", []byte("22"))
	caughtUp(t, a)
	if got := stat(t, filepath.Join(a.Dir(), "x")).Ino; got != ia {
		t.Errorf("inode changed with the body: %d then %d", ia, got)
	}
	if ia != ib {
		t.Errorf("inode %d on one mount, %d on the other", ia, ib)
	}
}

func TestOpenForWriteFailsWithEROFSWithoutQuorum(t *testing.T) {
	s, a, _ := twoHosts(t)
	s.Set("/f", []byte("old\n"))
	s.SetReadOnly(true)
	out, err := run(t, a.Dir(), "bash", "-c", "echo new > f")
	if err == nil || !strings.Contains(out, "Read-only file system") {
		t.Errorf("echo > f without quorum: %v %q, want EROFS", err, out)
	}
	for _, script := range []string{"echo x > g", "mkdir d", "rm f", "mv f g"} {
		if out, err := run(t, a.Dir(), "bash", "-c", script); err == nil || !strings.Contains(out, "Read-only file system") {
			t.Errorf("%s without quorum: %v %q, want EROFS", script, err, out)
		}
	}
	if got := mustRead(t, filepath.Join(a.Dir(), "f")); got != "old\n" {
		t.Errorf("reads without quorum: %q", got)
	}
	s.SetReadOnly(false)
	bash(t, a.Dir(), "echo new > f")
}

func TestReadOnlyMountRefusesChangesAndStillFiresInotify(t *testing.T) {
	s := teststore.New()
	s.Set("/f", []byte("one\n"))
	opts := DefaultOptions()
	opts.ReadOnly = true
	m := mountAt(t, s, opts)
	for _, script := range []string{"echo x > f", "echo x > g", "mkdir d", "rm f", "touch f"} {
		if out, err := run(t, m.Dir(), "bash", "-c", script); err == nil || !strings.Contains(out, "Read-only file system") {
			t.Errorf("%s on a read-only mount: %v %q, want EROFS", script, err, out)
		}
	}
	if st := stat(t, filepath.Join(m.Dir(), "f")); st.Mode&0o222 != 0 {
		t.Errorf("mode %o has write bits on a read-only mount", st.Mode)
	}
	caughtUp(t, m)
	w := watch(t, m.Dir(), ".")
	s.Set("/f", []byte("two\n"))
	w.waitFor("CLOSE_WRITE,CLOSE f")
	if got := mustRead(t, filepath.Join(m.Dir(), "f")); got != "two\n" {
		t.Errorf("read %q after a change elsewhere", got)
	}
}

func TestWritePastTheMaximumBodyFailsWithEFBIG(t *testing.T) {
	s := teststore.New()
	opts := DefaultOptions()
	opts.MaxBody = 1000
	m := mountAt(t, s, opts)
	out, err := run(t, m.Dir(), "bash", "-c", "head -c 1001 /dev/zero > f")
	if err == nil || !strings.Contains(out, "File too large") {
		t.Errorf("writing 1001 bytes: %v %q, want EFBIG", err, out)
	}
	quiesce(t, m)
	if b, _ := s.Get("/f"); len(b) != 0 {
		t.Errorf("committed %d bytes; the create alone should leave an empty file", len(b))
	}
	bash(t, m.Dir(), "head -c 1000 /dev/zero > f")
	if b, _ := s.Get("/f"); len(b) != 1000 {
		t.Errorf("committed %d bytes, want 1000", len(b))
	}
}

func TestCommitThatTimesOutFailsWithETIMEDOUT(t *testing.T) {
	s := teststore.New()
	opts := DefaultOptions()
	opts.Timeout = 200 * time.Millisecond
	m := mountAt(t, s, opts)
	s.SetHook(func(ctx context.Context, ops []fs.Op) error {
		<-ctx.Done()
		return ctx.Err()
	})
	out, err := run(t, m.Dir(), "bash", "-c", "/bin/echo x > f")
	if err == nil || !strings.Contains(out, "Connection timed out") {
		t.Errorf("commit past the deadline: %v %q, want ETIMEDOUT", err, out)
	}
	out, err = run(t, m.Dir(), "mkdir", "d")
	if err == nil || !strings.Contains(out, "Connection timed out") {
		t.Errorf("mkdir past the deadline: %v %q, want ETIMEDOUT", err, out)
	}
}

func TestWriteFailsWithESTALEWhenThisHostKnowsTheFileChanged(t *testing.T) {
	s, a, _ := twoHosts(t)
	s.Set("/f", []byte("one\n"))
	// bash opens f (no truncation), then another host changes it, then
	// bash's builtin echo writes: write(2) itself must fail, as bash
	// ignores errors from close.
	script := `exec 3<>f && echo opened && read -r _ && echo mine >&3; echo "status $?"`
	cmd, stdin, stdout := startBash(t, a.Dir(), script)
	if line := readLine(t, stdout); line != "opened" {
		t.Fatalf("got %q", line)
	}
	s.Set("/f", []byte("two\n"))
	caughtUp(t, a)
	stdin.Write([]byte("\n"))
	rest := readAll(t, stdout)
	cmd.Wait()
	if !strings.Contains(rest, "Stale file handle") || !strings.Contains(rest, "status 1") {
		t.Errorf("echo into a file changed elsewhere: %q, want ESTALE and status 1", rest)
	}
	if got, _ := storeBody(s, "/f"); got != "two\n" {
		t.Errorf("store has %q, want the other host's %q", got, "two\n")
	}
}

func TestCloseFailsWithESTALEWhenTheCommitLosesARace(t *testing.T) {
	s, a, _ := twoHosts(t)
	s.Set("/f", []byte("one\n"))
	// The other host's write reaches the store just before this commit,
	// too late for this host to know at write(2).
	s.SetHook(func(ctx context.Context, ops []fs.Op) error {
		s.SetHook(nil)
		s.Set("/f", []byte("theirs\n"))
		return nil
	})
	out, err := run(t, a.Dir(), "bash", "-c", "/bin/echo mine > f")
	if err == nil || !strings.Contains(out, "Stale file handle") {
		t.Errorf("/bin/echo losing the race: %v %q, want ESTALE", err, out)
	}
	if got, _ := storeBody(s, "/f"); got != "theirs\n" {
		t.Errorf("store has %q", got)
	}
}

func TestExclusiveCreateOfAnExistingFileFailsWithEEXIST(t *testing.T) {
	s, a, b := twoHosts(t)
	s.Set("/f", []byte("one\n"))
	out, err := run(t, a.Dir(), "bash", "-c", "set -o noclobber; echo x > f")
	if err == nil || !strings.Contains(out, "cannot overwrite existing file") {
		t.Errorf("noclobber over an existing file: %v %q", err, out)
	}
	out, err = run(t, a.Dir(), "python3", "-c", "open('f', 'x')")
	if err == nil || !strings.Contains(out, "FileExistsError") {
		t.Errorf("open(f, 'x'): %v %q", err, out)
	}
	// Two hosts creating one name: one wins, the other's close fails.
	s.SetHook(func(ctx context.Context, ops []fs.Op) error {
		s.SetHook(nil)
		if _, err := run(t, b.Dir(), "bash", "-c", "set -o noclobber; /bin/echo b > lock"); err != nil {
			t.Errorf("the first exclusive create failed: %v", err)
		}
		return nil
	})
	out, err = run(t, a.Dir(), "bash", "-c", "set -o noclobber; /bin/echo a > lock")
	if err == nil || !strings.Contains(out, "File exists") {
		t.Errorf("the second exclusive create: %v %q, want EEXIST", err, out)
	}
	if got, _ := storeBody(s, "/lock"); got != "b\n" {
		t.Errorf("lock holds %q, want the winner's", got)
	}
}

func TestMkdirRmdirAndUnlink(t *testing.T) {
	s, a, b := twoHosts(t)
	bash(t, a.Dir(), "mkdir -p d/e && echo x > d/e/f")
	if st, err := s.Tree().View().Stat("/d/e"); err != nil || st.Type != fs.TypeDir {
		t.Fatalf("d/e: %v %v", st, err)
	}
	if out, err := run(t, a.Dir(), "mkdir", "d"); err == nil || !strings.Contains(out, "File exists") {
		t.Errorf("mkdir of an existing directory: %v %q", err, out)
	}
	if out, err := run(t, b.Dir(), "rmdir", "d/e"); err == nil || !strings.Contains(out, "not empty") {
		t.Errorf("rmdir of a non-empty directory: %v %q", err, out)
	}
	bash(t, b.Dir(), "rm d/e/f && rmdir d/e")
	if _, err := s.Tree().View().Stat("/d/e"); err == nil {
		t.Errorf("d/e still exists")
	}
	if out := bash(t, a.Dir(), "ls -A d"); out != "" {
		t.Errorf("ls d on the other host: %q", out)
	}
	if out, err := run(t, a.Dir(), "rm", "nothing"); err == nil || !strings.Contains(out, "No such file") {
		t.Errorf("rm of a missing file: %v %q", err, out)
	}
}

func TestUnsupportedNodeKindsFailWithEPERM(t *testing.T) {
	s, a, _ := twoHosts(t)
	s.Set("/f", []byte("x"))
	for _, script := range []string{"ln f hard", "ln -s f soft", "mkfifo fifo", "mknod dev c 1 3"} {
		if out, err := run(t, a.Dir(), "bash", "-c", script); err == nil || !strings.Contains(out, "Operation not permitted") {
			t.Errorf("%s: %v %q, want EPERM", script, err, out)
		}
	}
}

func TestChmodAndChownToTheCurrentValueSucceedAndOtherwiseFailWithEPERM(t *testing.T) {
	s, a, _ := twoHosts(t)
	s.Set("/f", []byte("x"))
	before := s.Rev()
	bash(t, a.Dir(), "chmod 644 f && chown $(id -u):$(id -g) f && touch -d 2001-01-01 f && chmod 755 .")
	for _, script := range []string{"chmod 600 f", "chown 4321 f", "chmod 700 .", "chmod u+s f"} {
		if out, err := run(t, a.Dir(), "bash", "-c", script); err == nil || !strings.Contains(out, "Operation not permitted") {
			t.Errorf("%s: %v %q, want EPERM", script, err, out)
		}
	}
	if s.Rev() != before {
		t.Errorf("chmod, chown or touch made %d revisions", s.Rev()-before)
	}
}

func TestTouchThenEchoMakesTwoRevisionsWithoutError(t *testing.T) {
	s, a, b := twoHosts(t)
	before := s.Rev()
	bash(t, a.Dir(), "touch new; echo x > new; touch new")
	quiesce(t, a)
	if got, _ := storeBody(s, "/new"); got != "x\n" {
		t.Errorf("store has %q", got)
	}
	if n := s.Rev() - before; n != 2 {
		t.Errorf("%d revisions, want 2 (create, write)", n)
	}
	if got := mustRead(t, filepath.Join(b.Dir(), "new")); got != "x\n" {
		t.Errorf("other host reads %q", got)
	}
}

func TestTruncationWithoutWritingCommitsAtClose(t *testing.T) {
	s, a, _ := twoHosts(t)
	s.Set("/f", []byte("something\n"))
	before := s.Rev()
	bash(t, a.Dir(), ": > f")
	quiesce(t, a)
	if got, ok := storeBody(s, "/f"); !ok || got != "" {
		t.Errorf("store has %q %v, want empty", got, ok)
	}
	if n := s.Rev() - before; n != 1 {
		t.Errorf("%d revisions, want 1", n)
	}
	before = s.Rev()
	bash(t, a.Dir(), "echo data > f; truncate -s 4 f; truncate -s 0 f")
	quiesce(t, a)
	if n := s.Rev() - before; n != 3 {
		t.Errorf("%d revisions for three changes", n)
	}
}

func TestAnInterruptedCommitDoesNotHangTheCaller(t *testing.T) {
	requireTool(t, "python3")
	s := teststore.New()
	opts := DefaultOptions()
	opts.Timeout = time.Minute
	m := mountAt(t, s, opts)
	entered := make(chan struct{}, 1)
	s.SetHook(func(ctx context.Context, ops []fs.Op) error {
		entered <- struct{}{}
		<-ctx.Done() // a store that never answers
		return ctx.Err()
	})
	cmd, _, out := startBash(t, m.Dir(), `exec python3 -c "
with open('f', 'w') as f:
    f.write('x')
"`)
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the commit never reached the store")
	}
	start := time.Now()
	cmd.Process.Signal(syscall.SIGINT)
	cmd.Wait()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the interrupted writer took %v to end", d)
	}
	t.Logf("writer: %q", readAll(t, out))
	s.SetHook(nil)
	quiesce(t, m)
}
