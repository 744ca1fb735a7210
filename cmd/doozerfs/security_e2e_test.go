package main

// End-to-end tests of the security flags of serve and of the client
// commands (docs/security.md), with the real binary: the certificate
// commands of docs/security.md run as written, three serve processes with
// mutual TLS, secrets from the environment and gossip encryption form a
// cluster, and the CLI gets in only with what it should.

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/doozerfs/doozerfs/fs"
)

// docScript returns the first ```sh block after heading in docs/security.md.
func docScript(t *testing.T, heading string) string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "security.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "\n"+heading+"\n")
	if !ok {
		t.Fatalf("docs/security.md has no heading %q", heading)
	}
	_, rest, ok = strings.Cut(rest, "```sh\n")
	if !ok {
		t.Fatalf("no sh block under %q", heading)
	}
	script, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatalf("unterminated sh block under %q", heading)
	}
	return script
}

// secServer is one serve process of these tests.
type secServer struct {
	addr   string
	data   string
	cmd    *exec.Cmd
	out    *syncBuffer
	exited chan struct{}
}

// startSecServer runs serve with args and env on a free port of
// 127.0.0.1, retrying if the port is taken, and stops it at the end.
func startSecServer(t *testing.T, env []string, args ...string) *secServer {
	t.Helper()
	return startSecServerAt(t, "", "", env, args...)
}

// startSecServerAt is startSecServer on addr with data dir data (for a
// restart; "" for a free port and a new directory).
func startSecServerAt(t *testing.T, addr, data string, env []string, args ...string) *secServer {
	t.Helper()
	if data == "" {
		data = t.TempDir()
	}
	for attempt := 1; ; attempt++ {
		s := &secServer{addr: addr, data: data, out: new(syncBuffer), exited: make(chan struct{})}
		if s.addr == "" {
			s.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
		}
		s.cmd = exec.Command(binary(t), append([]string{"serve", "--addr", s.addr, "--data", data, "--gossip-fast"}, args...)...)
		s.cmd.Env = childEnv(env...)
		s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
		if err := s.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { s.cmd.Wait(); close(s.exited) }()
		deadline := time.Now().Add(startBound)
		for !strings.Contains(s.out.String(), "serving on "+s.addr) && time.Now().Before(deadline) {
			select {
			case <-s.exited:
				deadline = time.Time{}
			case <-time.After(10 * time.Millisecond): // polling the banner, bounded by deadline
			}
		}
		if strings.Contains(s.out.String(), "serving on "+s.addr) {
			t.Cleanup(func() {
				s.stop()
				if out := s.out.String(); t.Failed() || strings.Contains(out, "DATA RACE") {
					t.Logf("server %s:\n%s", s.addr, out)
				}
			})
			return s
		}
		s.cmd.Process.Kill()
		<-s.exited
		if !strings.Contains(s.out.String(), "address already in use") || attempt == 5 || addr != "" {
			t.Fatalf("serve %v did not start:\n%s", args, s.out.String())
		}
	}
}

// stop ends the server with SIGINT (SIGKILL after stopBound) and waits
// for it. It may be called more than once.
func (s *secServer) stop() {
	select {
	case <-s.exited:
		return
	default:
	}
	s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.exited:
	case <-time.After(stopBound):
		s.cmd.Process.Kill()
		<-s.exited
	}
}

