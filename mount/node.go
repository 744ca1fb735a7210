package mount

import (
	"context"
	"os"
	"strconv"
	"strings"
	"syscall"

	"bazil.org/fuse"

	"github.com/doozerfs/doozerfs/fs"
)

// reqInfo travels in each request's context (server.begin). The server
// computes the attributes of a reply by calling Node.Attr after the
// handler, as bazil's interfaces have it; a handler leaves here what that
// reply should show.
type reqInfo struct {
	req    fuse.Request
	obj    *object // what the handler resolved for objFor
	objFor node
	handle *handle // a SETATTR that went to this handle's buffer
}

type reqInfoKey struct{}

func withReqInfo(ctx context.Context, req fuse.Request) context.Context {
	return context.WithValue(ctx, reqInfoKey{}, &reqInfo{req: req})
}

func infoFrom(ctx context.Context) *reqInfo {
	info, _ := ctx.Value(reqInfoKey{}).(*reqInfo)
	if info == nil {
		return &reqInfo{}
	}
	return info
}

// The extended attributes a node shows.
const (
	xattrRev       = "user.doozerfs.rev"
	xattrLease     = "user.doozerfs.lease"
	xattrEphemeral = "user.doozerfs.ephemeral"
)

// checkSetattr applies the rules for what a node cannot change: chmod and
// chown to anything but the current value are EPERM; times are accepted and
// ignored. Size is for the caller.
func (f *fsys) checkSetattr(req *fuse.SetattrRequest, dir bool) error {
	if req.Valid.Mode() {
		want := f.opts.FileMode
		if dir {
			want = f.opts.DirMode
		}
		if req.Mode.Perm() != want.Perm() || req.Mode&(os.ModeSetuid|os.ModeSetgid|os.ModeSticky) != 0 {
			return errno(syscall.EPERM)
		}
	}
	if req.Valid.Uid() && req.Uid != uint32(f.opts.UID) {
		return errno(syscall.EPERM)
	}
	if req.Valid.Gid() && req.Gid != uint32(f.opts.GID) {
		return errno(syscall.EPERM)
	}
	return nil
}

// getxattr answers for the object o.
func getxattr(o object, req *fuse.GetxattrRequest, resp *fuse.GetxattrResponse) error {
	switch req.Name {
	case xattrRev:
		if o.typ == fs.TypeNone {
			return errno(syscall.ENOENT)
		}
		resp.Xattr = []byte(strconv.FormatInt(o.st.Rev, 10))
		return nil
	case xattrLease:
		if o.st.Lease != 0 {
			resp.Xattr = []byte(strconv.FormatInt(o.st.Lease, 10))
			return nil
		}
	}
	return fuse.ErrNoXattr
}

// listxattr answers for the object o.
func listxattr(o object, resp *fuse.ListxattrResponse) {
	if o.typ == fs.TypeNone {
		return
	}
	resp.Append(xattrRev)
	if o.st.Lease != 0 {
		resp.Append(xattrLease)
	}
}

// parseEphemeral reads the value of user.doozerfs.ephemeral.
func parseEphemeral(v []byte) (bool, error) {
	switch strings.TrimRight(strings.TrimSpace(string(v)), "\x00") {
	case "1", "true", "yes", "on":
		return true, nil
	case "0", "false", "no", "off", "":
		return false, nil
	}
	return false, errno(syscall.EINVAL)
}
