package wire

import (
	"bytes"
	"net"
	"testing"
	"time"
)

// TestTryFlushIgnoresAStaleWriteDeadline: a blocking flush sets a write
// deadline on the connection, and RawConn.Write, which TryFlush uses,
// checks it. A deadline that has passed must not fail a later nonblocking
// write on a healthy, idle connection (the replica would close it): the
// frame goes out, by the blocking flush if need be.
func TestTryFlushIgnoresAStaleWriteDeadline(t *testing.T) {
	srv, client := tcpPair(t)
	c := NewConn(srv, 0)
	c.SetWriteTimeout(time.Minute)
	if !c.CanWriteNoWait() {
		t.Fatal("no raw socket under a *net.TCPConn")
	}
	read := func(tag uint32) {
		t.Helper()
		client.SetReadDeadline(time.Now().Add(10 * time.Second))
		p, err := ReadFrame(client, nil, 0)
		if err != nil {
			t.Fatalf("reading tag %d: %v", tag, err)
		}
		var resp Response
		if err := DecodeResponse(p, &resp); err != nil || resp.Tag != tag {
			t.Fatalf("got tag %d (%v), want %d", resp.Tag, err, tag)
		}
	}
	// A blocking write, then a deadline left in the past, as one would be
	// after its timeout had run out on an idle connection.
	if err := c.WriteResponse(&Response{Tag: 1}); err != nil {
		t.Fatal(err)
	}
	read(1)
	srv.SetWriteDeadline(time.Now().Add(-time.Second))
	for tag := uint32(2); tag < 5; tag++ {
		if err := c.QueueResponseNoWait(&Response{Tag: tag}); err != nil {
			t.Fatal(err)
		}
		if err := c.TryFlush(); err != nil {
			t.Fatalf("TryFlush with a stale deadline: %v", err)
		}
		read(tag)
	}
}

// tcpPair returns both ends of a loopback TCP connection (the accepted one
// first), closed when the test ends. TryFlush needs a real socket.
func tcpPair(t *testing.T) (srv, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		nc, _ := ln.Accept() // nil on error
		accepted <- nc
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	if srv = <-accepted; srv == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { srv.Close() })
	return srv, client
}

// TestTryFlushAfterABlockingFlushOutlivesItsDeadline: a blocking flush (the
// socket was full) sets a write deadline; left behind, it made every later
// nonblocking write (TryFlush, which RawConn.Write checks the deadline for)
// fail once that deadline had passed, however idle the socket: the replica
// then closed a healthy client's connection (TestHostileClients, with the
// writes answered by the loop).
func TestTryFlushAfterABlockingFlushOutlivesItsDeadline(t *testing.T) {
	srv, client := tcpPair(t)

	const timeout = 2 * time.Second
	c := NewConn(srv, 1<<20)
	c.SetWriteTimeout(timeout)
	c.SetRawConn(srv)
	if !c.CanWriteNoWait() {
		t.Fatal("no raw socket")
	}
	body := bytes.Repeat([]byte{'x'}, 256<<10)
	// Queue more than the socket takes (4 MiB): TryFlush leaves the rest to a
	// blocking flush, which sets the deadline.
	var want int
	for range 16 {
		if err := c.QueueResponseNoWait(&Response{Tag: 1, Body: body}); err != nil {
			t.Fatal(err)
		}
		want++
	}
	if err := c.TryFlush(); err != nil {
		t.Fatal(err)
	}
	read := func(n int) {
		t.Helper()
		client.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 0, 512<<10)
		for i := range n {
			p, err := ReadFrame(client, buf, 1<<20)
			if err != nil {
				t.Fatalf("frame %d of %d: %v", i+1, n, err)
			}
			var resp Response
			if err := DecodeResponse(p, &resp); err != nil {
				t.Fatal(err)
			}
		}
	}
	read(want)
	// Long after that deadline, an answer on the idle connection.
	time.Sleep(timeout + timeout/2)
	if err := c.QueueResponseNoWait(&Response{Tag: 2, Rev: 7}); err != nil {
		t.Fatal(err)
	}
	if err := c.TryFlush(); err != nil {
		t.Fatalf("TryFlush on an idle connection after a blocking flush's deadline: %v", err)
	}
	read(1)
}
