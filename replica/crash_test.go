package replica

// Crash tests: kill -9 of a replica process (on a real disk) in the middle
// of a stream of acknowledged writes, a torn tail at every byte offset of
// the last batches of the WAL, and a flipped byte in an early record. See
// docs/storage.md for the formats and recovery rules checked.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/doozerfs/doozerfs/fs"
	"github.com/doozerfs/doozerfs/replica/wal"
	"github.com/doozerfs/doozerfs/wire"
)

// Environment of a child replica process (see TestMain and startChild).
const (
	childEnv     = "DOOZERFS_TEST_CHILD"      // the data directory
	childSnapEnv = "DOOZERFS_TEST_CHILD_SNAP" // Config.SnapshotEvery, optional
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		os.Exit(runChild(dir))
	}
	os.Exit(m.Run())
}

// runChild is the body of a child replica process: it opens the replica on
// dir, prints "ADDR host:port" on stdout and runs until it is killed or
// its stdin ends (the parent went away), then closes the replica.
func runChild(dir string) int {
	cfg := DefaultConfig()
	cfg.DataDir = dir
	cfg.Addr = "127.0.0.1:0"
	cfg.Name = "child"
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if s := os.Getenv(childSnapEnv); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			return 2
		}
		cfg.SnapshotEvery = n
	}
	r, err := Open(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: open:", err)
		return 1
	}
	fmt.Printf("ADDR %s\n", r.Addr())
	io.Copy(io.Discard, os.Stdin)
	if err := r.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "child: close:", err)
		return 1
	}
	return 0
}

// lockedLog is a bytes.Buffer safe for concurrent writers.
type lockedLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *lockedLog) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *lockedLog) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// childReplica is a replica running in another process.
type childReplica struct {
	cmd    *exec.Cmd
	addr   string
	stdin  io.WriteCloser
	stderr *lockedLog
	done   chan struct{} // closed once the process has been waited for
}

// startChild starts a replica process on dir and waits for its address.
// The process is killed and waited for at the end of the test whatever
// happens; its log is shown if the test failed.
func startChild(t *testing.T, dir string, snapEvery uint64) *childReplica {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+dir)
	if snapEvery > 0 {
		cmd.Env = append(cmd.Env, fmt.Sprintf("%s=%d", childSnapEnv, snapEvery))
	}
	ch := &childReplica{cmd: cmd, stderr: new(lockedLog), done: make(chan struct{})}
	cmd.Stderr = ch.stderr
	if ch.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = pw
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		t.Fatal(err)
	}
	pw.Close()
	go func() {
		cmd.Wait()
		close(ch.done)
	}()
	t.Cleanup(func() {
		ch.kill()
		pr.Close()
		if t.Failed() {
			t.Logf("log of child %d on %s:\n%s", cmd.Process.Pid, dir, ch.stderr)
		}
	})
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(pr).ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		addr, ok := strings.CutPrefix(strings.TrimSpace(s), "ADDR ")
		if !ok {
			t.Fatalf("child did not start: stdout %q, log:\n%s", s, ch.stderr)
		}
		ch.addr = addr
	case <-time.After(60 * time.Second):
		t.Fatalf("child did not print its address within 60 s; log:\n%s", ch.stderr)
	}
	return ch
}

// kill sends SIGKILL and waits for the process to be gone.
func (ch *childReplica) kill() {
	ch.cmd.Process.Signal(syscall.SIGKILL)
	<-ch.done
	ch.stdin.Close()
}

// ackModel is what the writers of the kill -9 test know: for every path,
// the last write acknowledged and the writes whose outcome is unknown
// (in flight when the process died).
type ackModel struct {
	mu      sync.Mutex
	last    map[string]ackedWrite
	unknown map[string][]ackedWrite // writes after last whose outcome is unknown
	revs    map[int64]string        // every acknowledged revision, and the path written at it
	maxRev  int64
	acks    int
}

type ackedWrite struct {
	seq  int // per writer, grows across rounds
	body string
	rev  int64
}

// short shortens a body for a message.
func short(body string) string {
	if len(body) > 40 {
		return fmt.Sprintf("%s…(%d bytes)", body[:40], len(body))
	}
	return body
}

