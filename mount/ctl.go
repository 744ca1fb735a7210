package mount

import (
	"context"
	"os"
	"strconv"
	"sync"
	"syscall"

	"bazil.org/fuse"
	fusefs "bazil.org/fuse/fs"
	"bazil.org/fuse/fuseutil"

	"github.com/doozerfs/doozerfs/fs"
)

// The control directory .doozerfs at the mount's root holds:
//
//   - rev: the revision applied on this host, as text and a newline, read
//     fresh at every open (direct I/O);
//   - events: each open streams "REV KIND PATH" lines for the changes
//     applied from then on under the mount's root (PATH as seen in the
//     mount, with backslash and newline escaped as \\ and \n). A read blocks until there is a line; poll and select work;
//     an interrupted read fails with EINTR. A reader that falls more than
//     maxEventBacklog bytes behind gets a "REV lost /" line where lines
//     were dropped.
type ctlDir struct {
	f      *fsys
	ino    uint64
	rev    *ctlFile
	events *ctlFile
}

// maxEventBacklog bounds the unread lines of one events reader, in bytes.
const maxEventBacklog = 1 << 20

// ctlFile is .doozerfs/rev or .doozerfs/events.
type ctlFile struct {
	f      *fsys
	ino    uint64
	events bool
}

var (
	_ fusefs.Node               = (*ctlDir)(nil)
	_ fusefs.NodeStringLookuper = (*ctlDir)(nil)
	_ fusefs.HandleReadDirAller = (*ctlDir)(nil)
	_ fusefs.Node               = (*ctlFile)(nil)
	_ fusefs.NodeOpener         = (*ctlFile)(nil)
	_ fusefs.Handle             = (*revHandle)(nil)
	_ fusefs.HandleReader       = (*revHandle)(nil)
	_ fusefs.HandleReader       = (*eventsHandle)(nil)
	_ fusefs.HandlePoller       = (*eventsHandle)(nil)
	_ fusefs.HandleReleaser     = (*eventsHandle)(nil)
)

func newCtlDir(f *fsys) *ctlDir {
	ino := func(name string) uint64 {
		f.mu.Lock()
		defer f.mu.Unlock()
		n := f.inoForLocked("\x00" + name) // no store path has a NUL
		f.inodes[n] = &nodeBase{fsys: f, ino: n}
		return n
	}
	return &ctlDir{
		f:      f,
		ino:    ino(ctlName),
		rev:    &ctlFile{f: f, ino: ino("rev")},
		events: &ctlFile{f: f, ino: ino("events"), events: true},
	}
}

func (d *ctlDir) Attr(ctx context.Context, a *fuse.Attr) error {
	a.Inode = d.ino
	a.Mode = os.ModeDir | 0o555
	a.Nlink = 2
	a.Uid, a.Gid = uint32(d.f.opts.UID), uint32(d.f.opts.GID)
	a.Valid = d.f.opts.CacheTTL
	return nil
}

func (d *ctlDir) Lookup(ctx context.Context, name string) (fusefs.Node, error) {
	switch name {
	case "rev":
		return d.rev, nil
	case "events":
		return d.events, nil
	}
	return nil, errno(syscall.ENOENT)
}

func (d *ctlDir) ReadDirAll(ctx context.Context) ([]fuse.Dirent, error) {
	return []fuse.Dirent{
		{Inode: d.events.ino, Type: fuse.DT_File, Name: "events"},
		{Inode: d.rev.ino, Type: fuse.DT_File, Name: "rev"},
	}, nil
}

func (c *ctlFile) text() []byte {
	return []byte(strconv.FormatInt(c.f.store.Tree().Rev(), 10) + "\n")
}

func (c *ctlFile) Attr(ctx context.Context, a *fuse.Attr) error {
	a.Inode = c.ino
	a.Mode = 0o444
	a.Nlink = 1
	a.Uid, a.Gid = uint32(c.f.opts.UID), uint32(c.f.opts.GID)
	if !c.events {
		a.Size = uint64(len(c.text()))
	}
	a.Valid = 0
	return nil
}

func (c *ctlFile) Open(ctx context.Context, req *fuse.OpenRequest, resp *fuse.OpenResponse) (fusefs.Handle, error) {
	if !req.Flags.IsReadOnly() {
		return nil, errno(syscall.EACCES)
	}
	resp.Flags |= fuse.OpenDirectIO | fOpenNoFlush
	if !c.events {
		return &revHandle{text: c.text()}, nil
	}
	resp.Flags |= fuse.OpenNonSeekable
	h := &eventsHandle{f: c.f, from: c.f.store.Tree().Rev(), c: make(chan struct{})}
	c.f.subs.add(h)
	return h, nil
}

// revHandle reads the revision at open.
type revHandle struct{ text []byte }

