package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/doozerfs/doozerfs/mount"
	"github.com/doozerfs/doozerfs/replica"
	"github.com/doozerfs/doozerfs/replica/web"
)

// mountFlags are the flags of a mount, shared by `serve --mount` and
// `mount`.
type mountFlags struct {
	root       string
	ro         bool
	uid, gid   int
	fileMode   string
	dirMode    string
	allowOther bool
}

func (m *mountFlags) register(f *flag.FlagSet, prefix string) {
	f.StringVar(&m.root, prefix+"root", "/", "store directory shown at the mount's root")
	f.BoolVar(&m.ro, prefix+"ro", false, "mount read-only")
	f.IntVar(&m.uid, prefix+"uid", -1, "owner of every file (default: the mounting user)")
	f.IntVar(&m.gid, prefix+"gid", -1, "group of every file (default: the mounting group)")
	f.StringVar(&m.fileMode, prefix+"file-mode", "0644", "permission bits of files (octal)")
	f.StringVar(&m.dirMode, prefix+"dir-mode", "0755", "permission bits of directories (octal)")
	f.BoolVar(&m.allowOther, prefix+"allow-other", false, "let other users use the mount")
}

func (m *mountFlags) options(log *slog.Logger, maxBody int) (mount.Options, error) {
	o := mount.DefaultOptions()
	o.Root, o.ReadOnly, o.UID, o.GID, o.AllowOther = m.root, m.ro, m.uid, m.gid, m.allowOther
	var err error
	if o.FileMode, err = parseMode(m.fileMode); err != nil {
		return o, usagef("--file-mode: %v", err)
	}
	if o.DirMode, err = parseMode(m.dirMode); err != nil {
		return o, usagef("--dir-mode: %v", err)
	}
	o.Logger = log
	if maxBody > 0 {
		o.MaxBody = maxBody
	}
	return o, nil
}

func parseMode(s string) (os.FileMode, error) {
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v > 0o777 {
		return 0, fmt.Errorf("%q is not an octal permission such as 0644", s)
	}
	return os.FileMode(v), nil
}

func newLogger(e *env, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("--log-level: %v", err)
	}
	return slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: l})), nil
}

func init() {
	register("serve", &command{
		usage: "[--addr A] [--data DIR] [--name N] [--mount DIR] [--http A] ...",
		help:  "run a replica (and a mount of it, and the web view)",
		run:   runServe,
	})
	register("mount", &command{
		usage: "DIR [--root /sub] [--ro] [--uid U --gid G --file-mode M --dir-mode M] [--allow-other]",
		help:  "mount a cluster on a host that runs no replica",
		run:   runMount,
	})
}

