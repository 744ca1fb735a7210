package fs

import (
	"errors"
	"fmt"
)

// Kind is the class of an error. The numbers are stable and append-only: they
// travel on the wire, are printed by the CLI and are mapped to errno by the
// mount. Never renumber or reuse a value; add new kinds at the end.
type Kind int

// The error kinds of SPEC §1, in wire order.
const (
	KindOther       Kind = 0  // anything not covered below
	KindBadPath     Kind = 1  // a path or glob that breaks the path rules
	KindRevMismatch Kind = 2  // a conditional write whose rev did not hold
	KindNoEnt       Kind = 3  // no such file or directory
	KindIsDir       Kind = 4  // a file operation on a directory
	KindNotDir      Kind = 5  // a directory operation on a file, or a file used as a parent
	KindNotEmpty    Kind = 6  // DEL of a directory that has children
	KindTooLate     Kind = 7  // a revision older than the history window
	KindTooBig      Kind = 8  // a body over the limit
	KindReadOnly    Kind = 9  // no quorum known, or a read-only mount
	KindPermission  Kind = 10 // not allowed: /ctl written by a client, a missing or read-only secret
	KindUnknownVerb Kind = 11 // a request verb the server does not know
	KindBadRequest  Kind = 12 // a malformed request
	KindNoLease     Kind = 13 // no such lease (expired, revoked or never granted)
	KindTimeout     Kind = 14 // the outcome is unknown: no answer in time
	KindUnavailable Kind = 15 // no replica could be reached
)

var kindNames = [...]string{
	KindOther:       "OTHER",
	KindBadPath:     "BAD_PATH",
	KindRevMismatch: "REV_MISMATCH",
	KindNoEnt:       "NOENT",
	KindIsDir:       "ISDIR",
	KindNotDir:      "NOTDIR",
	KindNotEmpty:    "NOTEMPTY",
	KindTooLate:     "TOO_LATE",
	KindTooBig:      "TOO_BIG",
	KindReadOnly:    "READONLY",
	KindPermission:  "PERMISSION",
	KindUnknownVerb: "UNKNOWN_VERB",
	KindBadRequest:  "BAD_REQUEST",
	KindNoLease:     "NO_LEASE",
	KindTimeout:     "TIMEOUT",
	KindUnavailable: "UNAVAILABLE",
}

// String returns the kind's wire name, such as "REV_MISMATCH".
func (k Kind) String() string {
	if k >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("KIND_%d", int(k))
}

// ParseKind returns the kind whose name is s.
func ParseKind(s string) (Kind, bool) {
	for k, n := range kindNames {
		if n == s {
			return Kind(k), true
		}
	}
	return 0, false
}

// Error is the one error type of doozerfs. Every package that reports a store
// error returns an *Error; errors.Is(err, ErrNoEnt) and friends compare kinds.
type Error struct {
	Kind   Kind
	Path   string // the path concerned, if any
	Detail string // human-readable detail, if any
}

// Error formats the error as "KIND: path: detail", leaving out empty parts.
func (e *Error) Error() string {
	s := e.Kind.String()
	if e.Path != "" {
		s += ": " + e.Path
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Is reports whether target is an *Error of the same kind. A sentinel such as
// ErrNoEnt matches every NOENT error whatever its path and detail.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Kind == e.Kind
}

// Errorf returns an *Error of kind k about path with a formatted detail.
func Errorf(k Kind, path, format string, args ...any) *Error {
	return &Error{Kind: k, Path: path, Detail: fmt.Sprintf(format, args...)}
}

// Sentinels for errors.Is. Do not modify them.
var (
	ErrOther       = &Error{Kind: KindOther}
	ErrBadPath     = &Error{Kind: KindBadPath}
	ErrRevMismatch = &Error{Kind: KindRevMismatch}
	ErrNoEnt       = &Error{Kind: KindNoEnt}
	ErrIsDir       = &Error{Kind: KindIsDir}
	ErrNotDir      = &Error{Kind: KindNotDir}
	ErrNotEmpty    = &Error{Kind: KindNotEmpty}
	ErrTooLate     = &Error{Kind: KindTooLate}
	ErrTooBig      = &Error{Kind: KindTooBig}
	ErrReadOnly    = &Error{Kind: KindReadOnly}
	ErrPermission  = &Error{Kind: KindPermission}
	ErrUnknownVerb = &Error{Kind: KindUnknownVerb}
	ErrBadRequest  = &Error{Kind: KindBadRequest}
	ErrNoLease     = &Error{Kind: KindNoLease}
	ErrTimeout     = &Error{Kind: KindTimeout}
	ErrUnavailable = &Error{Kind: KindUnavailable}
)

// KindOf returns the kind of err: the Kind of the first *Error in its chain,
// or KindOther for any other non-nil error. KindOf(nil) is KindOther too;
// callers check for nil first.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindOther
}
