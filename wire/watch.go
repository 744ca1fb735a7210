package wire

import (
	"context"
	"errors"
	"sync"

	"github.com/doozerfs/doozerfs/fs"
)

// watchBudget bounds the bytes of events a Watch holds that its reader has
// not taken yet. Past it the Watch stops the replica's stream and, once the
// reader has caught up, starts it again from the first revision it dropped,
// so a slow reader costs memory up to the budget, not the connection. It is
// a variable only so that tests can lower it.
var watchBudget = 16 << 20

// eventOverhead is what one event counts against watchBudget besides its
// path and body.
const eventOverhead = 64

// Watch is a stream of the events that match a glob, from a revision on,
// without gaps or repeats. It survives broken connections: the stream is
// started again, on whatever replica the Client reaches, from the first
// revision it has not covered. Next and NextBatch are for one goroutine
// at a time; Close may be called from any.
type Watch struct {
	s          *session
	glob       string
	consistent bool
	notifyc    chan struct{} // capacity 1: something changed under mu

	stop func() bool // detaches the watch from its context

	mu      sync.Mutex
	batches [][]fs.Event // received and not yet taken, in order
	size    int          // bytes of batches, against watchBudget
	cur     []fs.Event   // the rest of the batch Next is handing out
	next    int64        // first revision the stream has not covered yet
	stream  *watchStream // the replica's stream; nil when none is running
	err     error        // the error to report once the events before it are taken
	fatal   bool         // err ends the Watch; otherwise it is reported once
	closed  error        // why the watch ended (ErrClosed, or its context's error); nil while open
}

// watchStream is one WATCH request on one connection.
type watchStream struct {
	w       *Watch
	cc      *clientConn
	tag     uint32
	started bool // the replica confirmed the watch
}

// Watch starts watching glob from revision rev (0: from the revision after
// the replica's current one, never older than Seen). It returns once the
// replica has confirmed the watch, so every change committed after Watch
// returns is seen. A rev older than the replica's history window is
// TOO_LATE.
//
// ctx governs the whole watch, not just this call: when it ends, the watch
// is cancelled on the replica and Next returns ctx's error. Close ends it
// sooner.
func (c *Client) Watch(ctx context.Context, glob string, rev int64) (*Watch, error) {
	w := &Watch{s: c.s, glob: glob, consistent: c.consistent, next: rev, notifyc: make(chan struct{}, 1)}
	if err := w.start(ctx); err != nil {
		w.end(ErrClosed)
		return nil, err
	}
	w.stop = context.AfterFunc(ctx, func() { w.end(ctx.Err()) })
	return w, nil
}

// Next returns the next event, blocking until there is one or ctx ends.
// An error of kind UNAVAILABLE or TIMEOUT is temporary: the Watch still
// works and Next may be called again. Any other error ends the Watch:
// TOO_LATE when the replica's history no longer reaches the revision to
// resume from, ErrClosed after Close, or the error of the context given to
// Watch once it has ended. ctx bounds only this call.
func (w *Watch) Next(ctx context.Context) (fs.Event, error) {
	w.mu.Lock()
	if len(w.cur) == 0 {
		w.mu.Unlock()
		b, err := w.NextBatch(ctx)
		if err != nil {
			return fs.Event{}, err
		}
		w.mu.Lock()
		w.cur = b
	}
	ev := w.cur[0]
	w.cur = w.cur[1:]
	w.mu.Unlock()
	return ev, nil
}