func runServe(ctx context.Context, e *env, args []string) error {
	cfg := replica.DefaultConfig()
	host, _ := os.Hostname()
	f := flag.NewFlagSet("serve", flag.ContinueOnError)
	f.StringVar(&cfg.Addr, "addr", cfg.Addr, "TCP address for clients and peers")
	f.StringVar(&cfg.DataDir, "data", cfg.DataDir, "data directory (WAL, snapshots, identity)")
	f.StringVar(&cfg.Name, "name", host, "this replica's name in the cluster")
	f.StringVar(&cfg.Cluster, "cluster", cfg.Cluster, "the cluster's name")
	f.StringVar(&cfg.Advertise, "advertise", "", "address the other replicas reach this one at (default: --addr)")
	f.BoolVar(&cfg.GossipFast, "gossip-fast", false, "short gossip timings for clusters on one host (tests): a dead replica is noticed in about a second")
	join := f.String("join", "", "addresses of members of the cluster to join, comma-separated (none: found a new cluster on an empty data dir)")
	f.IntVar(&cfg.Voters, "voters", cfg.Voters, "voters to keep when enough members are healthy: 1, 3, 5 or 7")
	f.DurationVar(&cfg.DeadTimeout, "dead-timeout", cfg.DeadTimeout, "replace or remove a voter gossip has reported dead this long")
	gossipKey := f.String("gossip-key", e.getenv("DOOZERFS_GOSSIP_KEY"), "base64 key (16, 24 or 32 bytes) encrypting gossip; or NEW,OLD,...: the first encrypts, all are accepted, to rotate keys one replica at a time; \"secret\" names the key derived from --secret (env DOOZERFS_GOSSIP_KEY; default: derived from --secret, if set)")
	f.IntVar(&cfg.History, "history", cfg.History, "revisions kept readable for WAIT, WATCH and reads at a past revision")
	f.Int64Var(&cfg.HistoryBytes, "history-bytes", cfg.HistoryBytes, "bytes those revisions may keep in memory (superseded bodies and per-event costs); the oldest go sooner past it (0: no byte bound)")
	f.IntVar(&cfg.MaxBody, "max-body", cfg.MaxBody, "largest file body in bytes")
	f.DurationVar(&cfg.WriteTimeout, "write-timeout", cfg.WriteTimeout, "answer a write TIMEOUT after this long")
	f.Uint64Var(&cfg.SnapshotEvery, "snapshot-every", cfg.SnapshotEvery, "log slots between snapshots")
	f.Int64Var(&cfg.SnapshotBytes, "snapshot-bytes", cfg.SnapshotBytes, "also snapshot once this many bytes of writes were applied since the last snapshot (0: slots only)")
	f.StringVar(&cfg.Secret, "secret", e.getenv("DOOZERFS_SECRET"), "read-write secret (env DOOZERFS_SECRET)")
	f.StringVar(&cfg.ROSecret, "ro-secret", e.getenv("DOOZERFS_RO_SECRET"), "read-only secret (env DOOZERFS_RO_SECRET)")
	f.BoolVar(&cfg.Repair, "repair", false, "start past damage in the WAL or a snapshot, keeping a copy of the damaged file")
	var tlsCert, tlsKey, tlsCA, tlsPeerName string
	f.StringVar(&tlsCert, "tls-cert", "", "PEM certificate: serve TLS, and present it to the other replicas")
	f.StringVar(&tlsKey, "tls-key", "", "PEM key of --tls-cert")
	f.StringVar(&tlsCA, "tls-ca", "", "PEM CA: require client and peer certificates signed by it, and verify the other replicas' against it (default: the system's roots)")
	f.StringVar(&tlsPeerName, "tls-peer-name", "", "name to verify in the other replicas' certificates (default: the host of the address dialled, usually an IP)")
	f.IntVar(&cfg.MaxConns, "max-conns", cfg.MaxConns, "most connections open at once (clients, peers, gossip); more are closed at once")
	f.IntVar(&cfg.MaxInflight, "max-inflight", cfg.MaxInflight, "most requests in flight on one client connection")
	f.IntVar(&cfg.MaxInflightBytes, "max-inflight-bytes", cfg.MaxInflightBytes, "most bytes of requests in flight on one client connection; past it the replica stops reading the connection until some end")
	f.IntVar(&cfg.MaxWatches, "max-watches", cfg.MaxWatches, "most WATCH and WAIT requests open on one client connection")
	f.DurationVar(&cfg.HelloTimeout, "hello-timeout", cfg.HelloTimeout, "close a new connection that has not finished TLS and HELLO within this long")
	f.DurationVar(&cfg.IdleTimeout, "idle-timeout", cfg.IdleTimeout, "close a client connection with nothing in flight that sent nothing for this long")
	f.DurationVar(&cfg.SendTimeout, "send-timeout", cfg.SendTimeout, "close a client connection that has not read what the replica sent for this long")
	mountDir := f.String("mount", "", "mount the replica's tree at this directory")
	f.DurationVar(&cfg.SessionTTL, "session-ttl", cfg.SessionTTL, "TTL of the mount's session lease: ephemeral files vanish this long after the replica dies")
	var mf mountFlags
	mf.register(f, "mount-")
	level := f.String("log-level", "info", "log level: debug, info, warn, error")
	logFormat := f.String("log-format", "text", "log format: text or json")
	httpAddr := f.String("http", "", "serve the web view, the JSON API and /metrics on this address (docs/http.md)")
	pprofOn := f.Bool("pprof", false, "with --http, serve /debug/pprof/ too")
	httpMaxConns := f.Int("http-max-conns", web.DefaultMaxConns, "with --http, most HTTP connections open at once; more are closed at once (plain HTTP: after a 503)")
	pos, err := parseInterspersed(f, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("serve takes no arguments, got %q", pos)
	}
	if *pprofOn && *httpAddr == "" {
		return usagef("--pprof needs --http")
	}
	if *httpMaxConns < 1 {
		return usagef("--http-max-conns %d: want 1 or more", *httpMaxConns)
	}
	if *httpAddr == "" && flagSet(f, "http-max-conns") {
		return usagef("--http-max-conns needs --http")
	}
	log, err := newServeLogger(e, *level, *logFormat)
	if err != nil {
		return err
	}
	cfg.Logger = log
	cfg.Version = Version
	cfg.Join = splitList(*join)
	if *gossipKey != "" {
		keys, err := parseGossipKeys(*gossipKey, cfg.Secret)
		if err != nil {
			return usagef("--gossip-key: %v", err)
		}
		cfg.GossipKey, cfg.OtherGossipKeys = keys[0], keys[1:]
	}
	if tlsCert != "" || tlsKey != "" {
		tc, pc, err := serverTLS(tlsCert, tlsKey, tlsCA, tlsPeerName)
		if err != nil {
			return usagef("%v", err)
		}
		cfg.TLS, cfg.PeerTLS = tc, pc
	} else if tlsCA != "" || tlsPeerName != "" {
		return usagef("--tls-ca and --tls-peer-name need --tls-cert and --tls-key")
	}
	tf, powerLoss, err := testFaults(e) // DOOZERFS_TEST_FAULTS: the chaos harness only
	if err != nil {
		return err
	}
	cfg.TestFaults = tf
	r, err := replica.Open(cfg)
	if err != nil {
		return err
	}
	defer r.Close()
	if powerLoss {
		defer armPowerLoss(r, log)()
	}
	fmt.Fprintf(e.stderr, "doozerfs: replica %s serving on %s, data in %s\n", cfg.Name, r.Addr(), cfg.DataDir)
	if *httpAddr != "" {
		url, stop, err := startHTTP(*httpAddr, r, cfg.TLS, *pprofOn, *httpMaxConns, log)
		if err != nil {
			return err
		}
		defer stop()
		fmt.Fprintf(e.stderr, "doozerfs: web view and HTTP API at %s\n", url)
	}
	var m *mount.Mounted
	if *mountDir != "" {
		opts, err := mf.options(log, cfg.MaxBody)
		if err != nil {
			return err
		}
		opts.Observe = r.ObserveFUSE
		waitCaughtUp(ctx, r, log)
		m, err = mount.Mount(*mountDir, r, opts)
		if err != nil {
			return fmt.Errorf("mount %s: %w", *mountDir, err)
		}
		defer m.Close()
		fmt.Fprintf(e.stderr, "doozerfs: mounted at %s\n", *mountDir)
	}
	var mdone <-chan struct{}
	if m != nil {
		mdone = m.Done()
	}
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case <-r.Done():
		if err := r.Err(); err != nil {
			return err
		}
	case <-mdone:
		log.Warn("the mount was unmounted from outside; the replica goes on serving")
		select {
		case <-ctx.Done():
		case <-r.Done():
		}
	}
	if m != nil {
		if err := m.Close(); err != nil {
			log.Warn("unmount", "err", err)
		}
	}
	return r.Close()
}

