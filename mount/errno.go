package mount

import (
	"context"
	"errors"
	"syscall"

	"bazil.org/fuse"

	"github.com/doozerfs/doozerfs/fs"
)

// errnoOf is the one table from store error kinds to errno. Call sites that
// give REV_MISMATCH another meaning (EEXIST for an exclusive create or a
// mkdir) say so through errnoFor's second argument.
var errnoOf = map[fs.Kind]syscall.Errno{
	fs.KindOther:       syscall.EIO,
	fs.KindBadPath:     syscall.EINVAL,
	fs.KindRevMismatch: syscall.ESTALE,
	fs.KindNoEnt:       syscall.ENOENT,
	fs.KindIsDir:       syscall.EISDIR,
	fs.KindNotDir:      syscall.ENOTDIR,
	fs.KindNotEmpty:    syscall.ENOTEMPTY,
	fs.KindTooLate:     syscall.ESTALE,
	fs.KindTooBig:      syscall.EFBIG,
	fs.KindReadOnly:    syscall.EROFS,
	fs.KindPermission:  syscall.EACCES,
	fs.KindUnknownVerb: syscall.EOPNOTSUPP,
	fs.KindBadRequest:  syscall.EINVAL,
	fs.KindNoLease:     syscall.ESTALE,
	fs.KindTimeout:     syscall.ETIMEDOUT,
	fs.KindUnavailable: syscall.EIO,
}

// errnoError is an error with the errno the kernel is told. It keeps the
// cause for bazil's debug log.
type errnoError struct {
	errno syscall.Errno
	err   error
}

var _ fuse.ErrorNumber = (*errnoError)(nil)

func (e *errnoError) Error() string {
	if e.err == nil {
		return e.errno.Error()
	}
	return e.errno.Error() + ": " + e.err.Error()
}

func (e *errnoError) Errno() fuse.Errno { return fuse.Errno(e.errno) }

func (e *errnoError) Unwrap() error { return e.err }

// errnoFor converts a store (or context) error into what a FUSE handler
// returns. A REV_MISMATCH becomes revMismatch. Interruption is returned as
// context.Canceled itself, which bazil turns into EINTR; a deadline becomes
// ETIMEDOUT.
func errnoFor(err error, revMismatch syscall.Errno) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.Canceled):
		return context.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return &errnoError{errno: syscall.ETIMEDOUT, err: err}
	}
	var en *errnoError
	if errors.As(err, &en) {
		return en
	}
	var e *fs.Error
	if !errors.As(err, &e) {
		return &errnoError{errno: syscall.EIO, err: err}
	}
	if e.Kind == fs.KindRevMismatch {
		return &errnoError{errno: revMismatch, err: err}
	}
	errno, ok := errnoOf[e.Kind]
	if !ok {
		errno = syscall.EIO
	}
	return &errnoError{errno: errno, err: err}
}

// toErrno is errnoFor with REV_MISMATCH meaning ESTALE.
func toErrno(err error) error { return errnoFor(err, syscall.ESTALE) }

// errno returns a bare errno as a handler error.
func errno(e syscall.Errno) error { return &errnoError{errno: e} }