func (h *revHandle) Read(ctx context.Context, req *fuse.ReadRequest, resp *fuse.ReadResponse) error {
	fuseutil.HandleRead(req, resp, h.text)
	return nil
}

// eventsHandle is one reader of .doozerfs/events.
type eventsHandle struct {
	f    *fsys
	from int64 // lines for revisions after this one

	mu     sync.Mutex
	buf    []byte
	c      chan struct{} // closed and replaced when buf grows or the mount closes
	closed bool
	lost   bool
	wakeup *fuse.PollWakeup
}

// push adds the lines of revision rev. Called by the follower.
func (h *eventsHandle) push(rev int64, lines []byte) {
	if rev <= h.from {
		return
	}
	h.mu.Lock()
	switch {
	case len(h.buf)+len(lines) > maxEventBacklog:
		if !h.lost {
			h.buf = append(h.buf, strconv.FormatInt(rev, 10)+" lost /\n"...)
			h.lost = true
		}
	default:
		h.buf = append(h.buf, lines...)
		h.lost = false
	}
	h.wakeLocked()
}

// wakeLocked wakes readers and pollers, and unlocks h.mu.
func (h *eventsHandle) wakeLocked() {
	close(h.c)
	h.c = make(chan struct{})
	w := h.wakeup
	h.wakeup = nil
	h.mu.Unlock()
	if w != nil {
		h.f.srv.NotifyPollWakeup(*w)
	}
}

func (h *eventsHandle) close() {
	h.mu.Lock()
	h.closed = true
	h.wakeLocked()
}

// Read blocks until there are lines, the mount closes (end of file), or
// the read is interrupted (EINTR).
func (h *eventsHandle) Read(ctx context.Context, req *fuse.ReadRequest, resp *fuse.ReadResponse) error {
	for {
		h.mu.Lock()
		if len(h.buf) > 0 {
			n := min(len(h.buf), req.Size)
			resp.Data = append(resp.Data[:0], h.buf[:n]...)
			h.buf = h.buf[n:]
			h.mu.Unlock()
			return nil
		}
		if h.closed {
			h.mu.Unlock()
			return nil
		}
		c := h.c
		h.mu.Unlock()
		select {
		case <-c:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Poll reports readable when there are lines, and asks to be woken when
// the kernel wants it.
func (h *eventsHandle) Poll(ctx context.Context, req *fuse.PollRequest, resp *fuse.PollResponse) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.buf) > 0 || h.closed {
		resp.REvents = fuse.PollIn | fuse.PollReadNormal
		return nil
	}
	if w, ok := req.Wakeup(); ok {
		h.wakeup = &w
	}
	return nil
}

func (h *eventsHandle) Release(ctx context.Context, req *fuse.ReleaseRequest) error {
	h.f.subs.remove(h)
	return nil
}

// subscribers are the open events readers.
type subscribers struct {
	mu     sync.Mutex
	set    map[*eventsHandle]struct{}
	closed bool
}

func (s *subscribers) init() { s.set = make(map[*eventsHandle]struct{}) }

func (s *subscribers) add(h *eventsHandle) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		h.closed = true
		return
	}
	s.set[h] = struct{}{}
}

func (s *subscribers) remove(h *eventsHandle) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.set, h)
}

// publish hands the events of one revision, as mount paths, to every
// reader.
func (s *subscribers) publish(rev int64, evs []fs.Event, rel func(string) (string, bool)) {
	s.mu.Lock()
	if len(s.set) == 0 {
		s.mu.Unlock()
		return
	}
	hs := make([]*eventsHandle, 0, len(s.set))
	for h := range s.set {
		hs = append(hs, h)
	}
	s.mu.Unlock()
	var lines []byte
	for _, ev := range evs {
		p, ok := rel(ev.Path)
		if !ok {
			continue
		}
		lines = strconv.AppendInt(lines, rev, 10)
		lines = append(lines, ' ')
		lines = append(lines, ev.Kind.String()...)
		lines = append(lines, ' ')
		lines = appendEscaped(lines, p)
		lines = append(lines, '\n')
	}
	if len(lines) == 0 {
		return
	}
	for _, h := range hs {
		h.push(rev, lines)
	}
}

// appendEscaped appends p with each backslash and newline escaped (\\,
// \n), so that every event is one line.
func appendEscaped(b []byte, p string) []byte {
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '\\':
			b = append(b, '\\', '\\')
		case '\n':
			b = append(b, '\\', 'n')
		default:
			b = append(b, p[i])
		}
	}
	return b
}

// closeAll ends every reader (the mount is closing).
func (s *subscribers) closeAll() {
	s.mu.Lock()
	s.closed = true
	hs := s.set
	s.set = map[*eventsHandle]struct{}{}
	s.mu.Unlock()
	for h := range hs {
		h.close()
	}
}
