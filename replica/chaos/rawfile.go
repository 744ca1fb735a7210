package chaos

import (
	"os"
	"syscall"
)

// The harness does its file I/O on mounts with raw system calls, never
// with os.File: Go registers every file it opens with its epoll-based
// poller, the mount answers FUSE_POLL for every file (the kernel asks the
// daemon, because .doozerfs/events supports poll), and while a daemon is
// SIGSTOPped epoll_ctl and epoll_wait then block in the kernel — the whole
// Go runtime's poller, timers included, with them. A raw read or write
// blocks only its own thread. (Found by the harness itself: a soak run
// hung on a pause until the replica got SIGCONT by hand.)

// writeFileRaw is os.WriteFile(path, body, 0644) in raw system calls: one
// open with O_TRUNC, the writes, one close — what `echo > f` does.
func writeFileRaw(path string, body []byte) error {
	fd, err := retryEINTR(func() (int, error) {
		return syscall.Open(path, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_TRUNC|syscall.O_CLOEXEC, 0o644)
	})
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	for len(body) > 0 {
		n, err := retryEINTR(func() (int, error) { return syscall.Write(fd, body) })
		if err != nil {
			syscall.Close(fd)
			return &os.PathError{Op: "write", Path: path, Err: err}
		}
		body = body[n:]
	}
	if err := syscall.Close(fd); err != nil {
		return &os.PathError{Op: "close", Path: path, Err: err}
	}
	return nil
}

// readFileRaw is os.ReadFile in raw system calls.
func readFileRaw(path string) ([]byte, error) {
	fd, err := retryEINTR(func() (int, error) {
		return syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	})
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer syscall.Close(fd)
	var out []byte
	buf := make([]byte, 64<<10)
	for {
		n, err := retryEINTR(func() (int, error) { return syscall.Read(fd, buf) })
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return out, nil
		}
		out = append(out, buf[:n]...)
	}
}

func retryEINTR(f func() (int, error)) (int, error) {
	for {
		n, err := f()
		if err != syscall.EINTR {
			return n, err
		}
	}
}
