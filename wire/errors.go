package wire

import (
	"context"
	"errors"
	"fmt"

	"github.com/doozerfs/doozerfs/fs"
)

// ErrFrameTooBig is returned by the frame readers when a frame's length
// prefix is over the limit. The stream cannot be resynchronised after it:
// the connection must be closed (a server first answers with a tag-0
// response of kind TOO_BIG). Test for it with errors.Is.
var ErrFrameTooBig = errors.New("wire: frame too big")

// ErrClosed is returned by a Client, Watch or Conn used after Close.
var ErrClosed = errors.New("wire: closed")

// AsError converts err to the *fs.Error sent on the wire: an *fs.Error in
// err's chain is returned as is; ErrFrameTooBig is TOO_BIG; a context
// deadline is TIMEOUT; anything else is OTHER with err's text as detail.
// AsError(nil) is nil.
func AsError(err error) *fs.Error {
	var e *fs.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &e):
		return e
	case errors.Is(err, ErrFrameTooBig):
		return &fs.Error{Kind: fs.KindTooBig, Detail: err.Error()}
	case errors.Is(err, context.DeadlineExceeded):
		return &fs.Error{Kind: fs.KindTimeout, Detail: err.Error()}
	}
	return &fs.Error{Kind: fs.KindOther, Detail: err.Error()}
}

func badRequest(format string, args ...any) *fs.Error {
	return &fs.Error{Kind: fs.KindBadRequest, Detail: fmt.Sprintf(format, args...)}
}

// appendError appends the error fields shared by every reply: e (kind),
// x (detail, if any) and p (path, if any). It returns how many map entries
// it wrote.
func appendError(b []byte, e *fs.Error) []byte {
	b = appendInt(appendKey(b, 'e'), int64(e.Kind))
	if e.Detail != "" {
		b = appendStr(appendKey(b, 'x'), e.Detail)
	}
	if e.Path != "" {
		b = appendStr(appendKey(b, 'p'), e.Path)
	}
	return b
}

func errorFields(e *fs.Error) int {
	if e == nil {
		return 0
	}
	n := 1
	if e.Detail != "" {
		n++
	}
	if e.Path != "" {
		n++
	}
	return n
}

// errorOf returns the error p points at, allocating it at first use.
func errorOf(p **fs.Error) *fs.Error {
	if *p == nil {
		*p = new(fs.Error)
	}
	return *p
}
