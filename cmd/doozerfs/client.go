package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/doozerfs/doozerfs/fs"
	"github.com/doozerfs/doozerfs/wire"
)

// clientFlags are the flags every client command takes.
type clientFlags struct {
	addr       string
	secret     string
	timeout    time.Duration
	consistent bool
	tls        tlsFlags
}

const defaultAddr = "127.0.0.1:8046"

func newClientFlags(e *env, name string) (*flag.FlagSet, *clientFlags) {
	cf := &clientFlags{}
	fset := flag.NewFlagSet(name, flag.ContinueOnError)
	addr := e.getenv("DOOZERFS_ADDR")
	if addr == "" {
		addr = defaultAddr
	}
	fset.StringVar(&cf.addr, "addr", addr, "replica addresses, comma-separated (env DOOZERFS_ADDR)")
	fset.StringVar(&cf.addr, "a", addr, "short for --addr")
	fset.StringVar(&cf.secret, "secret", e.getenv("DOOZERFS_SECRET"), "secret token (env DOOZERFS_SECRET)")
	fset.DurationVar(&cf.timeout, "timeout", 15*time.Second, "give up after this long (0: never)")
	fset.BoolVar(&cf.consistent, "consistent", false, "linearizable read: the leader confirms it still leads")
	cf.tls.register(fset)
	return fset, cf
}

// dial connects to the cluster named by the flags.
func (cf *clientFlags) dial(ctx context.Context) (*wire.Client, error) {
	opts := wire.Options{Name: "doozerfs-cli"}
	opts.Secret = cf.secret
	tc, err := cf.tls.clientConfig()
	if err != nil {
		return nil, usagef("%v", err)
	}
	opts.TLS = tc
	c, err := wire.Dial(ctx, splitList(cf.addr), opts)
	if errors.Is(err, context.DeadlineExceeded) {
		// --timeout ended the dial: no replica answered, which is exit
		// status 3 like a refused connection, not a refusal by the store.
		return nil, &fs.Error{Kind: fs.KindUnavailable,
			Detail: fmt.Sprintf("no replica reachable: none of %s answered within --timeout %v", cf.addr, cf.timeout)}
	}
	return c, err
}

// clientCommand wraps a command body that needs a connected client, parsing
// the common flags plus any the command adds through extra.
func clientCommand(usage, help string, nargs [2]int, extra func(*flag.FlagSet),
	body func(ctx context.Context, e *env, c *wire.Client, cf *clientFlags, args []string) error) *command {
	return checkedClientCommand(usage, help, nargs, nil, extra, body)
}

// checkedClientCommand is clientCommand with check run on the positional
// arguments before dialling, so that a usage mistake is exit status 2 even
// when no replica is reachable.
func checkedClientCommand(usage, help string, nargs [2]int, check func(args []string) error, extra func(*flag.FlagSet),
	body func(ctx context.Context, e *env, c *wire.Client, cf *clientFlags, args []string) error) *command {
	return &command{usage: usage, help: help, run: func(ctx context.Context, e *env, args []string) error {
		fset, cf := newClientFlags(e, usage)
		if extra != nil {
			extra(fset)
		}
		pos, err := parseInterspersed(fset, args)
		if err != nil {
			return err
		}
		if len(pos) < nargs[0] || (nargs[1] >= 0 && len(pos) > nargs[1]) {
			return usagef("wrong number of arguments")
		}
		if check != nil {
			if err := check(pos); err != nil {
				return err
			}
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
		if cf.consistent {
			c = c.Consistent()
		}
		err = body(ctx, e, c, cf, pos)
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
			// --timeout ended the request: say so with an error kind,
			// like every other refusal (exit status 1).
			err = &fs.Error{Kind: fs.KindTimeout, Detail: fmt.Sprintf("no answer within --timeout %v", cf.timeout)}
		}
		return err
	}}
}

