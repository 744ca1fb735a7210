package mount

import (
	"context"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/doozerfs/doozerfs/fs"
)

// The overlay is what this host shows that the store does not:
//
//   - local files: editors' and sed's temporary files, kept in memory on
//     this host and never replicated (Options.Local decides at create);
//   - pending files: created through this mount but not yet committed (a
//     create commits with its data, at the first flush after a write, or
//     empty at release), so no host ever sees an empty version first;
//   - hidden files: store files renamed to a local name (vim's backup by
//     rename). They stay in the store, and other hosts keep seeing them,
//     until the name is recreated here, which then commits the new body
//     over the old as one revision; or until Options.HideGrace passes,
//     when the rename's delete is committed.
type entryKind uint8

const (
	entLocal entryKind = iota + 1
	entPending
	entHidden
)

// An entry is one overlay file. Its fields are guarded by fsys.mu.
type entry struct {
	kind    entryKind
	body    []byte    // entLocal: the body (replaced, never modified)
	time    time.Time // entLocal, entPending: last change
	rev     int64     // entHidden: the rev of the hidden store file
	timer   *time.Timer
	creator *handle // entPending, entLocal: the handle that created it
}

// DefaultLocal is the default Options.Local. It keeps on this host:
//
//   - vim's swap files (.NAME.swp, .swo, … .swa, the .swpx probe) and its
//     directory-writability probe (4913, 5036, … created with O_EXCL);
//   - backup files ending in ~;
//   - emacs's auto-save files (#NAME#);
//   - sed -i's temporary files (sedXXXXXX, created with O_EXCL).
func DefaultLocal(name string, exclusive bool) bool {
	switch {
	case strings.HasSuffix(name, "~"):
		return true
	case len(name) > 2 && name[0] == '#' && name[len(name)-1] == '#':
		return true
	case isSwap(name):
		return true
	case exclusive && isVimProbe(name):
		return true
	case exclusive && len(name) == 9 && strings.HasPrefix(name, "sed") && isAlnum(name[3:]):
		return true
	}
	return false
}

// isSwap matches vim's swap names: ".NAME.swp" down to ".NAME.swa", the
// ".NAME.swpx" probe, and ".swp" style names for unnamed buffers.
func isSwap(name string) bool {
	if !strings.HasPrefix(name, ".") {
		return false
	}
	if strings.HasSuffix(name, ".swpx") {
		return true
	}
	ext := path.Ext(name)
	return len(ext) == 4 && strings.HasPrefix(ext, ".sw") && ext[3] >= 'a' && ext[3] <= 'p'
}

// isVimProbe matches the names vim creates to test whether it may write a
// directory: 4913, then 123 more each time the name exists.
func isVimProbe(name string) bool {
	n, err := strconv.Atoi(name)
	return err == nil && n >= 4913 && (n-4913)%123 == 0 && strconv.Itoa(n) == name
}

func isAlnum(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

func (f *fsys) overlayLocked(rel string) *entry {
	if len(f.overlay) == 0 {
		return nil
	}
	return f.overlay[rel]
}

// overlayNamesLocked returns the overlay entries directly inside dir.
func (f *fsys) overlayNamesLocked(dir string) map[string]*entry {
	if len(f.overlay) == 0 {
		return nil
	}
	out := make(map[string]*entry)
	for p, e := range f.overlay {
		if p == "/" {
			continue
		}
		if d, name := parent(p); d == dir {
			out[name] = e
		}
	}
	return out
}

// overlayBelowLocked reports whether any local or pending file lies below
// dir (which makes it not empty on this host).
func (f *fsys) overlayBelowLocked(dir string) bool {
	for p, e := range f.overlay {
		if e.kind != entHidden && p != dir && under(p, dir) {
			return true
		}
	}
	return false
}

// overlayMoveLocked moves the overlay entries at and below from to to.
func (f *fsys) overlayMoveLocked(from, to string) {
	var moved []string
	for p := range f.overlay {
		if under(p, from) {
			moved = append(moved, p)
		}
	}
	ents := make([]*entry, len(moved))
	for i, p := range moved {
		ents[i] = f.overlay[p]
		delete(f.overlay, p)
	}
	for i, p := range moved {
		f.overlay[to+p[len(from):]] = ents[i]
	}
}

// overlayDropBelowLocked forgets every overlay entry below dir, which was
// deleted in the store.
func (f *fsys) overlayDropBelowLocked(dir string) {
	for p, e := range f.overlay {
		if p != dir && under(p, dir) {
			f.unhideLocked(e)
			delete(f.overlay, p)
		}
	}
}

// setLocal stores body as the local file at rel.
func (f *fsys) setLocal(rel string, body []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.overlay[rel]
	if e == nil || e.kind != entLocal {
		return // unlinked or renamed away meanwhile
	}
	e.body = body
	e.time = time.Now()
}

// hideLocked hides the store file at rel, of revision rev, after it was
// renamed to a local name. If nothing recreates rel within HideGrace, the
// delete is committed then.
func (f *fsys) hideLocked(rel string, rev int64) {
	e := &entry{kind: entHidden, rev: rev}
	f.overlay[rel] = e
	e.timer = time.AfterFunc(f.opts.HideGrace, func() { f.hideExpired(e) })
	f.timers[e.timer] = struct{}{}
}

// flushHidden commits now the delete of every hidden file (the mount is
// going away, and nothing will recreate them here).
func (f *fsys) flushHidden() {
	f.mu.Lock()
	var hidden []*entry
	for _, e := range f.overlay {
		if e.kind == entHidden {
			f.unhideLocked(e)
			hidden = append(hidden, e)
		}
	}
	f.mu.Unlock()
	for _, e := range hidden {
		f.hideExpired(e)
	}
}

// unhideLocked stops e's timer if it is a hidden entry.
func (f *fsys) unhideLocked(e *entry) {
	if e.kind == entHidden && e.timer != nil {
		e.timer.Stop()
		delete(f.timers, e.timer)
		e.timer = nil
	}
}

// hideExpired commits the delete half of a rename to a local name that
// nobody followed by recreating the file.
func (f *fsys) hideExpired(e *entry) {
	f.mu.Lock()
	delete(f.timers, e.timer)
	var rel string
	for p, x := range f.overlay {
		if x == e {
			rel = p
		}
	}
	if rel == "" {
		f.mu.Unlock()
		return
	}
	delete(f.overlay, rel)
	f.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), f.opts.Timeout)
	defer cancel()
	_, err := f.txn(ctx, []fs.Op{{Kind: fs.OpDel, Path: f.storePath(rel), Rev: e.rev}})
	if err != nil {
		f.opts.Logger.Info("mount: a file renamed to a local name stays in the store", "path", rel, "err", err)
	}
}
