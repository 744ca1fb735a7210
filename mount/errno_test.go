package mount

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"

	"bazil.org/fuse"

	"github.com/doozerfs/doozerfs/fs"
)

func TestErrnoTableMapsEveryStoreKind(t *testing.T) {
	want := map[fs.Kind]syscall.Errno{
		fs.KindNoEnt: syscall.ENOENT, fs.KindNotEmpty: syscall.ENOTEMPTY, fs.KindPermission: syscall.EACCES,
		fs.KindBadPath: syscall.EINVAL, fs.KindRevMismatch: syscall.ESTALE, fs.KindIsDir: syscall.EISDIR,
		fs.KindNotDir: syscall.ENOTDIR, fs.KindTooBig: syscall.EFBIG, fs.KindReadOnly: syscall.EROFS,
		fs.KindTimeout: syscall.ETIMEDOUT, fs.KindUnavailable: syscall.EIO,
	}
	for k := fs.KindOther; k <= fs.KindUnavailable; k++ {
		err := fmt.Errorf("wrapped: %w", &fs.Error{Kind: k})
		got := fuse.ToErrno(toErrno(err))
		if _, ok := errnoOf[k]; !ok {
			t.Errorf("%v has no errno", k)
		}
		if w, ok := want[k]; ok && syscall.Errno(got) != w {
			t.Errorf("%v → %v, want %v", k, syscall.Errno(got), w)
		}
	}
	if got := fuse.ToErrno(errnoFor(&fs.Error{Kind: fs.KindRevMismatch}, syscall.EEXIST)); syscall.Errno(got) != syscall.EEXIST {
		t.Errorf("REV_MISMATCH for a create: %v, want EEXIST", got)
	}
	if got := fuse.ToErrno(toErrno(context.DeadlineExceeded)); syscall.Errno(got) != syscall.ETIMEDOUT {
		t.Errorf("a deadline: %v, want ETIMEDOUT", got)
	}
	if err := toErrno(fmt.Errorf("x: %w", context.Canceled)); err != context.Canceled {
		t.Errorf("cancellation: %v, want context.Canceled itself (the server answers EINTR)", err)
	}
	if got := fuse.ToErrno(toErrno(errors.New("mystery"))); syscall.Errno(got) != syscall.EIO {
		t.Errorf("an unknown error: %v, want EIO", got)
	}
}
