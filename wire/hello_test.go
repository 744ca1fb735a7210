package wire

import (
	"context"
	"errors"
	"net"
	"testing"

	"github.com/doozerfs/doozerfs/fs"
)

// handshake runs Handshake(h) against Accept(p) over a pipe.
func handshake(t *testing.T, p Policy, h Hello) (HelloReply, error, Access, error) {
	t.Helper()
	a, b := net.Pipe()
	ca, cb := NewConn(a, 0), NewConn(b, 0)
	defer ca.Close()
	defer cb.Close()
	type accepted struct {
		access Access
		err    error
	}
	done := make(chan accepted, 1)
	go func() {
		_, access, err := Accept(cb, &p)
		done <- accepted{access, err}
	}()
	reply, err := Handshake(context.Background(), ca, h)
	acc := <-done
	return reply, err, acc.access, acc.err
}

func TestHelloGrantsWriteWithoutSecrets(t *testing.T) {
	p := Policy{Cluster: "prod", Name: "r1", ID: 7}
	reply, err, access, aerr := handshake(t, p, Hello{Kind: ConnClient})
	if err != nil || aerr != nil {
		t.Fatalf("Handshake: %v; Accept: %v", err, aerr)
	}
	want := HelloReply{Version: ProtocolVersion, Name: "r1", ID: 7, Cluster: "prod", Access: AccessWrite}
	if reply != want || access != AccessWrite {
		t.Errorf("got %+v and %v, want %+v and rw", reply, access, want)
	}
}

func TestHelloJudgesTokensAndClusters(t *testing.T) {
	p := Policy{Cluster: "prod", Secret: "rw-secret", ROSecret: "ro-secret"}
	cases := []struct {
		name   string
		hello  Hello
		access Access
		kind   fs.Kind
	}{
		{"read-write token", Hello{Kind: ConnClient, Token: "rw-secret"}, AccessWrite, 0},
		{"read-only token", Hello{Kind: ConnClient, Token: "ro-secret", Cluster: "prod"}, AccessRead, 0},
		{"bad token", Hello{Kind: ConnClient, Token: "guess"}, AccessNone, fs.KindPermission},
		{"no token", Hello{Kind: ConnClient}, AccessNone, fs.KindPermission},
		{"peer with read-only token", Hello{Kind: ConnPeer, Cluster: "prod", Token: "ro-secret"}, AccessNone, fs.KindPermission},
		{"peer with secret", Hello{Kind: ConnPeer, Cluster: "prod", Token: "rw-secret"}, AccessWrite, 0},
		{"peer without cluster", Hello{Kind: ConnPeer, Token: "rw-secret"}, AccessNone, fs.KindBadRequest},
		{"client of another cluster", Hello{Kind: ConnClient, Cluster: "test", Token: "rw-secret"}, AccessNone, fs.KindBadRequest},
		{"unknown kind", Hello{Kind: "admin", Token: "rw-secret"}, AccessNone, fs.KindBadRequest},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			reply, err, access, aerr := handshake(t, p, c.hello)
			if c.kind == 0 {
				if err != nil || aerr != nil || access != c.access || reply.Access != c.access {
					t.Errorf("got %v/%v, errors %v/%v; want %v", access, reply.Access, err, aerr, c.access)
				}
				return
			}
			if !errors.Is(err, &fs.Error{Kind: c.kind}) || !errors.Is(aerr, &fs.Error{Kind: c.kind}) {
				t.Errorf("got errors %v (client) and %v (server), want %v", err, aerr, c.kind)
			}
			if reply.Cluster != "" {
				t.Errorf("a refused HELLO reveals the cluster %q", reply.Cluster)
			}
		})
	}
}

func TestHelloOfAnotherVersionIsBadRequest(t *testing.T) {
	var h Hello
	frame := AppendHello(nil, &Hello{Version: 2, Kind: ConnClient})
	if err := DecodeHello(frame[frameHeader:], &h); err != nil {
		t.Fatal(err)
	}
	p := Policy{}
	if _, err := p.Check(&h); err == nil || err.Kind != fs.KindBadRequest {
		t.Errorf("got %v, want BAD_REQUEST", err)
	}
}

func TestHelloRoundTrips(t *testing.T) {
	want := Hello{Version: 1, Kind: ConnGossip, Cluster: "c", Token: "s", Name: "n"}
	var got Hello
	if err := DecodeHello(AppendHello(nil, &want)[frameHeader:], &got); err != nil || got != want {
		t.Errorf("got %+v, %v; want %+v", got, err, want)
	}
	wantReply := HelloReply{Version: 1, Err: &fs.Error{Kind: fs.KindPermission, Detail: "no"}}
	var gotReply HelloReply
	if err := DecodeHelloReply(AppendHelloReply(nil, &wantReply)[frameHeader:], &gotReply); err != nil ||
		gotReply.Err == nil || *gotReply.Err != *wantReply.Err {
		t.Errorf("got %+v, %v; want %+v", gotReply, err, wantReply)
	}
}

func TestHandshakeGivesUpWhenContextEnds(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	c := NewConn(a, 0)
	defer c.Close()
	go func() { // read the HELLO and never answer
		buf := make([]byte, 1024)
		b.Read(buf)
	}()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := Handshake(ctx, c, Hello{Kind: ConnClient})
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
}