// waitLeader waits until the replica c is connected to has a leader and
// has applied what its log held: a replica restarted on its data directory
// applies at once only what its log shows committed, and the rest once it
// leads again; until then consistent reads fail UNAVAILABLE. A NOP waits
// for a leader (up to Config.NoLeaderGrace) and for that.
func waitLeader(ctx context.Context, t *testing.T, c *wire.Client) {
	t.Helper()
	for {
		err := c.Nop(ctx)
		if err == nil {
			return
		}
		if k := fs.KindOf(err); ctx.Err() != nil || k != fs.KindReadOnly && k != fs.KindUnavailable {
			t.Fatalf("no leader after restart: %v", err)
		}
	}
}

func newAckModel() *ackModel {
	return &ackModel{last: map[string]ackedWrite{}, unknown: map[string][]ackedWrite{}, revs: map[int64]string{}}
}

// ack records an acknowledged write; it returns an error if its revision
// was already acknowledged for another write.
func (m *ackModel) ack(path string, w ackedWrite) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if p, dup := m.revs[w.rev]; dup {
		return fmt.Errorf("revision %d acknowledged twice: for %s and for %s %q", w.rev, p, path, short(w.body))
	}
	m.revs[w.rev] = path
	m.maxRev = max(m.maxRev, w.rev)
	m.acks++
	m.last[path] = w
	m.unknown[path] = nil
	return nil
}

func (m *ackModel) fail(path string, w ackedWrite) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.unknown[path] = append(m.unknown[path], w)
}

// check compares the state a restarted replica serves with the model:
// every acknowledged write is there at its revision, or was replaced by a
// later write of the same writer whose outcome was unknown. It then adopts
// what it found, so the next round starts from a known state.
func (m *ackModel) check(ctx context.Context, t *testing.T, c *wire.Client) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	waitLeader(ctx, t, c)
	cc := c.Consistent()
	for path, last := range m.last {
		body, st, err := cc.Get(ctx, path, 0)
		if err != nil {
			t.Errorf("%s: acknowledged %q at rev %d, now: %v", path, short(last.body), last.rev, err)
			continue
		}
		if string(body) == last.body {
			if st.Rev != last.rev {
				t.Errorf("%s: %q was acknowledged at rev %d but is at rev %d", path, short(last.body), last.rev, st.Rev)
			}
			m.unknown[path] = nil
			continue
		}
		i := slices.IndexFunc(m.unknown[path], func(w ackedWrite) bool { return w.body == string(body) })
		if i < 0 || m.unknown[path][i].seq < last.seq || st.Rev <= last.rev {
			t.Errorf("%s: acknowledged %q at rev %d; found %q at rev %d, not a later write of the same writer (%d unknown outcomes)",
				path, short(last.body), last.rev, short(string(body)), st.Rev, len(m.unknown[path]))
			continue
		}
		w := m.unknown[path][i]
		w.rev = st.Rev
		m.last[path] = w
		m.unknown[path] = nil
		m.maxRev = max(m.maxRev, w.rev)
	}
	// Paths never acknowledged may hold a write of unknown outcome, or
	// nothing; no other file may exist.
	dirs, err := cc.GetDir(ctx, "/crash", 0)
	if err != nil {
		t.Fatalf("getdir /crash: %v", err)
	}
	for _, d := range dirs {
		if d.Type != fs.TypeDir {
			continue
		}
		files, err := cc.GetDir(ctx, "/crash/"+d.Name, 0)
		if err != nil {
			t.Fatalf("getdir /crash/%s: %v", d.Name, err)
		}
		for _, f := range files {
			path := "/crash/" + d.Name + "/" + f.Name
			if _, ok := m.last[path]; ok {
				continue
			}
			body, st, err := cc.Get(ctx, path, 0)
			if err != nil {
				t.Fatalf("get %s: %v", path, err)
			}
			i := slices.IndexFunc(m.unknown[path], func(w ackedWrite) bool { return w.body == string(body) })
			if i < 0 {
				t.Errorf("%s holds %q, which no writer wrote", path, short(string(body)))
				continue
			}
			w := m.unknown[path][i]
			w.rev = st.Rev
			m.last[path] = w
			m.unknown[path] = nil
			m.maxRev = max(m.maxRev, w.rev)
		}
	}
}