// flagSet reports whether the flag name was given.
func flagSet(f *flag.FlagSet, name string) (set bool) {
	f.Visit(func(fl *flag.Flag) { set = set || fl.Name == name })
	return set
}

// parseGossipKeys parses --gossip-key: keys separated by commas, each
// base64 of 16, 24 or 32 bytes or the word "secret" for the key derived
// from secret. The first encrypts gossip; all are accepted.
func parseGossipKeys(list, secret string) ([][]byte, error) {
	var keys [][]byte
	for i, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		var k []byte
		switch s {
		case "":
			return nil, fmt.Errorf("key %d is empty (keys are separated by single commas)", i+1)
		case "secret":
			if secret == "" {
				return nil, fmt.Errorf("key %d: \"secret\" names the key derived from --secret, but there is no --secret", i+1)
			}
			k = replica.GossipKeyFromSecret(secret)
		default:
			var err error
			if k, err = base64.StdEncoding.DecodeString(s); err != nil {
				return nil, fmt.Errorf("key %d: not base64: %v", i+1, err)
			}
			if n := len(k); n != 16 && n != 24 && n != 32 {
				return nil, fmt.Errorf("key %d: %d bytes; want 16, 24 or 32 (openssl rand -base64 32)", i+1, n)
			}
		}
		for j, o := range keys {
			if bytes.Equal(o, k) {
				return nil, fmt.Errorf("key %d is key %d again", i+1, j+1)
			}
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// mountCatchUp bounds how long serve --mount waits for its replica to
// apply what the cluster has committed before it mounts anyway.
const mountCatchUp = 5 * time.Second

// waitCaughtUp waits, up to mountCatchUp, until r has applied everything
// the cluster committed, so that the mount never shows an older state
// than this host had acknowledged before a crash: a restarted replica
// recovers only up to the commit point its WAL recorded, and applies the
// rest once a leader confirms it.
func waitCaughtUp(ctx context.Context, r *replica.Replica, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, mountCatchUp)
	defer cancel()
	for {
		err := r.WaitConsistent(ctx)
		if err == nil {
			return
		}
		select { // no leader yet: ask again
		case <-ctx.Done():
			log.Warn("mounting before the replica caught up with the cluster", "rev", r.Tree().Rev(), "err", err)
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// serverTLS returns the TLS configurations of serve --tls-cert: server for
// the connections the replica accepts (with a CA, every dialler must
// present a certificate the CA signed: mutual TLS for peers, gossip and
// clients alike), and peer for those it dials to the other replicas (it
// presents the same certificate and verifies theirs against the CA, or the
// system's roots without one, for peerName or else the host dialled).
func serverTLS(cert, key, ca, peerName string) (server, peer *tls.Config, err error) {
	if cert == "" || key == "" {
		return nil, nil, errors.New("--tls-cert and --tls-key go together")
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, nil, fmt.Errorf("loading --tls-cert/--tls-key: %w", err)
	}
	server = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	peer = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12, ServerName: peerName}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, nil, fmt.Errorf("reading --tls-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("--tls-ca %s: no PEM certificate in it", ca)
		}
		server.ClientCAs, server.ClientAuth = pool, tls.RequireAndVerifyClientCert
		peer.RootCAs = pool
	}
	return server, peer, nil
}

func runMount(ctx context.Context, e *env, args []string) error {
	fset, cf := newClientFlags(e, "mount")
	var mf mountFlags
	mf.register(fset, "")
	level := fset.String("log-level", "info", "log level: debug, info, warn, error")
	sessionTTL := fset.Duration("session-ttl", 10*time.Second, "TTL of the mount's session lease: ephemeral files vanish this long after this process dies")
	pos, err := parseInterspersed(fset, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("mount takes one directory")
	}
	log, err := newLogger(e, *level)
	if err != nil {
		return err
	}
	opts, err := mf.options(log, 0)
	if err != nil {
		return err
	}
	dctx, cancel := context.WithTimeout(ctx, max(cf.timeout, time.Second))
	c, err := cf.dial(dctx)
	cancel()
	if err != nil {
		return err
	}
	defer c.Close()
	mirror, err := mount.NewMirror(ctx, c, mount.MirrorOptions{Root: opts.Root, LeaseTTL: *sessionTTL, Logger: log})
	if err != nil {
		return err
	}
	defer mirror.Close()
	m, err := mount.Mount(pos[0], mirror, opts)
	if err != nil {
		return fmt.Errorf("mount %s: %w", pos[0], err)
	}
	fmt.Fprintf(e.stderr, "doozerfs: mounted %s at %s\n", cf.addr, pos[0])
	select {
	case <-ctx.Done():
	case <-m.Done():
	}
	return m.Close()
}
