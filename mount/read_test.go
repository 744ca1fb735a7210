package mount

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// revBody is a body of about size bytes that says which revision it is in
// every line, so that a mix of two is visible.
func revBody(n, size int) []byte {
	line := fmt.Sprintf("revision %d\n", n)
	return bytes.Repeat([]byte(line), size/len(line))
}

func TestOneOpenReadsOneRevisionWhileTheFileChanges(t *testing.T) {
	s, _, b := twoHosts(t)
	for _, size := range []int{100, 5000, 300 << 10} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			s.Set("/f", revBody(0, size))
			caughtUp(t, b)
			path := filepath.Join(b.Dir(), "f")
			mustRead(t, path) // cached by the kernel now
			for n := 1; n <= 20; n++ {
				fd, err := unix.Open(path, unix.O_RDONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				var got []byte
				buf := make([]byte, 1000)
				for i := 0; ; i++ {
					if i == 1 {
						s.Set("/f", revBody(n, size+n*7)) // another host, mid-read
						if n%2 == 0 {
							caughtUp(t, b) // and after this host invalidated its caches
						}
					}
					k, err := unix.Read(fd, buf)
					if err != nil {
						t.Fatal(err)
					}
					if k == 0 {
						break
					}
					got = append(got, buf[:k]...)
				}
				unix.Close(fd)
				if want := revBody(n-1, size+(n-1)*7); !bytes.Equal(got, want) {
					t.Fatalf("open %d read %d bytes, not revision %d's %d: %.40q…%.40q", n, len(got), n-1, len(want), got, got[max(0, len(got)-40):])
				}
				if got := mustRead(t, path); !bytes.Equal([]byte(got), revBody(n, size+n*7)) {
					t.Fatalf("the next open read %d bytes, not revision %d", len(got), n)
				}
			}
		})
	}
}

func TestAFileAndADirectoryThisHostCachedAreFreshRightAfterAWriteElsewhere(t *testing.T) {
	s, a, b := twoHosts(t)
	s.Set("/d/f", []byte("one\n"))
	s.Set("/d/g", []byte("gone soon\n"))
	for range 3 { // into b's caches
		mustRead(t, filepath.Join(b.Dir(), "d/f"))
		bash(t, b.Dir(), "ls -l d >/dev/null")
	}
	for i := range 30 {
		want := fmt.Sprintf("value %d, of a varying length%s\n", i, strings.Repeat("!", i%5))
		bash(t, a.Dir(), fmt.Sprintf("echo '%s' > d/f", strings.TrimSuffix(want, "\n")))
		if got := mustRead(t, filepath.Join(b.Dir(), "d/f")); got != want {
			t.Fatalf("write %d: b reads %q right after the commit, want %q", i, got, want)
		}
	}
	bash(t, a.Dir(), "rm d/g && echo new > d/h")
	if got := bash(t, b.Dir(), "ls d"); got != "f\nh\n" {
		t.Errorf("b lists %q right after the change, want f and h", got)
	}
	if got := mustRead(t, filepath.Join(b.Dir(), "d/h")); got != "new\n" {
		t.Errorf("b reads %q", got)
	}
	if _, err := readFile(filepath.Join(b.Dir(), "d/g")); err == nil {
		t.Errorf("b still reads the deleted d/g")
	}
}

func TestAWriterDoesNotWaitForeverForAReaderThatKeepsTheFileOpen(t *testing.T) {
	s, a, _ := twoHosts(t)
	s.Set("/f", revBody(1, 20000))
	caughtUp(t, a)
	path := filepath.Join(a.Dir(), "f")
	fd, err := unix.Open(path, unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	buf := make([]byte, 1000)
	if _, err := unix.Read(fd, buf); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	bash(t, a.Dir(), "echo new > f")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the writer waited %v", d)
	}
	if got, _ := storeBody(s, "/f"); got != "new\n" {
		t.Errorf("store has %q", got)
	}
	// The reader that outstayed the writer's wait may not read on: its
	// revision was replaced here. What it read was whole.
	var rest []byte
	for {
		n, err := unix.Read(fd, buf)
		if err != nil {
			if err != unix.ESTALE {
				t.Errorf("reader after the write: %v, want ESTALE or its own revision", err)
			}
			break
		}
		if n == 0 {
			if want := revBody(1, 20000)[1000:]; !bytes.Equal(rest, want) {
				t.Errorf("the reader read %d more bytes, not its revision's", len(rest))
			}
			break
		}
		rest = append(rest, buf[:n]...)
	}
	if got := mustRead(t, path); got != "new\n" {
		t.Errorf("a new open reads %q", got)
	}
}
