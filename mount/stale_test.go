package mount

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/doozerfs/doozerfs/mount/internal/teststore"
)

// TestMain lets the test binary serve a mount as a separate process: with
// MOUNT_HELPER_DIR set, it mounts a test store there, says "mounted", and
// serves until killed.
func TestMain(m *testing.M) {
	if dir := os.Getenv("MOUNT_HELPER_DIR"); dir != "" {
		s := teststore.New()
		s.Set("/hello", []byte("from the helper\n"))
		if _, err := Mount(dir, s, DefaultOptions()); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		fmt.Println("mounted")
		select {}
	}
	os.Exit(m.Run())
}

func TestAStaleMountLeftByAKilledDaemonIsClearedByTheNextMount(t *testing.T) {
	requireFuse(t)
	dir := t.TempDir()
	t.Cleanup(func() { exec.Command("fusermount3", "-uz", dir).Run() })
	helper := exec.Command(os.Args[0], "-test.run=^$")
	helper.Env = append(os.Environ(), "MOUNT_HELPER_DIR="+dir)
	out, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { helper.Process.Kill(); helper.Wait() })
	if line, _ := bufio.NewReader(out).ReadString('\n'); line != "mounted\n" {
		t.Fatalf("helper: %q", line)
	}
	if got := mustRead(t, filepath.Join(dir, "hello")); got != "from the helper\n" {
		t.Fatalf("helper mount reads %q", got)
	}
	helper.Process.Signal(syscall.SIGKILL)
	helper.Wait()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != unix.ENOTCONN {
		t.Fatalf("statfs of the dead mount: %v, want ENOTCONN", err)
	}

	s := teststore.New()
	s.Set("/hello", []byte("from the new mount\n"))
	m, err := Mount(dir, s, DefaultOptions())
	if err != nil {
		t.Fatalf("Mount over the stale mount: %v", err)
	}
	defer m.Close()
	if got := mustRead(t, filepath.Join(dir, "hello")); got != "from the new mount\n" {
		t.Errorf("reads %q", got)
	}
}

func TestMountRefusesADirectoryThatIsAlreadyMounted(t *testing.T) {
	s := teststore.New()
	m := mountAt(t, s, DefaultOptions())
	if m2, err := Mount(m.Dir(), s, DefaultOptions()); err == nil {
		m2.Close()
		t.Fatalf("mounted twice at %s", m.Dir())
	}
}

func TestCloseUnmountsEvenWhileAFileIsOpen(t *testing.T) {
	s := teststore.New()
	s.Set("/f", []byte("x"))
	m := mountAt(t, s, DefaultOptions())
	fd, err := unix.Open(filepath.Join(m.Dir(), "f"), unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Unmount(); err == nil {
		t.Errorf("Unmount succeeded while a file is open")
	}
	if got := mustRead(t, filepath.Join(m.Dir(), "f")); got != "x" {
		t.Errorf("after a failed Unmount the mount reads %q", got)
	}
	if err := m.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if mounted, _ := isMountpoint(m.Dir()); mounted {
		t.Errorf("%s is still mounted", m.Dir())
	}
	unix.Close(fd)
	<-m.Done() // served until the last file closed
}
