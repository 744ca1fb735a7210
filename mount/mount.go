package mount

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"bazil.org/fuse"
	"golang.org/x/sys/unix"
)

// debugFUSE, when set (by tests), receives bazil's log of every request.
var debugFUSE func(msg any)

// Mounted is a live mount. Close unmounts it.
type Mounted struct {
	f    *fsys
	conn *fuse.Conn
	dir  string
	dev  uint64 // the mount's st_dev, naming its fusectl connection
	fol  *follower

	done chan struct{} // closed when the FUSE server returns
	err  error         // the server's error, once done is closed

	closeOnce sync.Once
	closeErr  error
	unmounted bool // by Unmount (Close has nothing left to do)
}

// Mount mounts store at dir (an existing directory) and serves it until
// Close. A stale mount left at dir by a killed daemon is cleared first.
func Mount(dir string, store Store, opts Options) (*Mounted, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, fmt.Errorf("mount: %w", err)
	}
	if _, err := ClearStale(dir); err != nil {
		return nil, err
	}
	if mounted, err := isMountpoint(dir); err != nil {
		return nil, err
	} else if mounted {
		return nil, fmt.Errorf("mount: %s is already a mount point", dir)
	}
	mopts := []fuse.MountOption{
		fuse.FSName(opts.FSName),
		fuse.Subtype("doozerfs"),
		fuse.DefaultPermissions(),
		fuse.MaxReadahead(128 << 10),
	}
	if opts.AllowOther {
		mopts = append(mopts, fuse.AllowOther())
	}
	conn, err := fuse.Mount(dir, mopts...)
	if err != nil {
		return nil, fmt.Errorf("mount: %s: %w", dir, err)
	}
	f := newFsys(store, opts, dir)
	f.srv = newServer(conn, f)
	m := &Mounted{f: f, conn: conn, dir: dir, done: make(chan struct{})}
	go func() {
		m.err = f.srv.serve()
		close(m.done)
	}()
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err == nil {
		m.dev = st.Dev
	}
	m.fol = startFollower(f, store.Tree().Rev())
	opts.Logger.Info("mount: mounted", "dir", dir, "root", opts.Root, "ro", opts.ReadOnly)
	return m, nil
}

// Dir returns the mountpoint.
func (m *Mounted) Dir() string { return m.dir }

// Done is closed when the mount stops being served: after Close, or when
// someone else unmounted it (fusermount3 -u).
func (m *Mounted) Done() <-chan struct{} { return m.done }

// Unmount unmounts cleanly, failing (EBUSY) while files are open or a
// process has its working directory inside. The mount keeps working then.
func (m *Mounted) Unmount() error {
	m.f.flushHidden()
	m.fol.stop()
	if err := fusermount("-u", m.dir); err != nil {
		m.fol = startFollower(m.f, m.fol.last)
		return err
	}
	m.unmounted = true
	m.finish()
	return nil
}

// Close unmounts, lazily if the mount is busy: the mount leaves the
// namespace at once, and files still open on it keep being served until
// they are closed or this process exits (then they fail with ENOTCONN).
// It is what SIGINT and SIGTERM should call. It may be called many times.
func (m *Mounted) Close() error {
	m.closeOnce.Do(func() {
		if m.unmounted {
			return
		}
		m.f.mu.Lock()
		m.f.closing = true
		m.f.mu.Unlock()
		m.f.flushHidden()
		m.fol.stop()
		if err := fusermount("-u", m.dir); err == nil {
			m.finish()
		} else if err := fusermount("-uz", m.dir); err != nil {
			m.closeErr = err
		} else {
			m.abort() // if fusectl is mounted, end the connection now
			m.f.subs.closeAll()
			go func() {
				<-m.done
				m.conn.Close()
			}()
		}
		m.f.opts.Logger.Info("mount: unmounted", "dir", m.dir)
	})
	return m.closeErr
}

// finish waits for the server to end after a clean unmount.
func (m *Mounted) finish() {
	m.f.subs.closeAll()
	select {
	case <-m.done:
	case <-time.After(5 * time.Second):
		m.abort()
		<-m.done
	}
	m.conn.Close()
}

// abort ends the FUSE connection through fusectl, when it is mounted.
func (m *Mounted) abort() {
	if m.dev == 0 {
		return
	}
	p := fmt.Sprintf("/sys/fs/fuse/connections/%d/abort", unix.Minor(m.dev))
	if err := os.WriteFile(p, []byte("1"), 0); err != nil {
		m.f.opts.Logger.Debug("mount: cannot abort the connection", "err", err)
	}
}

// ClearStale unmounts dir if it is a FUSE mount whose daemon died (statfs
// fails with ENOTCONN or ECONNABORTED; stat may still answer from the
// kernel's cache), and reports whether it did.
func ClearStale(dir string) (bool, error) {
	var st unix.Statfs_t
	err := unix.Statfs(dir, &st)
	if !errors.Is(err, unix.ENOTCONN) && !errors.Is(err, unix.ECONNABORTED) {
		return false, nil
	}
	if err := fusermount("-uz", dir); err != nil {
		return false, fmt.Errorf("mount: clearing the stale mount at %s: %w", dir, err)
	}
	return true, nil
}

// fusermount runs fusermount3 with flag on dir.
func fusermount(flag, dir string) error {
	out, err := exec.Command("fusermount3", flag, dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("fusermount3 %s %s: %v: %s", flag, dir, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// isMountpoint reports whether dir is a mount point, from
// /proc/self/mountinfo.
func isMountpoint(dir string) (bool, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false, nil // not Linux, or no /proc: let fusermount3 decide
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && unescapeMountinfo(fields[4]) == dir {
			return true, nil
		}
	}
	return false, sc.Err()
}

// unescapeMountinfo undoes the octal escapes of /proc/self/mountinfo.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