func init() {
	var getRev revFlag
	register("get", clientCommand("PATH [--rev R]", "print a file's body", [2]int{1, 1},
		func(f *flag.FlagSet) { f.Var(&getRev, "rev", "read at this revision (0: current)") },
		func(ctx context.Context, e *env, c *wire.Client, _ *clientFlags, a []string) error {
			body, _, err := c.Get(ctx, a[0], getRev.rev)
			if err != nil {
				return err
			}
			_, err = e.stdout.Write(body)
			return err
		}))
	register("set", checkedClientCommand("PATH REV", "write stdin to a file if its rev allows; print the new rev", [2]int{2, 2}, checkRevArg, nil,
		func(ctx context.Context, e *env, c *wire.Client, _ *clientFlags, a []string) error {
			rev, err := parseRev(a[1])
			if err != nil {
				return err
			}
			return setFromStdin(ctx, e, c, a[0], rev)
		}))
	register("add", clientCommand("PATH", "create a file from stdin only if it is missing", [2]int{1, 1}, nil,
		func(ctx context.Context, e *env, c *wire.Client, _ *clientFlags, a []string) error {
			return setFromStdin(ctx, e, c, a[0], fs.Missing)
		}))
	register("del", checkedClientCommand("PATH REV", "delete a file or an empty directory", [2]int{2, 2}, checkRevArg, nil,
		func(ctx context.Context, e *env, c *wire.Client, _ *clientFlags, a []string) error {
			rev, err := parseRev(a[1])
			if err != nil {
				return err
			}
			_, err = c.Del(ctx, a[0], rev)
			return err
		}))
	register("mkdir", clientCommand("PATH", "make a directory (and missing parents)", [2]int{1, 1}, nil,
		func(ctx context.Context, e *env, c *wire.Client, _ *clientFlags, a []string) error {
			rev, err := c.Mkdir(ctx, a[0])
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(e.stdout, rev)
			return err
		}))
	register("rev", clientCommand("", "print the current revision", [2]int{0, 0}, nil,
		func(ctx context.Context, e *env, c *wire.Client, _ *clientFlags, _ []string) error {
			rev, err := c.Rev(ctx)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(e.stdout, rev)
			return err
		}))
	register("nop", clientCommand("", "pass an empty change through consensus", [2]int{0, 0}, nil,
		func(ctx context.Context, _ *env, c *wire.Client, _ *clientFlags, _ []string) error {
			return c.Nop(ctx)
		}))
	registerListing()
	registerWatching()
}

// checkRevArg checks the REV argument of set and del.
func checkRevArg(args []string) error {
	_, err := parseRev(args[1])
	return err
}

func setFromStdin(ctx context.Context, e *env, c *wire.Client, path string, rev int64) error {
	body, err := io.ReadAll(io.LimitReader(e.stdin, 64<<20))
	if err != nil {
		return fmt.Errorf("reading stdin: %w", err)
	}
	newRev, err := c.Set(ctx, path, rev, body)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(e.stdout, newRev)
	return err
}

func registerListing() {
	var statRev, lsRev, findRev revFlag
	register("stat", clientCommand("PATH [--rev R]", "print KIND SIZE REV TIME (and LEASE) of a node", [2]int{1, 1},
		func(f *flag.FlagSet) { f.Var(&statRev, "rev", "at this revision (0: current)") },
		func(ctx context.Context, e *env, c *wire.Client, _ *clientFlags, a []string) error {
			st, err := c.Stat(ctx, a[0], statRev.rev)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(e.stdout, formatStat(st))
			return err
		}))
	register("ls", clientCommand("PATH [--rev R]", "list a directory (directories end in /)", [2]int{1, 1},
		func(f *flag.FlagSet) { f.Var(&lsRev, "rev", "at this revision (0: current)") },
		func(ctx context.Context, e *env, c *wire.Client, _ *clientFlags, a []string) error {
			ents, err := c.GetDir(ctx, a[0], lsRev.rev)
			if err != nil {
				return err
			}
			var b strings.Builder
			for _, d := range ents {
				b.WriteString(d.Name)
				if d.Type == fs.TypeDir {
					b.WriteByte('/')
				}
				b.WriteByte('\n')
			}
			_, err = io.WriteString(e.stdout, b.String())
			return err
		}))
	register("find", clientCommand("GLOB [--rev R]", "print the paths of files matching GLOB", [2]int{1, 1},
		func(f *flag.FlagSet) { f.Var(&findRev, "rev", "at this revision (0: current)") },
		func(ctx context.Context, e *env, c *wire.Client, _ *clientFlags, a []string) error {
			files, err := c.Walk(ctx, a[0], findRev.rev)
			if err != nil {
				return err
			}
			var b strings.Builder
			for _, f := range files {
				b.WriteString(f.Path)
				b.WriteByte('\n')
			}
			_, err = io.WriteString(e.stdout, b.String())
			return err
		}))
	register("touch", clientCommand("PATH", "rewrite a file with its own body (create it empty if missing)", [2]int{1, 1}, nil,
		func(ctx context.Context, e *env, c *wire.Client, _ *clientFlags, a []string) error {
			return touch(ctx, e, c, a[0])
		}))
}

