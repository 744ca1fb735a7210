package wire

import (
	"bytes"
	"net"
	"testing"
	"time"
)

// TestTryFlushAfterABlockingFlushOutlivesItsDeadline: a blocking flush (the
// socket was full) sets a write deadline; left behind, it made every later
// nonblocking write (TryFlush, which RawConn.Write checks the deadline for)
// fail once that deadline had passed, however idle the socket: the replica
// then closed a healthy client's connection (TestHostileClients, with the
// writes answered by the loop).
func TestTryFlushAfterABlockingFlushOutlivesItsDeadline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
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
