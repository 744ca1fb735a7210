package securitytest

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/doozerfs/doozerfs/fs"
	"github.com/doozerfs/doozerfs/replica"
	"github.com/doozerfs/doozerfs/wire"
)

// logReplicas, when DOOZERFS_TEST_LOG is set, sends the replicas' logs to
// stderr (debug level); the tests are quiet otherwise.
var logReplicas = os.Getenv("DOOZERFS_TEST_LOG") != ""

// config is a replica's configuration for a test: loopback, a port picked
// by the kernel, a fresh data directory, fast gossip.
func config(t testing.TB, name string) replica.Config {
	cfg := replica.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.Name = name
	cfg.GossipFast = true
	if logReplicas {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("replica", name)
	}
	return cfg
}

// start opens a replica and closes it when the test ends.
func start(t testing.TB, cfg replica.Config) *replica.Replica {
	t.Helper()
	r, err := replica.Open(cfg)
	if err != nil {
		t.Fatalf("opening replica %s: %v", cfg.Name, err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// testCtx is bounded by the test's deadline (or a minute).
func testCtx(t testing.TB) context.Context {
	d := time.Minute
	if tt, ok := t.(*testing.T); ok {
		if dl, ok := tt.Deadline(); ok && time.Until(dl) < d {
			d = time.Until(dl)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// dial connects a client to addrs with opts (a 3 s dial timeout unless
// opts says) and closes it when the test ends.
func dial(t testing.TB, addrs []string, opts wire.Options) (*wire.Client, error) {
	t.Helper()
	if opts.DialTimeout == 0 {
		opts.DialTimeout = 3 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := wire.Dial(ctx, addrs, opts)
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

// mustDial is dial that fails the test on error.
func mustDial(t testing.TB, addr string, opts wire.Options) *wire.Client {
	t.Helper()
	c, err := dial(t, []string{addr}, opts)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	return c
}

// waitFor polls cond every 20 ms until it holds, failing the test after d.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition, bounded by d
	}
}

// holdsFor polls cond for d and reports whether it held every time.
func holdsFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if !cond() {
			return false
		}
		time.Sleep(50 * time.Millisecond) // sampling over a fixed window
	}
	return cond()
}

// voters counts the voters r knows.
func voters(r *replica.Replica) int {
	n := 0
	for _, m := range r.Members() {
		if m.Role == wire.RoleVoter {
			n++
		}
	}
	return n
}

// isMember says whether r counts id among the members (voters or learners).
func isMember(r *replica.Replica, id uint64) bool {
	for _, m := range r.Members() {
		if m.ID == id {
			return true
		}
	}
	return false
}

// cluster starts n replicas configured by tweak (called with the index)
// that join the first through gossip, and waits for min(n, 3) voters.
func cluster(t *testing.T, n int, tweak func(i int, c *replica.Config)) []*replica.Replica {
	t.Helper()
	var rs []*replica.Replica
	for i := range n {
		cfg := config(t, fmt.Sprintf("r%d", i+1))
		if i > 0 {
			cfg.Join = []string{rs[0].Addr()}
		}
		if tweak != nil {
			tweak(i, &cfg)
		}
		rs = append(rs, start(t, cfg))
	}
	want := min(n, 3)
	waitFor(t, fmt.Sprintf("%d voters", want), 45*time.Second, func() bool { return voters(rs[0]) == want })
	return rs
}

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

var serial struct {
	sync.Mutex
	n int64
}

func nextSerial() *big.Int {
	serial.Lock()
	defer serial.Unlock()
	serial.n++
	return big.NewInt(serial.n)
}

func newCA(t testing.TB, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          nextSerial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
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
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue makes a certificate for cn, valid for the given IPs and DNS names,
// usable by servers and clients alike (as a replica's must be).
func (ca *testCA) issue(t testing.TB, cn string, ips []net.IP, dns ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  ips,
		DNSNames:     dns,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

var loopback = []net.IP{net.IPv4(127, 0, 0, 1)}

// replicaTLS is what `serve --tls-cert --tls-key --tls-ca` configures: the
// server side requires a certificate the CA signed from every dialler; the
// peer side presents the replica's certificate and verifies the peer's
// against the CA.
func replicaTLS(ca *testCA, leaf tls.Certificate) (server, peer *tls.Config) {
	server = &tls.Config{Certificates: []tls.Certificate{leaf}, MinVersion: tls.VersionTLS12,
		ClientCAs: ca.pool, ClientAuth: tls.RequireAndVerifyClientCert}
	peer = &tls.Config{Certificates: []tls.Certificate{leaf}, MinVersion: tls.VersionTLS12, RootCAs: ca.pool}
	return server, peer
}

// clientTLS trusts ca and presents leaf, if any.
func clientTLS(ca *testCA, leaf *tls.Certificate) *tls.Config {
	c := &tls.Config{RootCAs: ca.pool, MinVersion: tls.VersionTLS12}
	if leaf != nil {
		c.Certificates = []tls.Certificate{*leaf}
	}
	return c
}

// rawConn is a connection driven byte by byte, as a hostile client would.
type rawConn struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
}

func rawDial(t testing.TB, addr string) *rawConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

// send writes b, bounded by 10 s.
func (rc *rawConn) send(b []byte) error {
	rc.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := rc.nc.Write(b)
	return err
}

// frame reads one frame (10 s at most).
func (rc *rawConn) frame() ([]byte, error) {
	rc.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	return wire.ReadFrame(rc.br, nil, 64<<20)
}

// hello sends h and returns the reply (its error, if a refusal).
func (rc *rawConn) hello(h wire.Hello) (wire.HelloReply, error) {
	var reply wire.HelloReply
	h.Version = wire.ProtocolVersion
	if err := rc.send(wire.AppendHello(nil, &h)); err != nil {
		return reply, err
	}
	p, err := rc.frame()
	if err != nil {
		return reply, err
	}
	if err := wire.DecodeHelloReply(p, &reply); err != nil {
		return reply, err
	}
	if reply.Err != nil {
		return reply, reply.Err
	}
	return reply, nil
}

// response reads one response.
func (rc *rawConn) response() (*wire.Response, error) {
	p, err := rc.frame()
	if err != nil {
		return nil, err
	}
	resp := new(wire.Response)
	return resp, wire.DecodeResponse(p, resp)
}

// request writes req as a frame.
func (rc *rawConn) request(req *wire.Request) error {
	b, err := wire.AppendRequest(nil, req, 64<<20)
	if err != nil {
		rc.t.Fatal(err)
	}
	return rc.send(b)
}

// closedWithin reads and discards until the replica closes the connection
// or d passes; it reports whether the replica closed it.
func (rc *rawConn) closedWithin(d time.Duration) bool {
	rc.nc.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, rc.br)
	if err == nil {
		return true // EOF
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false
	}
	return true // reset by the replica
}

// kindOf is fs.KindOf with the name, for messages.
func kindOf(err error) string {
	if err == nil {
		return "ok"
	}
	return fs.KindOf(err).String()
}

// setGet writes path on c and reads it back.
func setGet(ctx context.Context, c *wire.Client, path, body string) error {
	if _, err := c.Set(ctx, path, fs.Clobber, []byte(body)); err != nil {
		return fmt.Errorf("set %s: %w", path, err)
	}
	got, _, err := c.Get(ctx, path, 0)
	if err != nil {
		return fmt.Errorf("get %s: %w", path, err)
	}
	if string(got) != body {
		return fmt.Errorf("get %s = %q, want %q", path, got, body)
	}
	return nil
}

// contains reports whether err's text has s.
func contains(err error, s string) bool { return err != nil && strings.Contains(err.Error(), s) }

// wireConns is how many connections r's port holds (clients, peers and
// gossip streams), from its metrics.
func wireConns(t testing.TB, r *replica.Replica) int {
	t.Helper()
	mfs, err := r.MetricsRegistry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "doozerfs_connections" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "api" && l.GetValue() == "wire" {
					return int(m.GetGauge().GetValue())
				}
			}
		}
	}
	return 0
}

// raiseFileLimit makes room for n descriptors, or skips the test.
func raiseFileLimit(t *testing.T, n uint64) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("getrlimit: %v", err)
	}
	if lim.Cur >= n {
		return
	}
	if lim.Max < n {
		t.Skipf("RLIMIT_NOFILE hard limit %d is under the %d this test needs", lim.Max, n)
	}
	lim.Cur = n
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("raising RLIMIT_NOFILE to %d: %v", n, err)
	}
}
