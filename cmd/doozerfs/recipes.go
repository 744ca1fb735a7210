package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"github.com/doozerfs/doozerfs/fs"
	"github.com/doozerfs/doozerfs/wire"
)

func init() {
	var regTTL, lockTTL, electTTL time.Duration
	var regValue, lockValue, electValue string
	register("register", leaseCommand("PATH --ttl D [--value V]", "keep an ephemeral file alive while this process lives", [2]int{1, 1},
		func(f *flag.FlagSet) {
			f.DurationVar(&regTTL, "ttl", 10*time.Second, "the file vanishes this long after the process dies")
			f.StringVar(&regValue, "value", "", "the file's body")
		},
		func() error {
			if regTTL <= 0 {
				return usagef("--ttl must be positive")
			}
			return nil
		},
		func(ctx context.Context, e *env, c *wire.Client, args []string) error {
			return runRegister(ctx, e, c, args[0], regTTL, []byte(regValue))
		}))
	register("lock", leaseCommand("PATH [--ttl D] -- CMD [ARGS...]", "run CMD while holding the lock PATH", [2]int{2, -1},
		func(f *flag.FlagSet) {
			f.DurationVar(&lockTTL, "ttl", 10*time.Second, "the lock is released this long after the process dies")
			f.StringVar(&lockValue, "value", "", "the lock file's body (default: host and pid)")
		},
		func() error {
			if lockTTL <= 0 {
				return usagef("--ttl must be positive")
			}
			return nil
		},
		func(ctx context.Context, e *env, c *wire.Client, args []string) error {
			return runLock(ctx, e, c, args[0], args[1:], lockTTL, lockValue)
		}))
	register("elect", leaseCommand("PATH --value V [--ttl D]", "campaign for leader at PATH; print when elected; lead until killed", [2]int{1, 1},
		func(f *flag.FlagSet) {
			f.DurationVar(&electTTL, "ttl", 10*time.Second, "another candidate takes over this long after the leader dies")
			f.StringVar(&electValue, "value", "", "this candidate's identity, e.g. its address (required)")
		},
		func() error {
			if electValue == "" {
				return usagef("elect needs --value")
			}
			if electTTL <= 0 {
				return usagef("--ttl must be positive")
			}
			return nil
		},
		func(ctx context.Context, e *env, c *wire.Client, args []string) error {
			return runElect(ctx, e, c, args[0], electTTL, []byte(electValue))
		}))
}

// leaseCommand is clientCommand without the overall --timeout: these
// commands run until they are stopped.
func leaseCommand(usage, help string, nargs [2]int, extra func(*flag.FlagSet), validate func() error,
	body func(ctx context.Context, e *env, c *wire.Client, args []string) error) *command {
	return &command{usage: usage, help: help, run: func(ctx context.Context, e *env, args []string) error {
		fset, cf := newClientFlags(e, usage)
		extra(fset)
		pos, err := parseInterspersed(fset, args)
		if err != nil {
			return err
		}
		if len(pos) < nargs[0] || (nargs[1] >= 0 && len(pos) > nargs[1]) {
			return usagef("wrong number of arguments")
		}
		if validate != nil {
			if err := validate(); err != nil {
				return err
			}
		}
		dctx, cancel := context.WithTimeout(ctx, max(cf.timeout, time.Second))
		c, err := cf.dial(dctx)
		cancel()
		if err != nil {
			return err
		}
		defer c.Close()
		return body(ctx, e, c, pos)
	}}
}

// closeSession revokes the session's lease, with a bound of its own (the
// command's context is usually done by then).
func closeSession(s *wire.Session) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.Close(ctx)
}

