package replica

import (
	"context"
	"sync"
)

// notifier lets many goroutines wait until a counter (the applied revision,
// the applied slot) reaches a value. The goroutine that advances the counter
// never blocks on waiters: it closes a channel that all current waiters
// select on, and makes a new one.
type notifier struct {
	mu sync.Mutex
	v  int64         // the current value; only grows
	ch chan struct{} // closed and replaced on every advance
}

func newNotifier(v int64) *notifier {
	return &notifier{v: v, ch: make(chan struct{})}
}

// value returns the current value.
func (n *notifier) value() int64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.v
}

// advance raises the value to v (never lowers it) and wakes every waiter.
func (n *notifier) advance(v int64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if v <= n.v {
		return
	}
	n.v = v
	close(n.ch)
	n.ch = make(chan struct{})
}

// changed returns the current value and a channel that is closed at the
// next advance.
func (n *notifier) changed() (int64, <-chan struct{}) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.v, n.ch
}

// wait blocks until the value is at least v or ctx is done.
func (n *notifier) wait(ctx context.Context, v int64) error {
	for {
		cur, ch := n.changed()
		if cur >= v {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