func TestE2ESecurityDocCommands(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("no openssl")
	}
	dir := t.TempDir()
	gen := exec.Command("sh", "-e", "-c", docScript(t, "## Generating certificates"))
	gen.Dir = dir
	if out, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("the certificate commands of docs/security.md failed: %v\n%s", err, out)
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	file := func(name string) string { return filepath.Join(dir, name) }
	secret, roSecret, gossipKey := read("secret"), read("ro-secret"), read("gossip-key")
	// The three replicas share r1's certificate: it names 127.0.0.1.
	env := []string{"DOOZERFS_SECRET=" + secret, "DOOZERFS_RO_SECRET=" + roSecret, "DOOZERFS_GOSSIP_KEY=" + gossipKey}
	tlsArgs := []string{"--tls-cert", file("r1.crt"), "--tls-key", file("r1.key"), "--tls-ca", file("ca.crt")}
	s1 := startSecServer(t, env, append([]string{"--name", "n1"}, tlsArgs...)...)
	for _, n := range []string{"n2", "n3"} {
		startSecServer(t, env, append([]string{"--name", n, "--join", s1.addr}, tlsArgs...)...)
	}
	client := []string{"--tls-ca", file("ca.crt"), "--tls-cert", file("client.crt"), "--tls-key", file("client.key")}
	cli := func(stdin string, args ...string) result {
		return dz(t, []string{"DOOZERFS_ADDR=" + s1.addr}, stdin, append(args, client...)...)
	}
	voters := func() int {
		r := cli("", "members", "--secret", secret)
		return strings.Count(r.stdout, " voter ")
	}
	deadline := time.Now().Add(60 * time.Second)
	for voters() != 3 {
		if time.Now().After(deadline) {
			t.Fatalf("no cluster of 3 voters: %v", cli("", "members", "--secret", secret))
		}
		time.Sleep(100 * time.Millisecond) // polling the membership, bounded by deadline
	}
	if r := cli("over TLS", "set", "/doc", "-1", "--secret", secret); r.code != 0 {
		t.Fatalf("set with the secret: %v", r)
	}
	if r := cli("", "get", "/doc", "--consistent", "--secret", roSecret); r.code != 0 || r.stdout != "over TLS" {
		t.Errorf("get with the read-only secret: %v", r)
	}
	refused(t, cli("x", "set", "/doc", "-1", "--secret", roSecret), fs.KindPermission)
	refused(t, cli("", "get", "/doc"), fs.KindPermission)
	// Without TLS: a refusal that says so.
	plain := dz(t, []string{"DOOZERFS_ADDR=" + s1.addr, "DOOZERFS_SECRET=" + secret}, "", "get", "/doc")
	refused(t, plain, fs.KindBadRequest)
	if !strings.Contains(plain.stderr, "TLS connections only") {
		t.Errorf("a plain client is not told to use TLS: %v", plain)
	}
	// Trusting the CA but without a client certificate: refused by TLS.
	r := dz(t, []string{"DOOZERFS_ADDR=" + s1.addr, "DOOZERFS_SECRET=" + secret}, "", "get", "/doc", "--tls-ca", file("ca.crt"))
	if r.code == 0 || !strings.Contains(r.stderr, "certificate required") {
		t.Errorf("a client without a certificate: %v", r)
	}
	// A replica with the certificates but another secret cannot join.
	intruder := startSecServer(t, []string{"DOOZERFS_SECRET=another"}, append([]string{"--name", "intruder", "--join", s1.addr}, tlsArgs...)...)
	waitJoinRefused(t, intruder)
	if m := cli("", "members", "--secret", secret); m.code != 0 || strings.Contains(m.stdout, "intruder") {
		t.Errorf("a replica with another secret joined: %v", m)
	}
}

// TestE2ESecurityFlagUsage: the security flags of serve refuse what
// cannot work, as usage errors.
func TestE2ESecurityFlagUsage(t *testing.T) {
	t.Parallel()
	key := base64.StdEncoding.EncodeToString(make([]byte, 16))
	for _, args := range [][]string{
		{"--gossip-key", "c2hvcnQ="}, // 5 bytes
		{"--gossip-key", "not base64!"},
		{"--gossip-key", key + ",c2hvcnQ="},
		{"--gossip-key", key + ",," + key},
		{"--gossip-key", key + "," + key},
		{"--gossip-key", "secret"}, // no --secret to derive it from
		{"--gossip-key", "secret,secret", "--secret", "s"},
		{"--http", "127.0.0.1:0", "--http-max-conns", "0"},
		{"--http-max-conns", "10"}, // without --http
		{"--tls-ca", "ca.crt"},
		{"--tls-peer-name", "x"},
		{"--tls-cert", "only.crt"},
	} {
		usage(t, dz(t, nil, "", append([]string{"serve", "--addr", "127.0.0.1:0", "--data", t.TempDir()}, args...)...))
	}
	r := dz(t, nil, "", "serve", "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--ro-secret", "r")
	if r.code == 0 || !strings.Contains(r.stderr, "read-only secret without a read-write secret") {
		t.Errorf("--ro-secret alone: %v", r)
	}
}

