package mount

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/doozerfs/doozerfs/fs"
	"github.com/doozerfs/doozerfs/mount/internal/teststore"
)

func TestRenameIsOneTransaction(t *testing.T) {
	s, a, b := twoHosts(t)
	s.Set("/f", []byte("f\n"))
	s.Set("/g", []byte("g\n"))
	s.Set("/d/x", []byte("x\n"))
	s.Set("/d/sub/y", []byte("y\n"))
	s.Mkdir("/d/sub/empty")
	s.Mkdir("/target")
	log := followStore(t, s)

	cases := []struct {
		name, script string
		gone, there  []string // paths that must not and must exist after
	}{
		{"a file", "mv f f2", []string{"/f"}, []string{"/f2"}},
		{"a file over another", "mv f2 g", []string{"/f2"}, []string{"/g"}},
		{"a file into a directory", "mv g d/", []string{"/g"}, []string{"/d/g"}},
		{"a directory with its subtree", "mv d e", []string{"/d", "/d/x", "/d/sub/y"}, []string{"/e/x", "/e/sub/y", "/e/sub/empty", "/e/g"}},
		{"a directory over an empty one", "mv -T e target", []string{"/e"}, []string{"/target/x", "/target/sub/y"}},
	}
	for _, c := range cases {
		before := s.Rev()
		bash(t, a.Dir(), c.script)
		if n := s.Rev() - before; n != 1 {
			t.Errorf("%s: %d revisions, want 1: %v", c.name, n, log.since(before))
		}
		v := s.Tree().View()
		for _, p := range c.gone {
			if _, err := v.Stat(p); err == nil {
				t.Errorf("%s: %s still exists", c.name, p)
			}
		}
		for _, p := range c.there {
			if _, err := v.Stat(p); err != nil {
				t.Errorf("%s: %s: %v", c.name, p, err)
			}
		}
	}
	// (A reader on b that walks through the replaced directory while b
	// replays the rename would get ENOENT, as on any file system.)
	caughtUp(t, b)
	if got := mustRead(t, filepath.Join(b.Dir(), "target/sub/y")); got != "y\n" {
		t.Errorf("the other host reads %q", got)
	}
	if got := mustRead(t, filepath.Join(a.Dir(), "target/g")); got != "f\n" {
		t.Errorf("this host reads %q after the renames", got)
	}
	s.Set("/full/z", []byte("z"))
	if out, err := run(t, a.Dir(), "mv", "-T", "target", "full"); err == nil || !strings.Contains(out, "not empty") {
		t.Errorf("mv over a non-empty directory: %v %q, want ENOTEMPTY", err, out)
	}
	s.Set("/keep", []byte("keep"))
	s.Set("/other", []byte("other"))
	run(t, a.Dir(), "mv", "-n", "other", "keep")
	if got, _ := storeBody(s, "/keep"); got != "keep" {
		t.Errorf("mv -n replaced the target: %q", got)
	}
}

func TestRenameOfADirectoryLargerThanTheLimitFailsWithEXDEV(t *testing.T) {
	s := teststore.New()
	opts := DefaultOptions()
	opts.MaxRenameEntries = 10
	m := mountAt(t, s, opts)
	var ops []fs.Op
	for i := range 11 {
		ops = append(ops, fs.Op{Kind: fs.OpSet, Path: fmt.Sprintf("/big/%d", i), Rev: fs.Clobber})
	}
	s.TxnOps(ops...)
	before := s.Rev()
	out, err := run(t, m.Dir(), "python3", "-c", "import os; os.rename('big', 'moved')")
	if err == nil || !strings.Contains(out, "Invalid cross-device link") {
		t.Errorf("renaming 11 entries with a limit of 10: %v %q, want EXDEV", err, out)
	}
	if s.Rev() != before {
		t.Errorf("the refused rename changed the store")
	}
}

