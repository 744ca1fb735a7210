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

// abort ends the FUSE connection through fusectl.
func (m *Mounted) abort() {
	if m.dev == 0 {
		return
	}
	if err := abortConn(unix.Minor(m.dev)); err != nil {
		m.f.opts.Logger.Debug("mount: cannot abort the connection", "err", err)
	}
}

// fusectlDir is where the kernel's FUSE control file system lists the
// connections; writing to a connection's abort file ends it.
const fusectlDir = "/sys/fs/fuse/connections"

// abortConn ends FUSE connection minor, mounting fusectl first if it is
// not (that needs root; otherwise the error says so).
func abortConn(minor uint32) error {
	if _, err := os.Stat(fusectlDir + "/" + strconv.FormatUint(uint64(minor), 10)); err != nil {
		// Not mounted yet (or the connection is gone).
		unix.Mount("fusectl", fusectlDir, "fusectl", 0, "")
	}
	return os.WriteFile(fmt.Sprintf("%s/%d/abort", fusectlDir, minor), []byte("1"), 0)
}

// staleProbe bounds how long ClearStale waits for a mount's daemon to
// answer statfs before it takes the daemon for dead.
const staleProbe = 2 * time.Second

// ClearStale unmounts dir if it is a FUSE mount whose daemon died, and
// reports whether it did. A dead daemon's mount fails statfs with ENOTCONN
// or ECONNABORTED, or — when the daemon was killed while one of its own
// threads used the mount, so that it lingers as a zombie holding the
// connection open — never answers at all. In both cases the connection is
// aborted through fusectl (which frees such a zombie) and the mount
// removed with a lazy unmount.
func ClearStale(dir string) (bool, error) {
	minor, ok, err := fuseMinor(dir)
	if err != nil || !ok {
		return false, err
	}
	res := make(chan error, 1)
	go func() {
		var st unix.Statfs_t
		res <- unix.Statfs(dir, &st)
	}()
	select {
	case err := <-res:
		if !errors.Is(err, unix.ENOTCONN) && !errors.Is(err, unix.ECONNABORTED) {
			return false, nil // a live mount: leave it alone
		}
	case <-time.After(staleProbe):
	}
	abortConn(minor) // best effort: frees a daemon stuck on its own mount
	if err := fusermount("-uz", dir); err != nil {
		return false, fmt.Errorf("mount: clearing the stale mount at %s: %w", dir, err)
	}
	return true, nil
}

// fuseMinor finds dir in /proc/self/mountinfo and, if it is a FUSE mount,
// returns its device minor (its fusectl connection number).
func fuseMinor(dir string) (uint32, bool, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return 0, false, nil
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var minor uint32
	found := false
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 7 || unescapeMountinfo(fields[4]) != dir {
			continue
		}
		// The file system type follows the "-" separator.
		for i := 6; i+1 < len(fields); i++ {
			if fields[i] == "-" {
				if strings.HasPrefix(fields[i+1], "fuse") {
					_, mi, ok := strings.Cut(fields[2], ":")
					if n, err := strconv.ParseUint(mi, 10, 32); ok && err == nil {
						minor, found = uint32(n), true
					}
				} else {
					found = false // the last mount on dir wins
				}
				break
			}
		}
	}
	return minor, found, sc.Err()
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
