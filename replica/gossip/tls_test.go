package gossip

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"
)

// TestTLS: gossip streams through HelloDialer with TLS, and a server that
// speaks TLS from the first byte, as a replica with --tls-cert does.
func TestTLS(t *testing.T) {
	server, client := testTLS(t)
	o := nodeOpts{serverTLS: server, clientTLS: client, secret: "s3cret"}
	a := startNode(t, "a", "", o)
	b := startNode(t, "b", "", o)
	c := startNode(t, "c", "", o)
	b.join(t, a)
	c.join(t, b)
	all := []*testNode{a, b, c}
	waitFor(t, 10*time.Second, "all alive", sees(all, StateAlive, "a", "b", "c"), all...)

	// Without TLS, or with the wrong secret, no joining.
	plain := startNode(t, "p", "", nodeOpts{secret: "s3cret"})
	if _, err := plain.m.Join([]string{a.addr}); err == nil {
		t.Error("joined a TLS member without TLS")
	}
	wrong := startNode(t, "w", "", nodeOpts{serverTLS: server, clientTLS: client, secret: "nope"})
	if _, err := wrong.m.Join([]string{a.addr}); err == nil {
		t.Error("joined with the wrong secret")
	}
}

// testTLS returns a server config with a self-signed certificate for
// 127.0.0.1, and a client config that trusts it.
func testTLS(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "doozerfs test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	pair := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	server = &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}
	client = &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool}
	return server, client
}
