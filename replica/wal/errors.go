package wal

import (
	"errors"
	"fmt"
)

var (
	// ErrCorrupt matches (with errors.Is) every *CorruptError.
	ErrCorrupt = errors.New("wal: corrupt data")

	// ErrBroken matches every error returned by a WAL after a write, sync or
	// file-system operation failed. Such a failure is sticky: the WAL can no
	// longer tell what is durable, so every later call fails too, and the
	// replica must stop rather than carry on undurable.
	ErrBroken = errors.New("wal: broken by an earlier I/O error")

	// ErrClosed is returned by calls on a closed WAL.
	ErrClosed = errors.New("wal: closed")

	// ErrLocked is returned when a directory is locked by another opener.
	ErrLocked = errors.New("wal: directory is locked")

	// ErrInjected is the error of faults injected through Options.Faults.
	ErrInjected = errors.New("wal: injected fault")

	errWouldBlock = errors.New("lock held elsewhere")
)

// CorruptError reports damage found in a segment or snapshot file: where,
// and what was wrong there. Open returns it for damage that is not a torn
// last write; Options.Repair makes Open cut the log there instead.
type CorruptError struct {
	File   string // path of the damaged file
	Offset int64  // byte offset in File where the damage was found
	Reason string // what was found there
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("wal: %s: damage at byte offset %d: %s", e.File, e.Offset, e.Reason)
}

// Is makes errors.Is(err, ErrCorrupt) true for every *CorruptError.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// brokenError is what every call returns once the WAL is broken: the cause,
// marked with ErrBroken.
type brokenError struct{ cause error }

func (e *brokenError) Error() string {
	return e.cause.Error() + " (the WAL is broken: every later call fails)"
}

func (e *brokenError) Unwrap() []error { return []error{ErrBroken, e.cause} }
