// Command doozerfs is the one binary of doozerfs: the replica server, the
// mount, and the client commands. Run `doozerfs help` for the list.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/doozerfs/doozerfs/fs"
)

// Exit statuses (SPEC §5).
const (
	exitOK          = 0
	exitRefused     = 1 // the store refused: the error kind is printed
	exitUsage       = 2
	exitUnreachable = 3 // no replica reachable
)

// command is one subcommand of the binary.
type command struct {
	usage string // arguments, for help
	help  string // one line
	run   func(ctx context.Context, env *env, args []string) error
}

// env is what a command may use besides its arguments.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
}

var commands = map[string]*command{}

func register(name string, c *command) { commands[name] = c }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	e := &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
	code := runMain(ctx, e, os.Args[1:])
	stop()
	os.Exit(code)
}

// runMain runs one command line and returns the exit status.
func runMain(ctx context.Context, e *env, args []string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		printHelp(e.stdout)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	if args[0] == "version" || args[0] == "--version" {
		fmt.Fprintln(e.stdout, "doozerfs", Version)
		return exitOK
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(e.stderr, "doozerfs: unknown command %q (see doozerfs help)\n", args[0])
		return exitUsage
	}
	err := c.run(ctx, e, args[1:])
	return report(e.stderr, args[0], c, err)
}

// report prints err for the user and returns the exit status it means.
func report(w io.Writer, name string, c *command, err error) int {
	if err == nil {
		return exitOK
	}
	var es *exitStatus
	if errors.As(err, &es) {
		return es.code // the child of `lock` already spoke
	}
	if errors.Is(err, errUsage) {
		fmt.Fprintf(w, "doozerfs %s: %v\nusage: doozerfs %s %s\n", name, err, name, c.usage)
		return exitUsage
	}
	var fe *fs.Error
	if errors.As(err, &fe) {
		fmt.Fprintf(w, "doozerfs %s: %v\n", name, fe)
		if fe.Kind == fs.KindUnavailable {
			return exitUnreachable
		}
		return exitRefused
	}
	if errors.Is(err, context.Canceled) {
		return exitOK
	}
	fmt.Fprintf(w, "doozerfs %s: %v\n", name, err)
	return exitRefused
}

func printHelp(w io.Writer) {
	fmt.Fprintln(w, "usage: doozerfs COMMAND [ARGS] [FLAGS]")
	fmt.Fprintln(w)
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		c := commands[n]
		fmt.Fprintf(w, "  %-10s %-28s %s\n", n, c.usage, c.help)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Client commands take -a/--addr ADDR[,ADDR...] (env DOOZERFS_ADDR, default 127.0.0.1:8046)")
	fmt.Fprintln(w, "and --secret (env DOOZERFS_SECRET). REV is a revision, -1/clobber or 0/missing.")
	fmt.Fprintln(w, "Exit status: 0 done, 1 the store refused, 2 usage, 3 no replica reachable.")
}

// splitList splits a comma-separated list, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
