package wal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// LockFileName is the name of the lock file in a locked directory.
const LockFileName = "LOCK"

// DirLock is an exclusive lock on a directory: an flock on its LOCK file,
// which holds the owner's process id for operators. The kernel releases it
// when the process dies, so a crash never leaves a stale lock.
type DirLock struct {
	dir string
	f   *os.File
}

// LockDir creates dir if needed and locks it. If another opener (another
// process, or another DirLock in this one) holds the lock it fails at once
// with an error that matches ErrLocked and names the directory.
func LockDir(dir string) (*DirLock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("wal: create directory %s: %w", dir, err)
	}
	path := filepath.Join(dir, LockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("wal: open lock file %s: %w", path, err)
	}
	if err := tryLock(f); err != nil {
		holder := ""
		if b, rerr := os.ReadFile(path); rerr == nil {
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil {
				holder = fmt.Sprintf(" (held by process %d)", pid)
			}
		}
		f.Close()
		if errors.Is(err, errWouldBlock) {
			return nil, fmt.Errorf("%w: %s is in use by another doozerfs replica or tool: lock file %s%s", ErrLocked, dir, path, holder)
		}
		return nil, fmt.Errorf("wal: lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &DirLock{dir: dir, f: f}, nil
}

// Unlock releases the lock. The LOCK file stays.
func (l *DirLock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	if err != nil {
		return fmt.Errorf("wal: unlock %s: %w", l.dir, err)
	}
	return nil
}
