package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/doozerfs/doozerfs/fs"
)

// errUsage marks an error in how the command was called (exit status 2).
var errUsage = errors.New("usage")

// usageError is a usage mistake with a message for the user.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }
func (e *usageError) Is(t error) bool {
	return t == errUsage
}

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// parseInterspersed parses args with fset, accepting flags before and after
// the positional arguments (SPEC §5). "--" ends the flags; a negative number
// such as "-1" is a positional argument, so `set /path -1` works.
func parseInterspersed(fset *flag.FlagSet, args []string) ([]string, error) {
	fset.SetOutput(io.Discard)
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if !isFlag(a) {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		f := fset.Lookup(name)
		if f == nil {
			return nil, usagef("unknown flag %s", a)
		}
		if isBoolFlag(f) {
			continue
		}
		if i+1 >= len(args) {
			return nil, usagef("flag %s needs a value", a)
		}
		i++
		flags = append(flags, args[i])
	}
	if err := fset.Parse(flags); err != nil {
		return nil, usagef("%v", err)
	}
	return pos, nil
}

func isFlag(a string) bool {
	if len(a) < 2 || a[0] != '-' {
		return false
	}
	if _, err := strconv.ParseFloat(a, 64); err == nil {
		return false
	}
	return true
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// parseRev reads a REV argument: a number, or "clobber" (-1) or "missing" (0).
func parseRev(s string) (int64, error) {
	switch strings.ToLower(s) {
	case "clobber":
		return fs.Clobber, nil
	case "missing":
		return fs.Missing, nil
	}
	r, err := strconv.ParseInt(s, 10, 64)
	if err != nil || r < -1 {
		return 0, usagef("bad REV %q: want a revision, -1/clobber or 0/missing", s)
	}
	return r, nil
}

// revFlag is a flag.Value holding a revision, accepting the REV spellings.
type revFlag struct{ rev int64 }

func (r *revFlag) String() string { return strconv.FormatInt(r.rev, 10) }
func (r *revFlag) Set(s string) error {
	v, err := parseRev(s)
	if err != nil {
		return err
	}
	r.rev = v
	return nil
}