// TestE2EGossipKeyRotation rotates the gossip key of a cluster of three
// serve processes one replica at a time, as docs/security.md ("Rotating
// keys") says: from the key derived from the secret to a new one, adding
// it (secret,NEW), making it primary (NEW,secret), then dropping the old
// (NEW). After each restart every replica sees the other two alive
// through gossip, and the cluster takes writes while a replica is down
// and through the restarted one. A replica with only the old key cannot
// join the cluster afterwards.
func TestE2EGossipKeyRotation(t *testing.T) {
	t.Parallel()
	secret := randomB64(t, 32)
	newKey := randomB64(t, 32)
	env := []string{"DOOZERFS_SECRET=" + secret}
	common := []string{"--dead-timeout", "5m"} // a restart is never taken for a death
	names := []string{"r1", "r2", "r3"}
	reps := make([]*secServer, 3)
	reps[0] = startSecServer(t, env, append([]string{"--name", names[0]}, common...)...)
	for i := 1; i < 3; i++ {
		reps[i] = startSecServer(t, env, append([]string{"--name", names[i], "--join", reps[0].addr}, common...)...)
	}
	cli := func(addrs []string, stdin string, args ...string) result {
		return dz(t, []string{"DOOZERFS_ADDR=" + strings.Join(addrs, ","), "DOOZERFS_SECRET=" + secret}, stdin, args...)
	}
	// allAlive waits until every replica lists the three as voters that
	// gossip shows alive.
	allAlive := func(what string) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			ok := true
			var last result
			for _, r := range reps {
				last = cli([]string{r.addr}, "", "members")
				alive := 0
				for _, l := range strings.Split(last.stdout, "\n") {
					if f := strings.Fields(l); len(f) >= 5 && f[3] == "voter" && f[4] == "alive" {
						alive++
					}
				}
				if last.code != 0 || alive != 3 || strings.Count(last.stdout, "\n") != 4 {
					ok = false
					break
				}
			}
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the replicas do not all see three voters alive:\n%v", what, last)
			}
			time.Sleep(100 * time.Millisecond) // polling the membership, bounded by deadline
		}
	}
	allAlive("start")
	written := map[string]string{}
	write := func(addrs []string, path string) {
		t.Helper()
		if r := cli(addrs, path, "set", path, "-1"); r.code != 0 {
			t.Fatalf("writing %s through %v: %v", path, addrs, r)
		}
		written[path] = path
	}
	for step, keys := range []string{"secret," + newKey, newKey + ",secret", newKey} {
		for i := range reps {
			reps[i].stop()
			var others []string
			for j, r := range reps {
				if j != i {
					others = append(others, r.addr)
				}
			}
			write(others, fmt.Sprintf("/rot/%d/%s-down", step, names[i]))
			reps[i] = startSecServerAt(t, reps[i].addr, reps[i].data, env,
				append([]string{"--name", names[i], "--gossip-key", keys}, common...)...)
			allAlive(fmt.Sprintf("step %d, %s restarted with --gossip-key %s", step+1, names[i], keys))
			write([]string{reps[i].addr}, fmt.Sprintf("/rot/%d/%s-up", step, names[i]))
		}
	}
	for _, r := range reps {
		for p, want := range written {
			if got := cli([]string{r.addr}, "", "get", p, "--consistent"); got.code != 0 || got.stdout != want {
				t.Errorf("%s on %s: %v", p, r.addr, got)
			}
		}
	}
	// all_alive of docs/security.md agrees: true now, false with a
	// replica down.
	var hosts []string
	for _, r := range reps {
		hosts = append(hosts, r.addr)
	}
	if out, err := docAllAlive(t, hosts, secret); err != nil {
		t.Errorf("all_alive of docs/security.md: %v\n%s", err, out)
	}
	reps[2].stop()
	if out, err := docAllAlive(t, hosts, secret); err == nil {
		t.Errorf("all_alive of docs/security.md with a replica stopped succeeded:\n%s", out)
	}
	reps[2] = startSecServerAt(t, reps[2].addr, reps[2].data, env,
		append([]string{"--name", names[2], "--gossip-key", newKey}, common...)...)
	allAlive("r3 restarted")
	// The old key alone (derived from the same secret) no longer gets in:
	// its join is refused; the members stay three.
	old := startSecServer(t, env, append([]string{"--name", "old", "--join", reps[0].addr}, common...)...)
	waitJoinRefused(t, old)
	allAlive("with a replica holding the old key")
	for _, r := range reps {
		if m := cli([]string{r.addr}, "", "members"); m.code != 0 || strings.Contains(m.stdout, "old") {
			t.Errorf("a replica with the old key joined: %v", m)
		}
	}
}

