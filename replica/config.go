package replica

import (
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/doozerfs/doozerfs/fs"
)

// Config configures a replica. Start from DefaultConfig.
type Config struct {
	// Name is the replica's name in the cluster (default: the host name).
	Name string
	// Addr is the TCP address to listen on for clients and peers.
	Addr string
	// DataDir holds the WAL, the snapshots and the replica's identity.
	DataDir string
	// Cluster is the cluster's name; HELLO from another cluster is refused.
	Cluster string
	// Advertise is the address other replicas reach this one at, when it
	// differs from Addr (Addr binds 0.0.0.0, or sits behind NAT).
	Advertise string
	// Join lists addresses of members of an existing cluster. A replica
	// with an empty data directory and no Join founds a new cluster.
	Join []string
	// Voters is how many voters the leader keeps when enough healthy
	// members exist: 1, 3, 5 or 7.
	Voters int
	// DeadTimeout is how long a voter may be reported dead by gossip
	// before the leader replaces or removes it.
	DeadTimeout time.Duration
	// GossipKey, if set (16, 24 or 32 bytes), encrypts and authenticates
	// gossip. When it is empty and Secret is set, gossip is encrypted with
	// a key derived from Secret, so that a host without the secret can
	// neither join nor forge gossip (see gossipKey).
	GossipKey []byte
	// OtherGossipKeys are further keys gossip is accepted under, besides
	// the key gossip is encrypted with (GossipKey, or the one derived from
	// Secret): memberlist's keyring, for rotating keys one replica at a
	// time (docs/security.md, "Rotating keys").
	OtherGossipKeys [][]byte
	// Gossip tunes memberlist's timings (nil: LAN defaults). For tests.
	GossipFast bool

	// History is how many revisions stay readable (WAIT, WATCH, GET --rev).
	History int
	// HistoryBytes bounds what those revisions keep in memory (the bodies
	// they superseded and a little per event, fs.Config.HistoryBytes):
	// past it the oldest stop being readable (TOO_LATE) sooner. Zero or
	// less: no byte bound, only History.
	HistoryBytes int64
	// MaxBody is the largest file body in bytes; bigger writes are TOO_BIG.
	MaxBody int
	// WriteTimeout bounds how long a write waits to be committed before it
	// is answered TIMEOUT (its outcome then unknown).
	WriteTimeout time.Duration
	// NoLeaderGrace is how long a write waits for a leader to be known
	// before it is answered READONLY (nothing was proposed).
	NoLeaderGrace time.Duration
	// SnapshotEvery is how many slots are applied between snapshots.
	SnapshotEvery uint64
	// SnapshotBytes also starts a snapshot once the values applied since
	// the last one add up to this many bytes, so that the log kept in
	// memory until the snapshot compacts it stays bounded whatever the
	// size of the writes. Zero or less: slots only.
	SnapshotBytes int64
	// Tick is the consensus clock's period.
	Tick time.Duration
	// SessionTTL is the TTL of the session lease that a mount's ephemeral
	// files are bound to (user.doozerfs.ephemeral): they vanish about this
	// long after the replica dies.
	SessionTTL time.Duration

	// Secret and ROSecret are the read-write and read-only tokens; empty
	// Secret lets anyone read and write.
	Secret, ROSecret string
	// TLS, if set, wraps every accepted connection.
	TLS *tls.Config
	// PeerTLS, if set, is used to dial other replicas.
	PeerTLS *tls.Config

	// Repair lets start-up keep a copy of a damaged WAL segment or snapshot
	// and go on from the last good record.
	Repair bool

	// MaxConns bounds open connections; more are closed at once.
	MaxConns int
	// MaxInflight bounds the requests in flight on one connection.
	MaxInflight int
	// MaxInflightBytes bounds the bytes (bodies and paths) of the requests
	// in flight on one connection: past it, the replica reads no more
	// from the connection until some of them end.
	MaxInflightBytes int
	// MaxWatches bounds the WATCH and WAIT requests open on one connection.
	MaxWatches int
	// HelloTimeout bounds the wait for HELLO on a new connection.
	HelloTimeout time.Duration
	// IdleTimeout closes a client connection with nothing in flight that
	// has sent nothing for this long.
	IdleTimeout time.Duration
	// SendTimeout closes a client connection that has not taken a
	// response off the network for this long (a reader that stopped
	// reading, say under a WATCH): what was queued for it is dropped.
	SendTimeout time.Duration

	// Version is reported by SELF.
	Version string

	// Logger receives the replica's log; nil discards it.
	Logger *slog.Logger

	// TestFaults injects failures for tests (the chaos harness); nil in
	// production. See testfaults.go.
	TestFaults *TestFaults

	// disc replaces gossip in tests.
	disc discovery
	// faults cuts links between replicas in tests.
	faults *netFaults
}

