package wire

import (
	"context"
	"fmt"
	"io"

	"github.com/doozerfs/doozerfs/fs"
)

// Snapshot streams a consistent snapshot of the store (in fs's snapshot
// format, as `snapshot restore` reads it) to w. progress, if not nil, is
// called after each chunk with the bytes written so far and the total
// (-1 if the replica did not say); it runs in the calling goroutine.
//
// The stream runs on a connection of its own to the current replica (or,
// failing that, another), so a large snapshot does not hold up the Client's
// other calls. A broken connection fails the snapshot (UNAVAILABLE) and w
// holds a partial copy; call again to start over.
func (c *Client) Snapshot(ctx context.Context, w io.Writer, progress func(done, total int64)) error {
	s := c.s
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(s.ctx, cancel)()
	conn, addr, err := s.dialSide(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	defer context.AfterFunc(ctx, func() { conn.Close() })()
	req := Request{Tag: 1, Verb: VerbSnapshot, MinRev: s.seen.Load(), Consistent: c.consistent}
	if err := conn.WriteRequest(&req); err != nil {
		return snapshotLost(ctx, addr, err)
	}
	return receiveSnapshot(ctx, s, conn, addr, w, progress)
}

func receiveSnapshot(ctx context.Context, s *session, conn *Conn, addr string, w io.Writer, progress func(done, total int64)) error {
	var done, total int64 = 0, -1
	for {
		var resp Response
		if err := conn.ReadResponse(&resp); err != nil {
			return snapshotLost(ctx, addr, err)
		}
		switch {
		case resp.Tag != 1:
			return snapshotLost(ctx, addr, fmt.Errorf("response for tag %d: %v", resp.Tag, resp.Error()))
		case resp.Err != nil:
			return resp.Err
		}
		s.observe(&resp)
		if resp.Size > 0 {
			total = resp.Size
		}
		if len(resp.Body) > 0 {
			if _, err := w.Write(resp.Body); err != nil {
				return fmt.Errorf("snapshot: %w", err)
			}
			done += int64(len(resp.Body))
		}
		if progress != nil {
			progress(done, total)
		}
		if !resp.More {
			break
		}
	}
	if total >= 0 && done != total {
		return &fs.Error{Kind: fs.KindOther, Detail: fmt.Sprintf("snapshot: got %d bytes of %d", done, total)}
	}
	return nil
}

func snapshotLost(ctx context.Context, addr string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return &fs.Error{Kind: fs.KindUnavailable, Detail: fmt.Sprintf("snapshot from %s: %v", addr, err)}
}

// dialSide makes a connection of its own, to the current replica first.
func (s *session) dialSide(ctx context.Context) (*Conn, string, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, "", ErrClosed
	}
	start := s.next
	if s.cur != nil {
		start = (s.next + len(s.addrs) - 1) % len(s.addrs)
	}
	s.mu.Unlock()
	conn, _, idx, err := s.dialAny(ctx, start)
	if err != nil {
		if ctx.Err() != nil {
			return nil, "", ctx.Err()
		}
		return nil, "", err
	}
	return conn, s.addrs[idx], nil
}
