package mount

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/doozerfs/doozerfs/mount/internal/teststore"
)

// openReadClose is one iteration of the mount-read workload.
func openReadClose(b *testing.B, path string, buf []byte) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	n, err := unix.Read(fd, buf)
	if err != nil || n != 1024 {
		b.Fatalf("read %d, %v", n, err)
	}
	unix.Close(fd)
}

// BenchmarkMountRead is TARGETS.md's mount-read: open+read+close of a
// 1 KiB file through the mount (cached by the kernel after the first
// open), and the same loop on a tmpfs file for comparison.
func BenchmarkMountRead(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 1024)
	buf := make([]byte, 4096)
	b.Run("mount", func(b *testing.B) {
		s := teststore.New()
		s.Set("/f", body)
		m := mountAt(b, s, DefaultOptions())
		path := filepath.Join(m.Dir(), "f")
		openReadClose(b, path, buf)
		b.ResetTimer()
		for range b.N {
			openReadClose(b, path, buf)
		}
	})
	b.Run("tmpfs", func(b *testing.B) {
		dir := "/dev/shm"
		if _, err := os.Stat(dir); err != nil {
			dir = os.TempDir()
		}
		path := filepath.Join(dir, "doozerfs-bench")
		if err := os.WriteFile(path, body, 0o644); err != nil {
			b.Fatal(err)
		}
		defer os.Remove(path)
		b.ResetTimer()
		for range b.N {
			openReadClose(b, path, buf)
		}
	})
}

// BenchmarkInotifyLatency is TARGETS.md's inotify-latency: from a change
// applied to the store to IN_MODIFY and IN_CLOSE_WRITE at an inotify
// watcher of the file on the mount. It reports percentiles.
func BenchmarkInotifyLatency(b *testing.B) {
	s := teststore.New()
	s.Set("/f", []byte("0"))
	m := mountAt(b, s, DefaultOptions())
	caughtUp(b, m)
	ifd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		b.Fatal(err)
	}
	wd, err := unix.InotifyAddWatch(ifd, filepath.Join(m.Dir(), "f"), unix.IN_MODIFY|unix.IN_CLOSE_WRITE)
	if err != nil {
		b.Fatal(err)
	}
	events := make(chan uint32, 64)
	go func() {
		defer close(events)
		buf := make([]byte, 4096)
		for {
			n, err := unix.Read(ifd, buf)
			if err != nil || n <= 0 {
				return
			}
			for off := 0; off+unix.SizeofInotifyEvent <= n; {
				ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
				if ev.Mask&unix.IN_IGNORED != 0 {
					return
				}
				events <- ev.Mask
				off += unix.SizeofInotifyEvent + int(ev.Len)
			}
		}
	}()
	// The reader must be gone before the descriptor is closed: a reader
	// that read again after the close could read the next run's
	// descriptor, which reuses the number. Removing the watch wakes it
	// with IN_IGNORED.
	defer func() {
		unix.InotifyRmWatch(ifd, uint32(wd))
		for range events {
		}
		unix.Close(ifd)
	}()
	var modify, closeWrite []time.Duration
	body := []byte("value")
	b.ResetTimer()
	for i := range b.N {
		body[0] = byte('a' + i%26)
		start := time.Now()
		s.Set("/f", body)
		for got := uint32(0); got&unix.IN_CLOSE_WRITE == 0; {
			mask, ok := <-events
			if !ok {
				b.Fatal("inotify closed")
			}
			if mask&unix.IN_MODIFY != 0 && got&unix.IN_MODIFY == 0 {
				modify = append(modify, time.Since(start))
			}
			got |= mask
		}
		closeWrite = append(closeWrite, time.Since(start))
	}
	b.StopTimer()
	report := func(name string, d []time.Duration) {
		slices.Sort(d)
		b.ReportMetric(float64(d[len(d)/2].Microseconds()), name+"-p50-µs")
		b.ReportMetric(float64(d[len(d)*99/100].Microseconds()), name+"-p99-µs")
	}
	report("modify", modify)
	report("close_write", closeWrite)
}