// runRegister keeps path bound to a live lease while the process runs. If
// the lease is lost (the cluster answered NO_LEASE, or could not be
// reached for a whole TTL), the file is gone: it registers again as soon
// as the cluster answers.
func runRegister(ctx context.Context, e *env, c *wire.Client, path string, ttl time.Duration, value []byte) error {
	registered := false
	lastMsg := ""
	for {
		err := registerOnce(ctx, e, c, path, ttl, value, &registered)
		if ctx.Err() != nil {
			return nil
		}
		if !registered || !transient(err) {
			return err
		}
		if msg := err.Error(); msg != lastMsg {
			lastMsg = msg
			fmt.Fprintf(e.stderr, "doozerfs register: %s is not registered (%v); trying again\n", path, err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(min(time.Second, ttl)):
		}
	}
}

// registerOnce binds path to a new session's lease and holds it until the
// session ends; registered is set once the file is written.
func registerOnce(ctx context.Context, e *env, c *wire.Client, path string, ttl time.Duration, value []byte, registered *bool) error {
	s, err := c.NewSession(ctx, ttl)
	if err != nil {
		return err
	}
	defer closeSession(s)
	rev, err := c.SetLease(ctx, path, fs.Clobber, value, s.ID())
	if err != nil {
		return err
	}
	*registered = true
	fmt.Fprintf(e.stdout, "registered %s at rev %d (lease %d, ttl %v)\n", path, rev, s.ID(), ttl)
	select {
	case <-ctx.Done():
		return nil
	case <-s.Done():
		return fmt.Errorf("the lease was lost, %s is gone: %w", path, s.Err())
	}
}

// transient reports whether err may go away by itself: the cluster out of
// reach or without a leader for a while, or a lease lost meanwhile.
func transient(err error) bool {
	switch fs.KindOf(err) {
	case fs.KindNoLease, fs.KindUnavailable, fs.KindReadOnly, fs.KindTimeout:
		return true
	}
	return errors.Is(err, context.DeadlineExceeded)
}

func runLock(ctx context.Context, e *env, c *wire.Client, path string, argv []string, ttl time.Duration, value string) error {
	if value == "" {
		host, _ := os.Hostname()
		value = host + ":" + strconv.Itoa(os.Getpid())
	}
	s, err := c.NewSession(ctx, ttl)
	if err != nil {
		return err
	}
	defer closeSession(s)
	l, err := c.Lock(ctx, path, s, []byte(value))
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return fmt.Errorf("interrupted while waiting for the lock %s", path)
		}
		return err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = e.stdin, e.stdout, e.stderr
	cmd.Env = append(os.Environ(), "DOOZERFS_LOCK_PATH="+path, "DOOZERFS_LOCK_TOKEN="+strconv.FormatInt(l.Token, 10))
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("lock %s: %w", path, err)
	}
	waitc := make(chan error, 1)
	go func() { waitc <- cmd.Wait() }()
	var werr error
	select {
	case werr = <-waitc:
	case <-s.Done():
		cmd.Process.Signal(syscall.SIGTERM)
		<-waitc
		return fmt.Errorf("the lock %s was lost while %s ran (%v); it was stopped", path, argv[0], s.Err())
	case <-ctx.Done():
		cmd.Process.Signal(syscall.SIGTERM)
		werr = <-waitc
	}
	uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	l.Unlock(uctx)
	cancel()
	var exit *exec.ExitError
	if errors.As(werr, &exit) {
		return &exitStatus{code: exit.ExitCode()}
	}
	return werr
}

func runElect(ctx context.Context, e *env, c *wire.Client, path string, ttl time.Duration, value []byte) error {
	s, err := c.NewSession(ctx, ttl)
	if err != nil {
		return err
	}
	defer closeSession(s)
	if cur, _, err := c.Leader(ctx, path); err == nil {
		fmt.Fprintf(e.stdout, "following %s\n", cur)
	}
	l, err := c.Campaign(ctx, path, s, value)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	}
	fmt.Fprintf(e.stdout, "elected %s term %d\n", value, l.Token)
	select {
	case <-ctx.Done():
		return nil
	case <-s.Done():
		return fmt.Errorf("leadership lost: %v", s.Err())
	}
}

// exitStatus makes the binary exit with a child's status.
type exitStatus struct{ code int }

func (e *exitStatus) Error() string { return "exit status " + strconv.Itoa(e.code) }
