package main

// The mount workloads of `doozerfs bench`: mount-read and inotify-latency.
//
// Every access to the mount is a raw system call (golang.org/x/sys/unix),
// never an os.File: Go's poller on a FUSE file can wedge the process when
// the daemon stops answering (docs/testing.md).

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/doozerfs/doozerfs/fs"
	"github.com/doozerfs/doozerfs/mount"
	"github.com/doozerfs/doozerfs/replica"
)

// fuseMissing returns what this machine lacks to mount FUSE file systems,
// or "" when it lacks nothing.
func fuseMissing() string {
	var missing []string
	if _, err := os.Stat("/dev/fuse"); err != nil {
		missing = append(missing, "/dev/fuse")
	}
	if _, err := exec.LookPath("fusermount3"); err != nil {
		missing = append(missing, "fusermount3")
	}
	return strings.Join(missing, " and ")
}

// benchMount is the mount a workload reads: an existing one (--mount-dir),
// or a mount of the last replica this process started, made for one run
// of one workload and unmounted at its end, as `serve --mount` mounts it.
type benchMount struct {
	dir  string         // the mount's root: the store's /
	m    *mount.Mounted // nil for --mount-dir
	stop func() bool    // detaches the unmount-on-cancel hook
}

// openMount returns the mount the workload should use. A mount it makes
// is lazily unmounted (fusermount3 -uz) as soon as ctx ends, whatever the
// workload is doing then (an interrupt, --timeout), and by close.
func (b *benchEnv) openMount(ctx context.Context) (*benchMount, error) {
	if b.mountDir != "" {
		return &benchMount{dir: b.mountDir}, nil
	}
	var r *replica.Replica
	switch {
	case b.cluster != nil:
		r = b.cluster.rs[len(b.cluster.rs)-1]
	case b.local != nil:
		r = b.local
	}
	if r == nil {
		return nil, errors.New("no replica of this process to mount (the last one is stopped)")
	}
	dir, err := os.MkdirTemp("", "doozerfs-bench-mount-")
	if err != nil {
		return nil, err
	}
	opts := mount.DefaultOptions()
	opts.Logger = slog.New(slog.DiscardHandler)
	opts.Observe = r.ObserveFUSE
	m, err := mount.Mount(dir, r, opts)
	if err != nil {
		os.Remove(dir)
		return nil, fmt.Errorf("mounting the replica at %s: %w", dir, err)
	}
	bm := &benchMount{dir: m.Dir(), m: m}
	bm.stop = context.AfterFunc(ctx, func() { lazyUnmount(bm.dir) })
	return bm, nil
}

// close unmounts a mount openMount made, lazily if it is busy, makes sure
// it is gone, and removes its mountpoint.
func (bm *benchMount) close() {
	if bm.m == nil {
		return
	}
	bm.stop()
	bm.m.Close()
	if isMountPoint(bm.dir) {
		lazyUnmount(bm.dir)
	}
	os.Remove(bm.dir)
}

// path returns where the store's path p is on the mount.
func (bm *benchMount) path(p string) string {
	return filepath.Join(bm.dir, filepath.FromSlash(strings.TrimPrefix(p, "/")))
}

func lazyUnmount(dir string) {
	exec.Command("fusermount3", "-uz", dir).Run()
}

// isMountPoint reports whether dir is a mount point, from
// /proc/self/mountinfo (no system call on dir itself, which might hang).
func isMountPoint(dir string) bool {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 5 && strings.ReplaceAll(fields[4], `\040`, " ") == dir {
			return true
		}
	}
	return false
}

// readFile reads up to len(buf) bytes of path with open, read and close.
func readFile(path string, buf []byte) (int, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	n, err := unix.Read(fd, buf)
	unix.Close(fd)
	return n, err
}

// awaitFile waits until path, on a mount, holds body: the mount shows the
// tree of the replica it mounts, which may be behind the one written to.
func awaitFile(ctx context.Context, path string, body []byte) error {
	buf := make([]byte, len(body)+1)
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := readFile(path, buf)
		if err == nil && bytes.Equal(buf[:n], body) {
			return nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("it holds %d other bytes", n)
			}
			return fmt.Errorf("%s does not show the value written after 10 s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond): // the mount has no event to wait for here
		}
	}
}

