package web

import (
	"encoding/json"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	dfs "github.com/doozerfs/doozerfs/fs"
)

// DefaultMaxConns is the default of serve --http-max-conns.
const DefaultMaxConns = 1024

// refusedAnswer is what a plain-HTTP connection over the limit is sent
// before it is closed.
var refusedAnswer = func() []byte {
	e := &dfs.Error{Kind: dfs.KindUnavailable, Detail: "too many HTTP connections (--http-max-conns); retry later"}
	b, err := json.Marshal(errorJSON{Error: e.Error(), Kind: e.Kind.String(), Code: int(e.Kind), Detail: e.Detail})
	if err != nil {
		panic(err)
	}
	body := string(b) + "\n"
	return []byte("HTTP/1.1 503 Service Unavailable\r\n" +
		"Content-Type: application/json; charset=utf-8\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n" +
		"Retry-After: 1\r\n" +
		"Connection: close\r\n\r\n" + body)
}()

// LimitListener returns a listener that keeps at most max of the
// connections ln accepts open at once. One accepted over the limit is
// closed at once, without being read: when answer is set (plain HTTP, not
// TLS: ln must be the TCP listener, so that a refused connection costs no
// handshake), it is first sent a 503 UNAVAILABLE, best effort. The
// connections under the limit are not affected. log (nil: none) gets a
// warning, at most every 10 seconds, while connections are refused.
func LimitListener(ln net.Listener, max int, answer bool, log *slog.Logger) net.Listener {
	if max <= 0 {
		max = DefaultMaxConns
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &limitListener{Listener: ln, slots: make(chan struct{}, max), answer: answer, log: log}
}

type limitListener struct {
	net.Listener
	slots  chan struct{} // a token per open connection
	answer bool
	log    *slog.Logger

	refused  atomic.Int64
	lastWarn atomic.Int64 // unix nanoseconds of the last warning
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.slots <- struct{}{}:
			return &limitConn{Conn: c, release: func() { <-l.slots }}, nil
		default:
		}
		l.refuse(c)
	}
}

// refuse closes c, a connection over the limit.
func (l *limitListener) refuse(c net.Conn) {
	if l.answer {
		// A new socket's send buffer is empty: this does not block, and
		// the deadline makes sure of it.
		c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		c.Write(refusedAnswer)
	}
	c.Close()
	n := l.refused.Add(1)
	now := time.Now().UnixNano()
	if last := l.lastWarn.Load(); now-last >= int64(10*time.Second) && l.lastWarn.CompareAndSwap(last, now) {
		l.log.Warn("HTTP: connections over --http-max-conns refused", "max", cap(l.slots), "refused_total", n, "remote", c.RemoteAddr().String())
	}
}

// limitConn gives its slot back when closed.
type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
