package main

// End-to-end tests of the security flags of serve and of the client
// commands (docs/security.md), with the real binary: the certificate
// commands of docs/security.md run as written, three serve processes with
// mutual TLS, secrets from the environment and gossip encryption form a
// cluster, and the CLI gets in only with what it should.

import (
	"net"
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
	cmd    *exec.Cmd
	out    *syncBuffer
	exited chan struct{}
}

// startSecServer runs serve with args and env on a free port of
// 127.0.0.1, retrying if the port is taken, and stops it at the end.
func startSecServer(t *testing.T, env []string, args ...string) *secServer {
	t.Helper()
	for attempt := 1; ; attempt++ {
		s := &secServer{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t))), out: new(syncBuffer), exited: make(chan struct{})}
		s.cmd = exec.Command(binary(t), append([]string{"serve", "--addr", s.addr, "--data", t.TempDir(), "--gossip-fast"}, args...)...)
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
				s.cmd.Process.Signal(os.Interrupt)
				select {
				case <-s.exited:
				case <-time.After(stopBound):
					s.cmd.Process.Kill()
					<-s.exited
				}
				if out := s.out.String(); t.Failed() || strings.Contains(out, "DATA RACE") {
					t.Logf("server %s:\n%s", s.addr, out)
				}
			})
			return s
		}
		s.cmd.Process.Kill()
		<-s.exited
		if !strings.Contains(s.out.String(), "address already in use") || attempt == 5 {
			t.Fatalf("serve %v did not start:\n%s", args, s.out.String())
		}
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
	startSecServer(t, []string{"DOOZERFS_SECRET=another"}, append([]string{"--name", "intruder", "--join", s1.addr}, tlsArgs...)...)
	time.Sleep(2 * time.Second) // the window in which it would join (fast gossip)
	if m := cli("", "members", "--secret", secret); m.code != 0 || strings.Contains(m.stdout, "intruder") {
		t.Errorf("a replica with another secret joined: %v", m)
	}
}

// TestE2ESecurityFlagUsage: the security flags of serve refuse what
// cannot work, as usage errors.
func TestE2ESecurityFlagUsage(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"--gossip-key", "c2hvcnQ="}, // 5 bytes
		{"--gossip-key", "not base64!"},
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