// TestCrashKill9 runs a replica in a child process, kills it with SIGKILL
// while several writers stream writes through it, restarts it on the same
// data directory and checks that every acknowledged write survived and
// that revisions go on above every acknowledged one. Rounds kill at
// different moments; one data directory takes a snapshot every 50 slots,
// and its first round writes big bodies until the first 64 MiB segment is
// full, so that snapshots and WAL truncation happen between kills.
func TestCrashKill9(t *testing.T) {
	for _, tc := range []struct {
		name      string
		snapEvery uint64
		rounds    []crashRound
	}{
		{name: "default", rounds: []crashRound{{acks: 150}, {acks: 420}, {acks: 260}}},
		{name: "snapshot-every-50", snapEvery: 50, rounds: []crashRound{
			{acks: 200, bytes: 80 << 20, bigBody: 512 << 10}, {acks: 150}, {acks: 450}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			m := newAckModel()
			const writers = 4
			seqs := make([]int, writers)
			for round, cr := range tc.rounds {
				ch := startChild(t, dir, tc.snapEvery)
				ctx := testCtx(t)
				if round > 0 {
					c := dialChild(t, ch.addr)
					m.check(ctx, t, c)
					next, err := c.Set(ctx, "/crash/next", fs.Clobber, []byte(fmt.Sprint("round ", round)))
					if err != nil {
						t.Fatal(err)
					}
					if next <= m.maxRev {
						t.Fatalf("round %d: first write after restart got rev %d, not above the highest acknowledged rev %d", round, next, m.maxRev)
					}
					if err := m.ack("/crash/next", ackedWrite{seq: round, body: fmt.Sprint("round ", round), rev: next}); err != nil {
						t.Fatal(err)
					}
					c.Close()
					if t.Failed() {
						return
					}
				}
				runWritersUntilKill(ctx, t, ch, m, seqs, cr)
				if t.Failed() {
					return
				}
			}
			if tc.snapEvery > 0 {
				checkSnapshotsAndTruncation(t, dir) // as the last kill left them
			}
			ch := startChild(t, dir, tc.snapEvery)
			ctx := testCtx(t)
			c := dialChild(t, ch.addr)
			m.check(ctx, t, c)
			next, err := c.Set(ctx, "/crash/next", fs.Clobber, []byte("last"))
			if err != nil {
				t.Fatal(err)
			}
			if next <= m.maxRev {
				t.Fatalf("first write after the last restart got rev %d, not above the highest acknowledged rev %d", next, m.maxRev)
			}
			t.Logf("%d writes acknowledged over %d kills; last rev %d", m.acks, len(tc.rounds), next)
		})
	}
}