func TestRenameRacingAChangeElsewhereMovesTheNewContentWhole(t *testing.T) {
	s, a, _ := twoHosts(t)
	s.Set("/d/x", []byte("x"))
	s.Set("/d/y", []byte("y"))
	bash(t, a.Dir(), "ls d >/dev/null")
	log := followStore(t, s)
	hooked := 0
	s.SetHook(func(_ context.Context, ops []fs.Op) error {
		hooked++
		s.SetHook(nil)
		s.Set("/d/x", []byte("changed elsewhere"))
		return nil
	})
	// The first transaction fails (d/x is not the revision this host
	// showed) with ESTALE, which the kernel retries once with fresh
	// lookups: the retry moves the new content.
	bash(t, a.Dir(), "mv d e")
	if hooked != 1 {
		t.Fatalf("hook ran %d times", hooked)
	}
	var renames int64
	for _, ev := range log.since(0) {
		if ev.Path == "/e" {
			renames = ev.Rev
		}
	}
	for _, ev := range log.since(0) {
		if ev.Rev != renames && ev.Path != "/d/x" {
			t.Errorf("an event outside the rename's revision: %d %v %s", ev.Rev, ev.Kind, ev.Path)
		}
	}
	if got, _ := storeBody(s, "/e/x"); got != "changed elsewhere" {
		t.Errorf("e/x holds %q", got)
	}
	if _, ok := s.Get("/d/x"); ok {
		t.Errorf("d/x is still there")
	}
}

func TestAFileRenamedToABackupNameIsDeletedAfterTheGracePeriod(t *testing.T) {
	s := teststore.New()
	opts := DefaultOptions()
	opts.HideGrace = 50e6 // 50 ms
	m := mountAt(t, s, opts)
	s.Set("/f", []byte("f"))
	bash(t, m.Dir(), "mv f f~")
	if _, ok := s.Get("/f"); !ok {
		t.Fatalf("f left the store at once")
	}
	if _, ok := s.Get("/f~"); ok {
		t.Errorf("the backup name was replicated")
	}
	if out := bash(t, m.Dir(), "ls -A"); out != "f~\n" {
		t.Errorf("ls on this host: %q", out)
	}
	eventually(t, "f to be deleted", func() bool { _, ok := s.Get("/f"); return !ok })
	if got := mustRead(t, filepath.Join(m.Dir(), "f~")); got != "f" {
		t.Errorf("f~ holds %q", got)
	}
}

func TestSedAndVimTemporaryFilesStayOnThisHost(t *testing.T) {
	requireTool(t, "vim")
	s, a, b := twoHosts(t)
	s.Set("/f", []byte("a\n"))
	log := followStore(t, s)
	before := s.Rev()
	// Keep vim's swap file around while the other host lists.
	cmd, stdin, out := startBash(t, a.Dir(), `vim -es -u NONE -N -c 'set backupskip=' -c 'normal Ab' -c '!echo editing; read -r _' -c wq f`)
	_ = out
	eventually(t, "the swap file", func() bool {
		return strings.Contains(bash(t, a.Dir(), "ls -A"), ".f.swp")
	})
	if got := bash(t, b.Dir(), "ls -A"); got != "f\n" {
		t.Errorf("the other host lists %q while vim runs", got)
	}
	stdin.Write([]byte("\n"))
	cmd.Wait()
	quiesce(t, a)
	for _, ev := range log.since(before) {
		if ev.Path != "/f" {
			t.Errorf("replicated %v %s", ev.Kind, ev.Path)
		}
	}
}

func TestALocalFileRenamedWhileOpenIsPublishedWithEverythingWrittenToIt(t *testing.T) {
	requireTool(t, "python3")
	s, a, b := twoHosts(t)
	out, err := run(t, a.Dir(), "python3", "-c", `
import os
fd = os.open("sedABC123", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
os.write(fd, b"one")
os.rename("sedABC123", "f")
os.write(fd, b"two")
os.close(fd)
`)
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	quiesce(t, a)
	if got, _ := storeBody(s, "/f"); got != "onetwo" {
		t.Errorf("f holds %q", got)
	}
	if got := bash(t, b.Dir(), "ls -A"); got != "f\n" {
		t.Errorf("the other host lists %q", got)
	}
}

func TestCloseCommitsTheDeleteOfAFileRenamedToABackupName(t *testing.T) {
	s := teststore.New()
	opts := DefaultOptions()
	opts.HideGrace = time.Hour
	m := mountAt(t, s, opts)
	s.Set("/f", []byte("f"))
	bash(t, m.Dir(), "mv f f~")
	if _, ok := s.Get("/f"); !ok {
		t.Fatalf("f left the store before the grace period")
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Get("/f"); ok {
		t.Errorf("f is still in the store after Close")
	}
}
