package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/doozerfs/doozerfs/replica/wal"
	"github.com/doozerfs/doozerfs/wire"
)

func init() {
	register("status", clientCommand("", "the replica as it sees itself", [2]int{0, 0}, nil,
		func(ctx context.Context, e *env, c *wire.Client, _ *clientFlags, _ []string) error {
			s, err := c.Self(ctx)
			if err != nil {
				return err
			}
			leader := s.Leader
			if leader == "" {
				leader = "(none known)"
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "name\t%s\nid\t%d\naddr\t%s\ncluster\t%s\nrole\t%s\nleader\t%s\nrev\t%d\nlag\t%d\nversion\t%s\n",
				s.Name, s.ID, s.Addr, s.Cluster, s.Role, leader, s.Applied, s.Lag, s.Version)
			return tw.Flush()
		}))
	register("members", checkedClientCommand("[remove NAME]", "the cluster's members as this replica sees them; remove one for good", [2]int{0, 2},
		func(args []string) error {
			if len(args) > 0 && (args[0] != "remove" || len(args) != 2) {
				return usagef("members takes no arguments, or remove NAME")
			}
			return nil
		}, nil,
		func(ctx context.Context, e *env, c *wire.Client, _ *clientFlags, args []string) error {
			if len(args) > 0 {
				if args[0] != "remove" || len(args) != 2 {
					return usagef("members takes no arguments, or remove NAME")
				}
				if err := c.RemoveMember(ctx, args[1]); err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "removed %s\n", args[1])
				return nil
			}
			ms, err := c.Members(ctx)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tID\tADDR\tROLE\tSTATE\tLEADER\tREV")
			for _, m := range ms {
				lead := ""
				if m.Leader {
					lead = "*"
				}
				rev := "-" // only the answering replica knows its own
				if m.Applied > 0 {
					rev = strconv.FormatInt(m.Applied, 10)
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", m.Name, m.ID, m.Addr, m.Role, m.State, lead, rev)
			}
			return tw.Flush()
		}))
	register("snapshot", &command{
		usage: "save FILE | restore FILE --data DIR",
		help:  "back up a running cluster, or seed a data directory from a backup",
		run:   runSnapshot,
	})
}

func runSnapshot(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usagef("snapshot needs save or restore")
	}
	switch args[0] {
	case "save":
		return snapshotSave(ctx, e, args[1:])
	case "restore":
		return snapshotRestore(e, args[1:])
	}
	return usagef("unknown snapshot command %q", args[0])
}

func snapshotSave(ctx context.Context, e *env, args []string) error {
	fset, cf := newClientFlags(e, "snapshot save")
	cf.timeout = 0
	pos, err := parseInterspersed(fset, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("snapshot save takes one FILE")
	}
	if cf.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cf.timeout)
		defer cancel()
	}
	c, err := cf.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	file := pos[0]
	tmp, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	p := newProgress(e.stderr)
	if err := c.Snapshot(ctx, tmp, p.update); err != nil {
		tmp.Close()
		p.done()
		return err
	}
	p.done()
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "doozerfs: snapshot saved to %s (%d bytes)\n", file, p.total)
	return nil
}

func snapshotRestore(e *env, args []string) error {
	f := flag.NewFlagSet("snapshot restore", flag.ContinueOnError)
	dir := f.String("data", "", "the new data directory to seed")
	pos, err := parseInterspersed(f, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *dir == "" {
		return usagef("snapshot restore takes one FILE and --data DIR")
	}
	// A restore seeds a new data directory: refuse any directory that
	// holds something (another replica's data, or files of the user's that
	// a mistyped --data would mix with ours).
	if ents, err := os.ReadDir(*dir); err == nil && len(ents) > 0 {
		return fmt.Errorf("cannot restore into %s: the directory is not empty (it holds %s); restore seeds a new data directory", *dir, ents[0].Name())
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	in, err := os.Open(pos[0])
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	p := newProgress(e.stderr)
	p.total = st.Size()
	sn, err := wal.ImportSnapshot(*dir, &countingReader{r: in, p: p}, wal.Options{})
	p.done()
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "doozerfs: %s restored into %s (index %d); start `doozerfs serve --data %s` to found a cluster on it\n",
		pos[0], *dir, sn.Index, *dir)
	return nil
}

// progress draws a progress line on a terminal, and nothing otherwise.
type progress struct {
	w          io.Writer
	tty        bool
	done_      int64
	total      int64
	lastDrawAt time.Time
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progress) update(done, total int64) {
	p.done_, p.total = done, total
	if !p.tty || time.Since(p.lastDrawAt) < 100*time.Millisecond && done != total {
		return
	}
	p.lastDrawAt = time.Now()
	pct := 100.0
	if total > 0 {
		pct = 100 * float64(done) / float64(total)
	}
	const width = 40
	n := int(pct / 100 * width)
	bar := make([]byte, width)
	for i := range bar {
		if i < n {
			bar[i] = '#'
		} else {
			bar[i] = '.'
		}
	}
	fmt.Fprintf(p.w, "\r[%s] %5.1f%%  %d / %d bytes", bar, pct, done, total)
}

func (p *progress) done() {
	if p.tty && !p.lastDrawAt.IsZero() {
		fmt.Fprintln(p.w)
	}
}

type countingReader struct {
	r io.Reader
	p *progress
	n int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	c.p.update(c.n, c.p.total)
	return n, err
}
