package wal

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

const snapPrefix = "snap-"

// SnapshotStore keeps snapshot files in a directory: snap-<index, 20
// decimal digits>, written atomically, the newest KeepSnapshots of them.
//
// It is safe for concurrent use. Save streams the payload without holding
// the store's lock, so a long Save (a large tree) does not block Latest;
// installing the finished file and deleting old ones are serialised.
type SnapshotStore struct {
	dir  string
	opts Options
	log  *slog.Logger

	mu sync.Mutex // serialises installs, retention and Latest's repairs
}

// Snapshot names one stored snapshot file.
type Snapshot struct {
	Index uint64 // the index it was saved under
	Size  int64  // payload length in bytes; known once verified (Latest, Save)
	Path  string // the file; open it raw to send it to a peer
}

// OpenSnapshots opens (creating if needed) the snapshot directory dir and
// deletes temporary files a crash left behind.
func OpenSnapshots(dir string, opts Options) (*SnapshotStore, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := mkdirDurable(dir, opts); err != nil {
		return nil, err
	}
	s := &SnapshotStore{dir: dir, opts: opts, log: opts.Logger}
	tmps, err := filepath.Glob(filepath.Join(dir, snapPrefix+"*"+tmpSuffix))
	if err != nil {
		return nil, fmt.Errorf("wal: list %s: %w", dir, err)
	}
	for _, t := range tmps {
		if err := os.Remove(t); err != nil {
			return nil, fmt.Errorf("wal: remove leftover snapshot %s: %w", t, err)
		}
		s.log.Info("wal: removed a snapshot file left unfinished by a crash", "file", t)
	}
	if len(tmps) > 0 {
		if err := syncDir(dir, opts); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func snapName(index uint64) string { return fmt.Sprintf("%s%020d", snapPrefix, index) }

func parseSnapName(name string) (uint64, bool) {
	digits, ok := strings.CutPrefix(name, snapPrefix)
	if !ok || len(digits) != 20 {
		return 0, false
	}
	i, err := strconv.ParseUint(digits, 10, 64)
	return i, err == nil
}

// List returns the stored snapshots, newest first, without reading them
// (Size is 0).
func (s *SnapshotStore) List() ([]Snapshot, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("wal: list %s: %w", s.dir, err)
	}
	var out []Snapshot
	for _, e := range entries {
		if i, ok := parseSnapName(e.Name()); ok && e.Type().IsRegular() {
			out = append(out, Snapshot{Index: i, Path: filepath.Join(s.dir, e.Name())})
		}
	}
	slices.SortFunc(out, func(a, b Snapshot) int {
		switch {
		case a.Index > b.Index:
			return -1
		case a.Index < b.Index:
			return 1
		}
		return 0
	})
	return out, nil
}

// Save writes a snapshot under index: write streams the payload into the
// io.Writer it is given (never held in memory here), and the file becomes
// visible as snap-<index> only once complete and durable (temporary file,
// fsync, rename, directory fsync). Then all but the newest KeepSnapshots
// are deleted. An error from write aborts the save and leaves no file.
// index must not be below the newest stored snapshot's; saving the same
// index again replaces it.
func (s *SnapshotStore) Save(index uint64, write func(io.Writer) error) (Snapshot, error) {
	tmp, err := os.CreateTemp(s.dir, snapName(index)+".*"+tmpSuffix)
	if err != nil {
		return Snapshot{}, fmt.Errorf("wal: create temporary snapshot in %s: %w", s.dir, err)
	}
	name := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(name)
		}
	}()
	size, err := writeSnapshotFile(tmp, index, write)
	if err != nil {
		return Snapshot{}, err
	}
	if err := tmp.Close(); err != nil {
		return Snapshot{}, fmt.Errorf("wal: close %s: %w", name, err)
	}
	sn, err := s.install(name, index, size)
	ok = err == nil
	return sn, err
}

// writeSnapshotFile writes header, payload and trailer to f and fsyncs it.
func writeSnapshotFile(f *os.File, index uint64, write func(io.Writer) error) (int64, error) {
	if _, err := f.Write(make([]byte, snapHeaderSize)); err != nil {
		return 0, fmt.Errorf("wal: write %s at offset 0: %w", f.Name(), err)
	}
	sw := &snapWriter{bw: bufio.NewWriterSize(f, 1<<20)}
	if err := write(sw); err != nil {
		return 0, fmt.Errorf("wal: snapshot %d: writing the payload: %w", index, err)
	}
	var t [snapTrailerSize]byte
	binary.LittleEndian.PutUint32(t[:], sw.crc)
	if _, err := sw.bw.Write(t[:]); err != nil {
		return 0, fmt.Errorf("wal: write %s at offset %d: %w", f.Name(), snapHeaderSize+sw.n, err)
	}
	if err := sw.bw.Flush(); err != nil {
		return 0, fmt.Errorf("wal: write %s near offset %d: %w", f.Name(), snapHeaderSize+sw.n, err)
	}
	if _, err := f.WriteAt(encodeSnapHeader(index, sw.n), 0); err != nil {
		return 0, fmt.Errorf("wal: write %s at offset 0: %w", f.Name(), err)
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("wal: fsync %s: %w", f.Name(), err)
	}
	return sw.n, nil
}