// readLoop times n open+read+close of path, checking each read returns
// body: the figures of the good ones, the errors, and the resources used.
func readLoop(ctx context.Context, path string, body []byte, n int) *benchResult {
	buf := make([]byte, 4096)
	lat := make([]time.Duration, 0, n)
	r := &benchResult{Clients: 1}
	u0, start := usageNow(), time.Now()
	for i := range n {
		if i%256 == 0 && ctx.Err() != nil {
			break
		}
		t0 := time.Now()
		got, err := readFile(path, buf)
		d := time.Since(t0)
		if err == nil && !bytes.Equal(buf[:got], body) {
			err = fmt.Errorf("read %d bytes, not the %d written", got, len(body))
		}
		if err != nil {
			r.Errors++
			if r.FirstErr == "" {
				r.FirstErr = err.Error()
			}
			continue
		}
		lat = append(lat, d)
	}
	r.summarize(lat, time.Since(start))
	u0.since(r)
	return r
}

// tmpfsDir is where mount-read puts its tmpfs file.
func tmpfsDir() string {
	if fsTypeOf("/dev/shm") == "tmpfs" {
		return "/dev/shm"
	}
	return os.TempDir()
}

func runMountRead(ctx context.Context, b *benchEnv) (*benchResult, error) {
	bm, err := b.openMount(ctx)
	if err != nil {
		return nil, err
	}
	defer bm.close()
	c, err := b.dial(ctx, 0)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	body := make([]byte, 1024)
	for i := range body {
		body[i] = 'A' + byte(i%26)
	}
	p := b.p.prefix + "/mount/f1k"
	if _, err := c.Set(ctx, p, fs.Clobber, body); err != nil {
		return nil, err
	}
	file := bm.path(p)
	if err := awaitFile(ctx, file, body); err != nil {
		return nil, err
	}

	tmp, err := os.CreateTemp(tmpfsDir(), "doozerfs-bench-mount-read-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(body)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	readFile(tmp.Name(), make([]byte, 4096)) // warm, as the mount's file is

	r := readLoop(ctx, file, body, b.p.mountReads)
	t := readLoop(ctx, tmp.Name(), body, b.p.mountReads)
	if t.Errors > 0 {
		return nil, fmt.Errorf("reading the tmpfs file %s: %s", tmp.Name(), t.FirstErr)
	}
	r.TmpfsP50, r.TmpfsP99, r.TmpfsMean = t.P50, t.P99, t.Mean
	r.Detail = tmpfsDetail(r, filepath.Dir(tmp.Name()))
	return r, nil
}

// tmpfsDetail prints mount-read's tmpfs column.
func tmpfsDetail(r *benchResult, dir string) string {
	ratio := 0.0
	if r.TmpfsP50 > 0 {
		ratio = float64(r.P50) / float64(r.TmpfsP50)
	}
	if dir != "" {
		dir += ", "
	}
	return fmt.Sprintf("| tmpfs (%ssame run): p50 %s  p99 %s  mean %s; mount p50 = %.1f× tmpfs",
		dir, fmtLatency(r.TmpfsP50), fmtLatency(r.TmpfsP99), fmtLatency(r.TmpfsMean), ratio)
}

// modifyDetail prints inotify-latency's IN_MODIFY column.
func modifyDetail(r *benchResult, n int) string {
	return fmt.Sprintf("| IN_MODIFY (%d events): p50 %s  p99 %s", n, fmtLatency(r.ModifyP50), fmtLatency(r.ModifyP99))
}

// inotifyEvent is an event an inotify watcher read, and when.
type inotifyEvent struct {
	mask uint32
	at   time.Time
}

// inotifyWatch watches one file with inotify, reading its events in a
// goroutine with raw read(2)s.
type inotifyWatch struct {
	fd, wd int
	events chan inotifyEvent // closed when the reader ends
}

func watchFile(path string, mask uint32) (*inotifyWatch, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("inotify_init1: %w", err)
	}
	wd, err := unix.InotifyAddWatch(fd, path, mask)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("inotify_add_watch %s: %w", path, err)
	}
	w := &inotifyWatch{fd: fd, wd: wd, events: make(chan inotifyEvent, 1024)}
	go w.read()
	return w, nil
}