// NextBatch returns the next events: one or more whole revisions, in
// order (a transaction's events are never split). Errors are as for Next.
func (w *Watch) NextBatch(ctx context.Context) ([]fs.Event, error) {
	for {
		b, idle, err := w.take()
		if b != nil || err != nil {
			return b, err
		}
		if idle {
			if err := w.start(ctx); err != nil {
				return nil, err
			}
			continue
		}
		select {
		case <-w.notifyc:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// take returns what NextBatch can return without waiting, or whether the
// stream must be started again.
func (w *Watch) take() (batch []fs.Event, idle bool, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.closed != nil:
		return nil, false, w.closed
	case len(w.cur) > 0:
		batch, w.cur = w.cur, nil
		return batch, false, nil
	case len(w.batches) > 0:
		batch = w.batches[0]
		w.batches[0] = nil
		w.batches = w.batches[1:]
		w.size -= batchSize(batch)
		return batch, false, nil
	case w.err != nil:
		err = w.err
		if !w.fatal {
			w.err = nil
		}
		return nil, false, err
	}
	return nil, w.stream == nil, nil
}

func batchSize(evs []fs.Event) int {
	n := 0
	for i := range evs {
		n += eventOverhead + len(evs[i].Path) + len(evs[i].Body)
	}
	return n
}

// start sends WATCH from w.next and waits for the replica to confirm it,
// trying each replica at most once when connections break.
func (w *Watch) start(ctx context.Context) error {
	for range len(w.s.addrs) + 1 {
		cc, err := w.s.conn(ctx)
		if err != nil {
			return err
		}
		st := &watchStream{w: w, cc: cc}
		if st.tag, err = cc.register(st); err != nil {
			continue
		}
		w.mu.Lock()
		if err := w.closed; err != nil {
			w.mu.Unlock()
			w.drop(st)
			return err
		}
		w.stream = st
		req := Request{Tag: st.tag, Verb: VerbWatch, Path: w.glob, Rev: w.next,
			MinRev: w.s.seen.Load(), Consistent: w.consistent}
		w.mu.Unlock()
		if err := cc.send(ctx, &req); err != nil {
			w.drop(st)
			if errors.As(err, new(*connLost)) {
				continue
			}
			return err
		}
		if ok, err := w.awaitStart(ctx, st); ok || err != nil {
			return err
		}
	}
	return &fs.Error{Kind: fs.KindUnavailable, Path: w.glob, Detail: "watch: every connection broke before the replica confirmed it"}
}

// awaitStart waits for st's confirmation. It returns false, nil if the
// stream was lost first (the caller tries again).
func (w *Watch) awaitStart(ctx context.Context, st *watchStream) (bool, error) {
	for {
		w.mu.Lock()
		started, current, err := st.started, w.stream == st, w.err
		if err != nil && !current {
			if !w.fatal {
				w.err = nil
			}
			w.mu.Unlock()
			return false, err
		}
		w.mu.Unlock()
		switch {
		case started:
			return true, nil
		case !current:
			return false, nil
		}
		select {
		case <-w.notifyc:
		case <-ctx.Done():
			w.drop(st)
			return false, ctx.Err()
		}
	}
}

// drop ends st: forgets it and asks the replica to cancel it.
func (w *Watch) drop(st *watchStream) {
	w.mu.Lock()
	if w.stream == st {
		w.stream = nil
	}
	w.mu.Unlock()
	if st.cc.unregister(st.tag, st) {
		st.cc.cancel(st.tag)
	}
}

// Close ends the watch and cancels it on the replica. Buffered events are
// dropped; Next returns ErrClosed.
func (w *Watch) Close() error {
	if w.stop != nil {
		w.stop()
	}
	w.end(ErrClosed)
	return nil
}

// end ends the watch with err, once.
func (w *Watch) end(err error) {
	w.mu.Lock()
	if w.closed != nil {
		w.mu.Unlock()
		return
	}
	w.closed = err
	st := w.stream
	w.batches, w.cur, w.size = nil, nil, 0
	w.mu.Unlock()
	if st != nil {
		w.drop(st)
	}
	w.wake()
}

func (w *Watch) wake() {
	select {
	case w.notifyc <- struct{}{}:
	default:
	}
}

func (st *watchStream) streaming() bool { return true }

// deliver takes one response of the stream (in the reader goroutine).
func (st *watchStream) deliver(resp *Response) {
	w := st.w
	w.mu.Lock()
	overflow := st.takeLocked(resp)
	w.mu.Unlock()
	if overflow && st.cc.unregister(st.tag, st) {
		st.cc.cancel(st.tag)
	}
	w.wake()
}

// takeLocked applies one response to the Watch. It reports whether the
// events overflow the budget, in which case the stream must be cancelled;
// it will resume from w.next once the reader catches up.
func (st *watchStream) takeLocked(resp *Response) (overflow bool) {
	w := st.w
	if w.stream != st || w.closed != nil {
		return false
	}
	if resp.Err != nil {
		w.stream = nil
		w.err = resp.Err
		w.fatal = resp.Err.Kind != fs.KindTimeout && resp.Err.Kind != fs.KindUnavailable
		return false
	}
	st.started = true
	if n := len(resp.Events); n > 0 {
		size := batchSize(resp.Events)
		if w.size > 0 && w.size+size > watchBudget {
			w.stream = nil
			return true
		}
		w.batches = append(w.batches, resp.Events)
		w.size += size
		w.next = max(w.next, resp.Events[n-1].Rev+1)
	}
	if resp.Rev > 0 {
		w.next = max(w.next, resp.Rev+1)
	}
	if !resp.More {
		w.stream = nil // the replica ended it; start again on demand
	}
	return false
}

// fail reports the stream's connection broke: the next NextBatch starts it
// again, unless the Client was closed.
func (st *watchStream) fail(err error) {
	w := st.w
	w.mu.Lock()
	if w.stream == st {
		w.stream = nil
		if errors.Is(err, ErrClosed) {
			w.err, w.fatal = ErrClosed, true
		}
	}
	w.mu.Unlock()
	w.wake()
}