func dialChild(t *testing.T, addr string) *wire.Client {
	t.Helper()
	c, err := wire.Dial(context.Background(), []string{addr}, wire.Options{DialTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// crashRound says when a round of TestCrashKill9 kills the replica.
type crashRound struct {
	acks    int   // once this many writes were acknowledged,
	bytes   int64 // and at least this many bytes of bodies;
	bigBody int   // writers 0 and 1 write bodies of this size
}

// runWritersUntilKill runs the writers against ch until cr says, then
// kills ch with SIGKILL while they go on, and waits for every writer to
// see the failure.
func runWritersUntilKill(ctx context.Context, t *testing.T, ch *childReplica, m *ackModel, seqs []int, cr crashRound) {
	t.Helper()
	var (
		acked   atomic.Int64
		bytes   atomic.Int64
		killed  atomic.Bool
		trigger = make(chan struct{})
		once    sync.Once
		wg      sync.WaitGroup
	)
	for w := range seqs {
		c := dialChild(t, ch.addr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			pad := ""
			if w < 2 && cr.bigBody > 0 {
				pad = strings.Repeat("x", cr.bigBody)
			}
			for {
				seqs[w]++
				seq := seqs[w]
				path := fmt.Sprintf("/crash/w%d/f%d", w, seq%5)
				body := fmt.Sprintf("w%d-%d%s", w, seq, pad)
				rev, err := c.Set(ctx, path, fs.Clobber, []byte(body))
				if err != nil {
					m.fail(path, ackedWrite{seq: seq, body: body})
					if !killed.Load() {
						t.Errorf("writer %d: write before the kill failed: %v", w, err)
						once.Do(func() { close(trigger) })
					}
					return
				}
				if err := m.ack(path, ackedWrite{seq: seq, body: body, rev: rev}); err != nil {
					t.Error(err)
				}
				a, b := acked.Add(1), bytes.Add(int64(len(body)))
				if a >= int64(cr.acks) && b >= cr.bytes {
					once.Do(func() { close(trigger) })
				}
			}
		}()
	}
	select {
	case <-trigger:
	case <-ctx.Done():
		t.Errorf("only %d writes (%d bytes) acknowledged in time; want %d (%d bytes)", acked.Load(), bytes.Load(), cr.acks, cr.bytes)
	}
	killed.Store(true)
	ch.kill()
	wg.Wait()
	t.Logf("killed after %d acknowledgements (%d bytes) this round (%d in all)", acked.Load(), bytes.Load(), m.acks)
}

// checkSnapshotsAndTruncation checks that the replica of dir saved
// snapshots and that the WAL no longer starts at its first segment.
func checkSnapshotsAndTruncation(t *testing.T, dir string) {
	t.Helper()
	snaps, _ := filepath.Glob(filepath.Join(dir, wal.SnapDirName, "snap-*"))
	segs, _ := filepath.Glob(filepath.Join(dir, wal.WALDirName, "*.wal"))
	t.Logf("snapshots %v, segments %v", baseNames(snaps), baseNames(segs))
	var newest uint64
	for _, s := range snaps {
		if n, err := strconv.ParseUint(strings.TrimPrefix(filepath.Base(s), "snap-"), 10, 64); err == nil {
			newest = max(newest, n)
		}
	}
	if newest <= 1 {
		t.Errorf("no snapshot beyond the founding one: %v", baseNames(snaps))
	}
	if len(segs) == 0 || strings.HasPrefix(filepath.Base(segs[0]), "0000000000000001-") {
		t.Errorf("the WAL was never truncated: %v", baseNames(segs))
	}
}

func baseNames(paths []string) []string {
	var names []string
	for _, p := range paths {
		names = append(names, filepath.Base(p))
	}
	return names
}

// walFrame is one frame of a WAL segment (docs/storage.md §2.3).
type walFrame struct {
	off, len int64
	index    uint64
	gen      uint32
	typ      uint8
	data     []byte
}

func (f walFrame) end() int64 { return f.off + f.len }

const walCommit = 0xFF

// readWALFrames reads the frames of a segment file up to the first zero
// header or the end of the file; it fails the test on anything else.
func readWALFrames(t *testing.T, path string) []walFrame {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	var frames []walFrame
	var hdr [24]byte
	for off := int64(40); off+24 <= st.Size(); {
		if _, err := f.ReadAt(hdr[:], off); err != nil {
			t.Fatal(err)
		}
		if hdr == [24]byte{} {
			break
		}
		n := int64(binary.LittleEndian.Uint32(hdr[4:]))
		fr := walFrame{off: off, len: 24 + (n+7)&^7, index: binary.LittleEndian.Uint64(hdr[8:]),
			gen: binary.LittleEndian.Uint32(hdr[16:]), typ: hdr[20], data: make([]byte, n)}
		if fr.end() > st.Size() {
			t.Fatalf("%s: frame at %d runs past the end of the file", path, off)
		}
		if _, err := f.ReadAt(fr.data, off+24); err != nil {
			t.Fatal(err)
		}
		frames = append(frames, fr)
		off = fr.end()
	}
	return frames
}

// walSegments lists the segment files of the data directory dir in order.
func walSegments(t *testing.T, dir string) []string {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, wal.WALDirName, "*.wal"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("no WAL segment in %s: %v", dir, err)
	}
	slices.Sort(segs)
	return segs
}

// writeInFrame is a write found in an entry record of the WAL.
type writeInFrame struct {
	path, body string
	frame      int // index in the frames of its segment
}

// writesInFrames decodes the writes held by the entry records of frames.
func writesInFrames(t *testing.T, frames []walFrame) []writeInFrame {
	t.Helper()
	var ws []writeInFrame
	for i, fr := range frames {
		if fr.typ != recEntry {
			continue
		}
		e, err := decodeEntry(fr.data)
		if err != nil {
			t.Fatalf("entry record at %d: %v", fr.off, err)
		}
		for _, v := range e.Values {
			var mu fs.Mutation
			if err := mu.UnmarshalBinary(v.Data); err != nil {
				t.Fatalf("value in entry record at %d: %v", fr.off, err)
			}
			for _, op := range mu.Ops {
				if op.Kind == fs.OpSet {
					ws = append(ws, writeInFrame{path: op.Path, body: string(op.Body), frame: i})
				}
			}
		}
	}
	return ws
}

// copyDataDir copies the data directory src to dst. The file tear (if not
// empty) is copied only up to offset at; if size is above at, it is then
// extended with zeros to size bytes (a torn write into a preallocated
// segment), otherwise it ends there (a torn write that grew the file).
func copyDataDir(t *testing.T, src, dst, tear string, at, size int64) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o700)
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		st, err := in.Stat()
		if err != nil {
			return err
		}
		out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		defer out.Close()
		n := st.Size()
		if p == tear {
			n = at
		}
		if _, err := io.Copy(out, io.LimitReader(in, n)); err != nil {
			return err
		}
		if p == tear && size > at {
			return out.Truncate(size)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// scratchDir returns a temporary directory for the many torn copies of a
// data directory: on tmpfs (/dev/shm) when there is one, where the
// thousands of fsyncs of their recoveries cost nothing, else on disk.
// What is checked there is the recovery logic, not the disk.
func scratchDir(t *testing.T) string {
	t.Helper()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "doozerfs-torn-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	return t.TempDir()
}

func isZeros(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// TestTornTail writes through a replica, closes it, then for every byte
// offset in the last two batches of the WAL (the last batch holding user
// entries and the one after it, which holds the commit point) tears a copy
// of the data directory there — cut off, or zeroed from there on as in a
// preallocated segment — and checks that the replica opens, logs the cut
// when a frame was damaged, and holds every write whose batch was
// complete (a write of the torn batch may be missing, nothing else).
func TestTornTail(t *testing.T) {
	src := t.TempDir()
	cfg := testConfig(t, src)
	cfg.Addr = ""
	r := startReplica(t, cfg)
	ctx := testCtx(t)
	revs := map[string]int64{}
	var mu sync.Mutex
	set := func(path, body string) {
		rev, err := r.Txn(ctx, []fs.Op{{Kind: fs.OpSet, Path: path, Rev: fs.Clobber, Body: []byte(body)}})
		if err != nil {
			t.Error(err)
			return
		}
		mu.Lock()
		revs[path+"\x00"+body] = rev
		mu.Unlock()
	}
	for i := range 20 {
		set(fmt.Sprintf("/torn/s%d", i%7), fmt.Sprintf("sequential %d", i))
	}
	// A last group of concurrent writes, so that a batch may hold several.
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() { set(fmt.Sprintf("/torn/c%d", i), fmt.Sprintf("concurrent %d %s", i, strings.Repeat("y", 3*i))) })
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	segs := walSegments(t, src)
	seg := segs[len(segs)-1]
	frames := readWALFrames(t, seg)
	writes := writesInFrames(t, frames)
	if len(writes) != len(revs) {
		t.Fatalf("found %d writes in the WAL, made %d", len(writes), len(revs))
	}
	// Batches: the frames up to and including each commit frame.
	batchOf := make([]int, len(frames))
	b := 0
	for i, fr := range frames {
		batchOf[i] = b
		if fr.typ == walCommit {
			b++
		}
	}
	if frames[len(frames)-1].typ != walCommit {
		t.Fatalf("the WAL of a closed replica does not end with a commit frame")
	}
	lastEntryBatch := batchOf[writes[len(writes)-1].frame]
	first := slices.Index(batchOf, lastEntryBatch)
	from, to := frames[first].off, frames[len(frames)-1].end()
	t.Logf("tearing %s at every offset in [%d, %d): %d frames, last entry batch %d of %d",
		filepath.Base(seg), from, to, len(frames)-first, lastEntryBatch, b)
	orig, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	rel, _ := filepath.Rel(src, seg)
	work := scratchDir(t)
	n, lost := 0, 0
	for at := from; at < to; at++ {
		k := slices.IndexFunc(frames, func(fr walFrame) bool { return fr.off <= at && at < fr.end() })
		fr := frames[k]
		// Cut the file at the offset; zero it from there to a little past
		// the end of the log; and, in the middle of the last record, zero
		// it up to its full preallocated size (once only: Open reads all
		// 64 MiB, which takes a while under the race detector).
		sizes := []int64{at, to + 64<<10}
		if at == fr.off+fr.len/2 && k == len(frames)-2 {
			sizes = append(sizes, int64(len(orig)))
		}
		for _, size := range sizes {
			zero := size > at
			dst := filepath.Join(work, fmt.Sprintf("%d-%d", at, size))
			copyDataDir(t, src, dst, seg, at, size)
			// The damaged frame is what Open finds at fr.off: its first
			// at-fr.off bytes, then nothing or zeros. Intact, or all zero
			// (a clean end), it is no damage.
			intact := zero && isZeros(orig[at:fr.end()])
			wantLog := !intact && !isZeros(orig[fr.off:at])
			if checkTorn(context.Background(), t, dst, filepath.Join(dst, rel), at, wantLog, writes, revs, batchOf, batchOf[k]) > 0 {
				lost++
			}
			os.RemoveAll(dst)
			n++
			if t.Failed() {
				t.Fatalf("failed at offset %d (frame %d at %d, %d bytes, type %#x), file size %d", at, k, fr.off, fr.len, fr.typ, size)
			}
		}
	}
	t.Logf("checked %d torn copies; the last write was cut off in %d of them", n, lost)
}

// checkTorn opens the torn copy dir and checks it against the writes made:
// those whose batch comes before the torn one must be there at their
// revision; those of the torn batch may be missing; nothing else exists.
func checkTorn(ctx context.Context, t *testing.T, dir, seg string, at int64, wantLog bool,
	writes []writeInFrame, revs map[string]int64, batchOf []int, torn int) (lost int) {
	t.Helper()
	logs := new(lockedLog)
	cfg := testConfig(t, dir)
	cfg.Addr = ""
	cfg.Tick = 100 * time.Microsecond // elect sooner: this runs a thousand times
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	r, err := Open(cfg)
	if err != nil {
		t.Fatalf("offset %d: open: %v", at, err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	got := strings.Contains(logs.String(), "cut a torn write off the end of the log") &&
		strings.Contains(logs.String(), "file="+seg)
	if got != wantLog {
		t.Errorf("torn write logged: %v, want %v; log:\n%s", got, wantLog, logs)
	}
	// Recovered entries that the log does not show committed are committed
	// once the replica leads; a NOP waits for that.
	if _, err := r.Nop(ctx); err != nil {
		t.Fatalf("offset %d: nop: %v; log:\n%s", at, err, logs)
	}
	v := r.Tree().View()
	var need int64
	present := map[string]string{}
	for _, w := range writes {
		rev := revs[w.path+"\x00"+w.body]
		body, st, err := v.Get(w.path)
		switch {
		case err == nil && string(body) == w.body && st.Rev == rev:
			present[w.path] = w.body
		case batchOf[w.frame] >= torn:
			lost++ // its batch was torn: it may be gone
		case err != nil:
			t.Errorf("%s %q (rev %d) is lost: %v", w.path, w.body, rev, err)
		case st.Rev < rev:
			t.Errorf("%s: want %q at rev %d, found %q at rev %d", w.path, w.body, rev, body, st.Rev)
		}
		if batchOf[w.frame] < torn {
			need = max(need, rev)
		}
	}
	// Nothing else: every file holds the last write made to it that is
	// present.
	g, _ := fs.CompileGlob("/**")
	v.Walk(g, func(p string, st fs.Stat, body []byte) bool {
		if present[p] != string(body) {
			t.Errorf("%s holds %q at rev %d; want %q", p, body, st.Rev, present[p])
		}
		return true
	})
	rev, err := r.Txn(ctx, []fs.Op{{Kind: fs.OpSet, Path: "/torn/after", Rev: fs.Clobber, Body: []byte("after")}})
	if err != nil {
		t.Fatalf("write after recovery: %v", err)
	}
	if rev <= need {
		t.Errorf("write after recovery got rev %d, not above %d", rev, need)
	}
	return lost
}

// TestCorruptEarlyRecord flips a byte in a record well before the tail of
// the WAL: Open must refuse the directory with an error naming the file
// and the offset; with Repair it starts, keeps a damaged copy of the file
// and holds every write before the damage.
func TestCorruptEarlyRecord(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	r := startReplica(t, cfg)
	ctx := testCtx(t)
	revs := map[string]int64{}
	for i := range 40 {
		p := fmt.Sprintf("/early/%d", i)
		rev, err := r.Txn(ctx, []fs.Op{{Kind: fs.OpSet, Path: p, Rev: fs.Clobber, Body: []byte(fmt.Sprint("body ", i))}})
		if err != nil {
			t.Fatal(err)
		}
		revs[p] = rev
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	seg := walSegments(t, dir)[0]
	frames := readWALFrames(t, seg)
	// The client's writes only: the leader's own /ctl/node writes land
	// among them at times that depend on the machine's speed, and may be
	// rewritten later (TestCorruptEarlyRecord failed so under load).
	writes := slices.DeleteFunc(writesInFrames(t, frames), func(w writeInFrame) bool { return revs[w.path] == 0 })
	if len(writes) != len(revs) {
		t.Fatalf("found %d of the %d writes in the WAL", len(writes), len(revs))
	}
	victim := writes[10] // well before the tail
	fr := frames[victim.frame]
	flip := fr.off + 24 + int64(len(fr.data))/2
	f, err := os.OpenFile(seg, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	var one [1]byte
	f.ReadAt(one[:], flip)
	one[0] ^= 0x5a
	if _, err := f.WriteAt(one[:], flip); err != nil {
		t.Fatal(err)
	}
	f.Close()

	_, err = Open(cfg)
	var ce *wal.CorruptError
	switch {
	case err == nil:
		t.Fatal("Open accepted a WAL with a flipped byte in an early record")
	case !errors.Is(err, wal.ErrCorrupt) || !errors.As(err, &ce):
		t.Fatalf("Open: %v; want a *wal.CorruptError", err)
	case ce.File != seg || ce.Offset < fr.off || ce.Offset > flip:
		t.Errorf("damage reported in %s at offset %d; flipped byte %d of the frame at %d in %s", ce.File, ce.Offset, flip, fr.off, seg)
	case !strings.Contains(err.Error(), seg) || !strings.Contains(err.Error(), fmt.Sprint(ce.Offset)):
		t.Errorf("error %q does not name the file and offset", err)
	}
	t.Logf("Open: %v", err)

	logs := new(lockedLog)
	cfg.Repair = true
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	r2 := startReplica(t, cfg)
	if !strings.Contains(logs.String(), "repair") {
		t.Errorf("repair not logged:\n%s", logs)
	}
	damaged, _ := filepath.Glob(seg + ".damaged-*")
	if len(damaged) != 1 {
		t.Fatalf("damaged copies: %v", damaged)
	}
	if kept, err := os.ReadFile(damaged[0]); err != nil || int64(len(kept)) <= flip || kept[flip] != one[0] {
		t.Errorf("the damaged copy does not hold the damaged bytes (%v)", err)
	}
	if _, err := r2.Nop(ctx); err != nil {
		t.Fatal(err)
	}
	v := r2.Tree().View()
	for i, w := range writes {
		body, st, err := v.Get(w.path)
		if w.frame < victim.frame {
			if err != nil || string(body) != w.body || st.Rev != revs[w.path] {
				t.Errorf("write %d before the damage: %s = %q at rev %d, %v; want %q at rev %d", i, w.path, body, st.Rev, err, w.body, revs[w.path])
			}
		} else if err == nil {
			t.Errorf("write %d at or after the damage is still there: %s = %q", i, w.path, body)
		}
	}
	// The repaired directory reopens without Repair.
	if err := r2.Close(); err != nil {
		t.Fatal(err)
	}
	cfg.Repair = false
	r3 := startReplica(t, cfg)
	c := dialReplica(t, r3)
	if _, err := c.Set(ctx, "/early/after", fs.Clobber, []byte("after")); err != nil {
		t.Fatal(err)
	}
}