func (w *inotifyWatch) read() {
	defer close(w.events)
	buf := make([]byte, 64*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
	for {
		n, err := unix.Read(w.fd, buf)
		at := time.Now()
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || n <= 0 {
			return
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			if ev.Mask&unix.IN_IGNORED != 0 {
				return
			}
			w.events <- inotifyEvent{mask: ev.Mask, at: at}
			off += unix.SizeofInotifyEvent + int(ev.Len)
		}
	}
}

// close removes the watch, which wakes the reader with IN_IGNORED, waits
// for the reader to end, and only then closes the descriptor (a reader
// reading after the close could read a descriptor reusing its number).
func (w *inotifyWatch) close() {
	unix.InotifyRmWatch(w.fd, uint32(w.wd))
	for range w.events {
	}
	unix.Close(w.fd)
}

func runInotifyLatency(ctx context.Context, b *benchEnv) (*benchResult, error) {
	bm, err := b.openMount(ctx)
	if err != nil {
		return nil, err
	}
	defer bm.close()
	writer, err := b.dial(ctx, 0)
	if err != nil {
		return nil, err
	}
	defer writer.Close()
	p := b.p.prefix + "/inotify/f"
	first := []byte("start")
	if _, err := writer.Set(ctx, p, fs.Clobber, first); err != nil {
		return nil, err
	}
	file := bm.path(p)
	if err := awaitFile(ctx, file, first); err != nil {
		return nil, err
	}
	w, err := watchFile(file, unix.IN_MODIFY|unix.IN_CLOSE_WRITE)
	if err != nil {
		return nil, err
	}
	defer w.close()

	body := b.body()
	if len(body) == 0 {
		body = []byte{0}
	}
	r := &benchResult{Clients: 1}
	lat := make([]time.Duration, 0, b.p.inotifyEvents)
	var modify []time.Duration
	u0, start := usageNow(), time.Now()
	for i := range b.p.inotifyEvents {
		if ctx.Err() != nil {
			break
		}
		// Events left over from the previous change are not this one's.
		for drained := false; !drained; {
			select {
			case _, ok := <-w.events:
				drained = !ok
			default:
				drained = true
			}
		}
		body[0] = 'a' + byte(i%26)
		t0 := time.Now()
		if _, err := writer.Set(ctx, p, fs.Clobber, body); err != nil {
			r.Errors++
			if r.FirstErr == "" {
				r.FirstErr = err.Error()
			}
			continue
		}
		timeout := time.NewTimer(10 * time.Second)
		var got uint32
		for got&unix.IN_CLOSE_WRITE == 0 {
			select {
			case ev, ok := <-w.events:
				if !ok {
					timeout.Stop()
					return nil, errors.New("the inotify watch ended")
				}
				if ev.mask&unix.IN_MODIFY != 0 && got&unix.IN_MODIFY == 0 {
					modify = append(modify, ev.at.Sub(t0))
				}
				if ev.mask&unix.IN_CLOSE_WRITE != 0 {
					lat = append(lat, ev.at.Sub(t0))
				}
				got |= ev.mask
			case <-timeout.C:
				return nil, fmt.Errorf("no IN_CLOSE_WRITE on %s 10 s after SET number %d", file, i+1)
			case <-ctx.Done():
				timeout.Stop()
				return nil, ctx.Err()
			}
		}
		timeout.Stop()
	}
	r.summarize(lat, time.Since(start))
	u0.since(r)
	slices.Sort(modify)
	r.ModifyP50, r.ModifyP99 = percentile(modify, 0.50), percentile(modify, 0.99)
	r.Detail = modifyDetail(r, len(modify))
	return r, nil
}