// touch gives a file a new revision without changing its body, as doozer's
// touch did: a conditional write of the body it read, so a concurrent change
// is never overwritten (REV_MISMATCH instead).
func touch(ctx context.Context, e *env, c *wire.Client, path string) error {
	body, st, err := c.Get(ctx, path, 0)
	rev := st.Rev
	switch {
	case fs.KindOf(err) == fs.KindNoEnt:
		body, rev = nil, fs.Missing
	case err != nil:
		return err
	}
	newRev, err := c.Set(ctx, path, rev, body)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(e.stdout, newRev)
	return err
}

func formatStat(st fs.Stat) string {
	t := time.Unix(0, st.Time).UTC().Format(time.RFC3339Nano)
	s := fmt.Sprintf("%s %d %d %s", st.Type, st.Size, st.Rev, t)
	if st.Lease != 0 {
		s += fmt.Sprintf(" lease=%d", st.Lease)
	}
	return s
}

func registerWatching() {
	var waitRev, watchRev revFlag
	register("wait", clientCommand("GLOB [--rev R]", "print the first change at or after R matching GLOB", [2]int{1, 1},
		func(f *flag.FlagSet) { f.Var(&waitRev, "rev", "from this revision (0: the next one)") },
		func(ctx context.Context, e *env, c *wire.Client, _ *clientFlags, a []string) error {
			ev, err := c.Wait(ctx, a[0], waitRev.rev)
			if err != nil {
				return err
			}
			return printEvent(e.stdout, ev)
		}))
	register("watch", &command{usage: "GLOB [--rev R]", help: "print every change matching GLOB until interrupted",
		run: func(ctx context.Context, e *env, args []string) error {
			fset, cf := newClientFlags(e, "watch")
			fset.Var(&watchRev, "rev", "from this revision (0: the next one)")
			pos, err := parseInterspersed(fset, args)
			if err != nil {
				return err
			}
			if len(pos) != 1 {
				return usagef("wrong number of arguments")
			}
			c, err := cf.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			return watch(ctx, e, c, pos[0], watchRev.rev)
		}})
}

func watch(ctx context.Context, e *env, c *wire.Client, glob string, rev int64) error {
	w, err := c.Watch(ctx, glob, rev)
	if err != nil {
		return err
	}
	defer w.Close()
	for {
		ev, err := w.Next(ctx)
		if err != nil {
			return err
		}
		if err := printEvent(e.stdout, ev); err != nil {
			return err
		}
	}
}

// printEvent writes "REV KIND PATH LEN", a newline, the body and a newline.
func printEvent(w io.Writer, ev fs.Event) error {
	_, err := fmt.Fprintf(w, "%d %s %s %d\n%s\n", ev.Rev, ev.Kind, ev.Path, len(ev.Body), ev.Body)
	if f, ok := w.(interface{ Sync() error }); ok {
		_ = f.Sync()
	}
	return err
}