// waitJoinRefused waits until s, started with --join, has logged twice
// that it reached no member (its join loop's retries), and fails the test
// if it logs that it joined.
func waitJoinRefused(t *testing.T, s *secServer) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(s.out.String(), "cannot reach any member yet") < 2 {
		if strings.Contains(s.out.String(), "joined gossip") {
			t.Fatalf("%s joined:\n%s", s.addr, s.out.String())
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not report its join refused:\n%s", s.addr, s.out.String())
		}
		time.Sleep(50 * time.Millisecond) // polling its log, bounded by deadline
	}
	if strings.Contains(s.out.String(), "joined gossip") {
		t.Fatalf("%s joined:\n%s", s.addr, s.out.String())
	}
}

// docAllAlive runs the shell function all_alive of docs/security.md
// ("Rotating keys") on hosts, with the binary first in PATH.
func docAllAlive(t *testing.T, hosts []string, secret string) (string, error) {
	t.Helper()
	script := docScript(t, "### The gossip key, one replica at a time")
	start := strings.Index(script, "all_alive() {")
	end := strings.Index(script, "\n}\n")
	if start < 0 || end < start {
		t.Fatalf("no all_alive function in the script:\n%s", script)
	}
	cmd := exec.Command("sh", "-e", "-c", "hosts='"+strings.Join(hosts, " ")+"'\n"+script[start:end+3]+"all_alive\n")
	cmd.Env = childEnv("DOOZERFS_SECRET="+secret, "PATH="+filepath.Dir(binary(t))+":"+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// randomB64 returns n random bytes in base64.
func randomB64(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// TestE2EHTTPMaxConns: serve --http-max-conns bounds the HTTP port's
// connections; one over the limit is answered 503 and closed, and a client
// already connected goes on being answered.
func TestE2EHTTPMaxConns(t *testing.T) {
	t.Parallel()
	s := startSecServer(t, nil, "--name", "h1", "--http", "127.0.0.1:0", "--http-max-conns", "2")
	var base string
	deadline := time.Now().Add(startBound)
	for {
		if _, rest, ok := strings.Cut(s.out.String(), "HTTP API at "); ok {
			base, _, _ = strings.Cut(rest, "\n")
			base = strings.TrimSuffix(base, "/")
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no HTTP address in the output:\n%s", s.out.String())
		}
		time.Sleep(10 * time.Millisecond) // polling the banner, bounded by deadline
	}
	good := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}, Timeout: runBound}
	defer good.CloseIdleConnections()
	status := func() int {
		t.Helper()
		resp, err := good.Get(base + "/v1/status")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := status(); st != 200 {
		t.Fatalf("status: %d", st)
	}
	idle, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	for range 5 {
		c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(runBound)) // a bound, not a measure
		b, err := io.ReadAll(c)
		c.Close()
		if err != nil || !strings.HasPrefix(string(b), "HTTP/1.1 503 ") {
			t.Fatalf("a connection over the limit: %q, %v", b, err)
		}
		if st := status(); st != 200 {
			t.Fatalf("status while full: %d", st)
		}
	}
}
