package securitytest

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/doozerfs/doozerfs/fs"
	"github.com/doozerfs/doozerfs/replica"
	"github.com/doozerfs/doozerfs/wire"
)

// TestMutualTLSCluster: three replicas with certificates from one CA, the
// secret and mutual TLS on every connection (peer, gossip, client) form a
// cluster and replicate; a replica with a certificate from another CA, or
// without TLS, cannot join although it has the secret.
func TestMutualTLSCluster(t *testing.T) {
	t.Parallel()
	ca := newCA(t, "cluster CA")
	rs := cluster(t, 3, func(i int, c *replica.Config) {
		c.Secret = rwSecret
		c.TLS, c.PeerTLS = replicaTLS(ca, ca.issue(t, c.Name, loopback))
	})
	ctx := testCtx(t)
	clientCert := ca.issue(t, "client", nil)
	c := mustDial(t, rs[0].Addr(), wire.Options{Secret: rwSecret, TLS: clientTLS(ca, &clientCert)})
	rev, err := c.Set(ctx, "/over-tls", fs.Clobber, []byte("mutual"))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs[1:] {
		rc := mustDial(t, r.Addr(), wire.Options{Secret: rwSecret, TLS: clientTLS(ca, &clientCert)})
		waitFor(t, r.Name()+" to apply the write", 20*time.Second, func() bool { return r.Status().Rev >= rev })
		body, _, err := rc.Get(ctx, "/over-tls", 0)
		if err != nil || string(body) != "mutual" {
			t.Errorf("%s: get = %q, %v", r.Name(), body, err)
		}
	}

	// Outsiders with the secret but not the CA's trust.
	other := newCA(t, "another CA")
	var outsiders []*replica.Replica
	for _, o := range []struct {
		name string
		tls  func(*replica.Config)
	}{
		{"other-ca", func(c *replica.Config) {
			c.TLS, c.PeerTLS = replicaTLS(other, other.issue(t, c.Name, loopback))
		}},
		{"self-trusting", func(c *replica.Config) { // trusts the cluster's CA, but its certificate is not the CA's
			c.TLS, c.PeerTLS = replicaTLS(ca, other.issue(t, c.Name, loopback))
		}},
		{"plain", func(c *replica.Config) {}},
	} {
		cfg := config(t, o.name)
		cfg.Secret, cfg.Join = rwSecret, []string{rs[0].Addr()}
		o.tls(&cfg)
		outsiders = append(outsiders, start(t, cfg))
	}
	alone := func() bool {
		for _, o := range outsiders {
			if isMember(rs[0], o.ID()) || len(o.Members()) != 1 {
				return false
			}
		}
		return true
	}
	if !holdsFor(2*time.Second, alone) {
		for _, o := range outsiders {
			t.Errorf("%s: members %+v", o.Name(), o.Members())
		}
	}
}

// TestTLSClients: against a replica with mutual TLS, only a client that
// trusts the CA and presents a certificate the CA signed gets in; every
// other client fails promptly with an error that says why, among them a
// client without TLS, which gets a HELLO refusal it can read.
func TestTLSClients(t *testing.T) {
	t.Parallel()
	ca := newCA(t, "CA")
	other := newCA(t, "other CA")
	cfg := config(t, "tls")
	cfg.TLS, cfg.PeerTLS = replicaTLS(ca, ca.issue(t, "tls", loopback))
	r := start(t, cfg)

	good := ca.issue(t, "client", nil)
	forged := other.issue(t, "client", nil)
	c := mustDial(t, r.Addr(), wire.Options{TLS: clientTLS(ca, &good)})
	if err := setGet(testCtx(t), c, "/tls", "ok"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		tls  *tls.Config
		want string // in the error
	}{
		{"no-client-cert", clientTLS(ca, nil), "certificate"},
		{"client-cert-of-another-ca", presenting(clientTLS(ca, nil), forged), "unknown certificate authority"},
		{"trusts-another-ca", clientTLS(other, &good), "certificate signed by unknown authority"},
		{"plain", nil, "TLS connections only"},
	} {
		start := time.Now()
		_, err := dial(t, []string{r.Addr()}, wire.Options{TLS: tc.tls})
		took := time.Since(start)
		switch {
		case err == nil:
			t.Errorf("%s: connected", tc.name)
		case !strings.Contains(err.Error(), tc.want):
			t.Errorf("%s: error %q does not say %q", tc.name, err, tc.want)
		case took > 5*time.Second:
			t.Errorf("%s: failing took %v", tc.name, took)
		default:
			t.Logf("%s: %v (%s, %v)", tc.name, err, kindOf(err), took.Round(time.Millisecond))
		}
	}
	if fs.KindOf(func() error { _, err := dial(t, []string{r.Addr()}, wire.Options{}); return err }()) != fs.KindBadRequest {
		t.Error("a plain client's refusal is not BAD_REQUEST")
	}

	// A server certificate for another name is refused by the client.
	cfg2 := config(t, "misnamed")
	cfg2.TLS, cfg2.PeerTLS = replicaTLS(ca, ca.issue(t, "misnamed", nil, "elsewhere.example"))
	r2 := start(t, cfg2)
	if _, err := dial(t, []string{r2.Addr()}, wire.Options{TLS: clientTLS(ca, &good)}); !contains(err, "x509: cannot validate certificate for 127.0.0.1") {
		t.Errorf("a certificate for another name: %v", err)
	}
	// A TLS client against a plain replica fails promptly too.
	plain := start(t, config(t, "plain"))
	start := time.Now()
	if _, err := dial(t, []string{plain.Addr()}, wire.Options{TLS: clientTLS(ca, &good)}); err == nil || time.Since(start) > 5*time.Second {
		t.Errorf("a TLS client against a plain replica: %v after %v", err, time.Since(start))
	}
}