// DefaultConfig returns the defaults of `doozerfs serve`.
func DefaultConfig() Config {
	return Config{
		Addr:             "127.0.0.1:8046",
		DataDir:          "data",
		Cluster:          "doozerfs",
		Voters:           3,
		DeadTimeout:      30 * time.Second,
		History:          fs.DefaultHistory,
		HistoryBytes:     256 << 20,
		MaxBody:          1 << 20,
		WriteTimeout:     10 * time.Second,
		NoLeaderGrace:    3 * time.Second,
		SnapshotEvery:    10000,
		SnapshotBytes:    64 << 20,
		Tick:             10 * time.Millisecond,
		SessionTTL:       10 * time.Second,
		MaxConns:         10000,
		MaxInflight:      4096,
		MaxInflightBytes: 16 << 20,
		MaxWatches:       1024,
		HelloTimeout:     10 * time.Second,
		IdleTimeout:      10 * time.Minute,
		SendTimeout:      30 * time.Second,
		Version:          "dev",
	}
}

func (c *Config) check() error {
	d := DefaultConfig()
	if c.DataDir == "" {
		return fmt.Errorf("replica: no data directory")
	}
	if c.Name == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			return fmt.Errorf("replica: no name, and no host name to default to")
		}
		c.Name = host
	}
	if c.Cluster == "" {
		c.Cluster = d.Cluster
	}
	switch c.Voters {
	case 0:
		c.Voters = d.Voters
	case 1, 3, 5, 7:
	default:
		return fmt.Errorf("replica: --voters %d: must be 1, 3, 5 or 7", c.Voters)
	}
	if c.DeadTimeout <= 0 {
		c.DeadTimeout = d.DeadTimeout
	}
	if c.ROSecret != "" && c.Secret == "" {
		return fmt.Errorf("replica: a read-only secret without a read-write secret protects nothing (anyone may write): set the read-write secret too")
	}
	if n := len(c.GossipKey); n != 0 && n != 16 && n != 24 && n != 32 {
		return fmt.Errorf("replica: gossip key of %d bytes: must be 16, 24 or 32", n)
	}
	for i, k := range c.OtherGossipKeys {
		if n := len(k); n != 16 && n != 24 && n != 32 {
			return fmt.Errorf("replica: other gossip key %d of %d bytes: must be 16, 24 or 32", i+1, n)
		}
	}
	if len(c.OtherGossipKeys) > 0 && len(c.gossipKey()) == 0 {
		return fmt.Errorf("replica: other gossip keys without a gossip key to encrypt with (a gossip key, or a secret to derive it from)")
	}
	if c.History <= 0 {
		c.History = d.History
	}
	if c.MaxBody <= 0 {
		c.MaxBody = d.MaxBody
	}
	if c.MaxBody > 64<<20 {
		return fmt.Errorf("replica: max body %d is over the 64 MiB ceiling", c.MaxBody)
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = d.WriteTimeout
	}
	if c.NoLeaderGrace <= 0 {
		c.NoLeaderGrace = d.NoLeaderGrace
	}
	if c.SnapshotEvery == 0 {
		c.SnapshotEvery = d.SnapshotEvery
	}
	if c.Tick <= 0 {
		c.Tick = d.Tick
	}
	if c.SessionTTL <= 0 {
		c.SessionTTL = d.SessionTTL
	}
	if c.MaxConns <= 0 {
		c.MaxConns = d.MaxConns
	}
	if c.MaxInflight <= 0 {
		c.MaxInflight = d.MaxInflight
	}
	if c.MaxInflightBytes <= 0 {
		c.MaxInflightBytes = d.MaxInflightBytes
	}
	if c.MaxWatches <= 0 {
		c.MaxWatches = d.MaxWatches
	}
	if c.HelloTimeout <= 0 {
		c.HelloTimeout = d.HelloTimeout
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = d.IdleTimeout
	}
	if c.SendTimeout <= 0 {
		c.SendTimeout = d.SendTimeout
	}
	if c.Version == "" {
		c.Version = d.Version
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// gossipKey is the key memberlist encrypts gossip with: GossipKey, else
// one derived from Secret (SHA-256 of a label and the secret), else none.
// Deriving it means that a replica's secret guards its UDP gossip as it
// guards its TCP connections: without it, anyone who can send a UDP packet
// to the port could announce a member (which the leader would then dial,
// presenting the secret) or declare real members dead.
func (c *Config) gossipKey() []byte {
	if len(c.GossipKey) > 0 || c.Secret == "" {
		return c.GossipKey
	}
	return GossipKeyFromSecret(c.Secret)
}

// GossipKeyFromSecret is the gossip key a replica derives from its
// secret when it is given none: SHA-256 of a label and the secret.
func GossipKeyFromSecret(secret string) []byte {
	k := sha256.Sum256([]byte("doozerfs gossip key v1\x00" + secret))
	return k[:]
}

// maxFrame is the frame limit of the wire protocol for this max body.
func (c *Config) maxFrame() int { return c.MaxBody + 64<<10 }
