package wire

import (
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		nc, _ := ln.Accept()
		accepted <- nc
	}()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	srv := <-accepted
	if srv == nil {
		t.Fatal("accept failed")
	}
	defer srv.Close()
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