// TestTLSServerOnly: without a CA on the replica (serve --tls-cert
// --tls-key), clients need no certificate; they verify the replica's.
func TestTLSServerOnly(t *testing.T) {
	t.Parallel()
	ca := newCA(t, "CA")
	cfg := config(t, "server-only")
	cfg.TLS = &tls.Config{Certificates: []tls.Certificate{ca.issue(t, "server-only", loopback)}, MinVersion: tls.VersionTLS12}
	r := start(t, cfg)
	c := mustDial(t, r.Addr(), wire.Options{TLS: clientTLS(ca, nil)})
	if err := setGet(testCtx(t), c, "/x", "y"); err != nil {
		t.Fatal(err)
	}
}

// TestTLSPeerName: replicas verify the certificate of the peer they dial
// for the address dialled (an IP here) unless PeerTLS names the server
// (serve --tls-peer-name); certificates that carry only a DNS name then
// form a cluster, and without the name they do not.
func TestTLSPeerName(t *testing.T) {
	t.Parallel()
	ca := newCA(t, "CA")
	for _, named := range []bool{true, false} {
		t.Run(fmt.Sprint("named=", named), func(t *testing.T) {
			t.Parallel()
			var rs []*replica.Replica
			for i := range 2 {
				cfg := config(t, fmt.Sprintf("dns%d", i))
				cfg.Secret = rwSecret
				cfg.TLS, cfg.PeerTLS = replicaTLS(ca, ca.issue(t, cfg.Name, nil, "doozerfs-peer"))
				if named {
					cfg.PeerTLS.ServerName = "doozerfs-peer"
				}
				if i > 0 {
					cfg.Join = []string{rs[0].Addr()}
				}
				rs = append(rs, start(t, cfg))
			}
			joined := func() bool { return isMember(rs[0], rs[1].ID()) }
			if named {
				waitFor(t, "the second replica to join", 30*time.Second, joined)
			} else if !holdsFor(2*time.Second, func() bool { return !joined() }) {
				t.Error("a replica joined although its certificate does not name its IP")
			}
		})
	}
}

// TestTLSConnectionsForgotten is the regression test of a leak: the
// server recorded each accepted connection but, under TLS, deleted the
// TLS wrapping from its table when the connection ended, never the
// connection itself; the table grew by one per TLS connection and, once it
// held MaxConns, every new connection was closed at once.
func TestTLSConnectionsForgotten(t *testing.T) {
	t.Parallel()
	ca := newCA(t, "CA")
	cfg := config(t, "churn")
	cfg.MaxConns = 8
	cfg.TLS = &tls.Config{Certificates: []tls.Certificate{ca.issue(t, "churn", loopback)}, MinVersion: tls.VersionTLS12}
	r := start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 4 * cfg.MaxConns {
		c, err := wire.Dial(ctx, []string{r.Addr()}, wire.Options{TLS: clientTLS(ca, nil), DialTimeout: 3 * time.Second})
		if err != nil {
			t.Fatalf("connection %d (limit %d): %v", i, cfg.MaxConns, err)
		}
		if _, err := c.Rev(ctx); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		c.Close()
		// The replica forgets a connection when its goroutine sees the
		// close; wait for that rather than race it.
		waitFor(t, "the replica to forget a closed connection", 5*time.Second, func() bool { return wireConns(t, r) <= 1 })
	}
}

// presenting makes c present cert whatever CAs the server asks for (Go's
// client otherwise sends none that the server's CAs did not sign).
func presenting(c *tls.Config, cert tls.Certificate) *tls.Config {
	c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	return c
}