// install renames a finished temporary file into place and applies
// retention.
func (s *SnapshotStore) install(tmp string, index uint64, size int64) (Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	list, err := s.List()
	if err != nil {
		return Snapshot{}, err
	}
	if len(list) > 0 && list[0].Index > index {
		return Snapshot{}, fmt.Errorf("wal: snapshot %d is older than the newest stored one, %s", index, list[0].Path)
	}
	path := filepath.Join(s.dir, snapName(index))
	if err := os.Rename(tmp, path); err != nil {
		return Snapshot{}, fmt.Errorf("wal: rename %s to %s: %w", tmp, path, err)
	}
	if err := syncDir(s.dir, s.opts); err != nil {
		return Snapshot{}, err
	}
	s.pruneLocked()
	return Snapshot{Index: index, Size: size, Path: path}, nil
}

// pruneLocked deletes all but the newest KeepSnapshots snapshots. A failure
// is logged, and retried by the next install.
func (s *SnapshotStore) pruneLocked() {
	list, err := s.List()
	if err != nil {
		s.log.Warn("wal: snapshot retention: cannot list", "dir", s.dir, "err", err)
		return
	}
	if len(list) <= s.opts.KeepSnapshots {
		return
	}
	for _, old := range list[s.opts.KeepSnapshots:] {
		if err := os.Remove(old.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("wal: snapshot retention: cannot delete", "file", old.Path, "err", err)
		}
	}
	if err := syncDir(s.dir, s.opts); err != nil {
		s.log.Warn("wal: snapshot retention", "err", err)
	}
}

// Import stores a snapshot read from r in the file format (a file made by
// Save, sent by a peer or saved by `doozerfs snapshot save`), checking it
// while streaming it to disk. A damaged stream leaves nothing behind.
func (s *SnapshotStore) Import(r io.Reader) (Snapshot, error) {
	sr, err := ReadSnapshot(r)
	if err != nil {
		return Snapshot{}, err
	}
	return s.Save(sr.Index, func(w io.Writer) error {
		_, err := io.Copy(w, sr)
		return err
	})
}

// Latest returns the newest stored snapshot that is intact, reading the
// whole file to check it (streaming). ok is false when there is none.
//
// A damaged snapshot is never returned. Without Options.Repair, damage in
// the newest snapshot fails Latest with a *CorruptError naming the file and
// offset. With Repair, a damaged file is renamed to
// <name>.damaged-<unix seconds>, logged, and the next newest is tried. The
// caller must then expect a gap: the WAL may have been truncated up to the
// damaged snapshot, so what lies between the snapshot returned and the WAL's
// first record has to come from peers.
func (s *SnapshotStore) Latest() (Snapshot, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	list, err := s.List()
	if err != nil {
		return Snapshot{}, false, err
	}
	for _, sn := range list {
		size, err := verifySnapshotFile(sn.Path, sn.Index)
		if err == nil {
			sn.Size = size
			return sn, true, nil
		}
		if !errors.Is(err, ErrCorrupt) || !s.opts.Repair {
			return Snapshot{}, false, err
		}
		to := damagedName(sn.Path, s.opts.Now())
		if rerr := os.Rename(sn.Path, to); rerr != nil {
			return Snapshot{}, false, fmt.Errorf("wal: move damaged snapshot %s aside: %w", sn.Path, rerr)
		}
		if serr := syncDir(s.dir, s.opts); serr != nil {
			return Snapshot{}, false, serr
		}
		s.log.Warn("wal: repair moved a damaged snapshot aside; using an older one", "file", sn.Path, "to", to, "damage", err.Error())
	}
	return Snapshot{}, false, nil
}

// verifySnapshotFile checks a stored snapshot completely and returns its
// payload length.
func verifySnapshotFile(path string, index uint64) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("wal: open snapshot %s: %w", path, err)
	}
	defer f.Close()
	if err := checkSnapshotFile(f, path, index); err != nil {
		return 0, err
	}
	_, size, err := verifySnapshot(bufio.NewReaderSize(f, 1<<20), path)
	return size, err
}

// checkSnapshotFile reads f's header and checks it against the file's name
// and size, leaving f at the start of the payload.
func checkSnapshotFile(f *os.File, path string, index uint64) error {
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("wal: stat %s: %w", path, err)
	}
	sr, err := readSnapshot(f, path)
	if err != nil {
		return err
	}
	if sr.Index != index {
		return &CorruptError{File: path, Offset: 16, Reason: fmt.Sprintf("header says index %d; the file name says %d", sr.Index, index)}
	}
	if want := snapHeaderSize + sr.Size + snapTrailerSize; st.Size() != want {
		return &CorruptError{File: path, Offset: min(st.Size(), want), Reason: fmt.Sprintf(
			"file is %d bytes; its header's payload length %d makes it %d", st.Size(), sr.Size, want)}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("wal: seek %s: %w", path, err)
	}
	return nil
}

// Open opens the snapshot's payload for reading. The reader checks the
// payload's CRC as it goes and reports damage instead of io.EOF at the end,
// so read it to io.EOF. The file may have been deleted by retention since
// it was listed; hold on to the reader, not the name, while in use.
func (sn Snapshot) Open() (io.ReadCloser, error) {
	f, err := os.Open(sn.Path)
	if err != nil {
		return nil, fmt.Errorf("wal: open snapshot %s: %w", sn.Path, err)
	}
	if err := checkSnapshotFile(f, sn.Path, sn.Index); err != nil {
		f.Close()
		return nil, err
	}
	sr, err := readSnapshot(bufio.NewReaderSize(f, 1<<20), sn.Path)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &snapReadCloser{SnapshotReader: sr, f: f}, nil
}

type snapReadCloser struct {
	*SnapshotReader
	f *os.File
}

func (r *snapReadCloser) Close() error { return r.f.Close() }
