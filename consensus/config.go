package consensus

import (
	"fmt"
	"log/slog"
)

// Config is a node's fixed configuration. Nothing in it changes after New.
// Durations are in ticks: the caller calls Tick at a steady rate (the replica
// ticks every 10 ms), and the defaults below assume that rate.
type Config struct {
	// ID is this node's id: non-zero and never reused by another node, even
	// after this one is removed.
	ID uint64

	// HeartbeatTicks is how often a leader tells its followers it is alive
	// and retransmits Accepts that were not acknowledged. Default 10 (100 ms).
	HeartbeatTicks int
	// ElectionTicks is the shortest election timeout: a voter that has heard
	// no leader for this long may poll for a new one, and a voter that has
	// heard a leader more recently refuses such polls (stickiness). Also how
	// often a leader checks that a quorum still answers it. Default 50 (500 ms).
	ElectionTicks int
	// ElectionJitterTicks widens the timeout: each follower waits a random
	// time in [ElectionTicks, ElectionTicks+ElectionJitterTicks). Default 40,
	// so [500, 900) ms: a new leader commits within about 1 s of the old
	// leader's last heartbeat.
	ElectionJitterTicks int
	// RetryTicks is how long a node waits before it repeats a catch-up
	// request or a Prepare to a new member, and how long a forwarded proposal
	// waits for its slot before the origin sends it again. Default 50.
	RetryTicks int
	// SnapshotTicks is how long a leader waits for a follower to install a
	// snapshot it asked the caller to send before asking again. Default 3000.
	SnapshotTicks int

	// MaxInflightSlots bounds the pipeline of batches: a new batch of values
	// gets a slot only while fewer than this many slots are proposed and not
	// yet chosen; meanwhile values queue and the next batch grows. A full
	// batch (MaxBatchCount values or MaxBatchBytes bytes), recovered slots,
	// no-ops and membership changes may use the whole Alpha window.
	// At most Alpha. Default Alpha (replica uses a small window: see
	// docs/consensus.md §3.4).
	MaxInflightSlots int
	// MaxBatchBytes bounds the bytes of values in one slot (a single larger
	// value still gets a slot of its own). Default 256 KiB.
	MaxBatchBytes int
	// MaxBatchCount bounds the values in one slot. 1 turns batching off.
	// Default 4096.
	MaxBatchCount int
	// MaxPending bounds this node's proposals that are not yet seen chosen,
	// and a leader's queue of values waiting for a slot. Propose returns
	// ErrBusy beyond it. Default 65536.
	MaxPending int
	// MaxMsgBytes bounds the entry bytes of one Catchup or retransmitted
	// Accept message (at least one entry is always sent). Default 1 MiB.
	MaxMsgBytes int

	// Seed seeds this node's random source (election jitter only).
	Seed uint64
	// Logger receives one line per event an operator cares about (leadership,
	// membership, snapshots). Nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns the defaults for a node with the given id.
func DefaultConfig(id uint64) Config {
	return Config{
		ID:                  id,
		HeartbeatTicks:      10,
		ElectionTicks:       50,
		ElectionJitterTicks: 40,
		RetryTicks:          50,
		SnapshotTicks:       3000,
		MaxInflightSlots:    Alpha,
		MaxBatchBytes:       256 << 10,
		MaxBatchCount:       4096,
		MaxPending:          1 << 16,
		MaxMsgBytes:         1 << 20,
	}
}

func (c *Config) validate() error {
	switch {
	case c.ID == 0:
		return fmt.Errorf("consensus: Config.ID must be non-zero")
	case c.HeartbeatTicks <= 0:
		return fmt.Errorf("consensus: Config.HeartbeatTicks must be positive")
	case c.ElectionTicks <= c.HeartbeatTicks:
		return fmt.Errorf("consensus: Config.ElectionTicks (%d) must exceed HeartbeatTicks (%d)", c.ElectionTicks, c.HeartbeatTicks)
	case c.ElectionJitterTicks <= 0:
		return fmt.Errorf("consensus: Config.ElectionJitterTicks must be positive")
	case c.RetryTicks <= 0 || c.SnapshotTicks <= 0:
		return fmt.Errorf("consensus: Config.RetryTicks and SnapshotTicks must be positive")
	case c.MaxInflightSlots <= 0 || c.MaxInflightSlots > Alpha:
		return fmt.Errorf("consensus: Config.MaxInflightSlots must be in [1, %d]", Alpha)
	case c.MaxBatchBytes <= 0 || c.MaxBatchCount <= 0 || c.MaxPending <= 0 || c.MaxMsgBytes <= 0:
		return fmt.Errorf("consensus: Config batch and size limits must be positive")
	}
	return nil
}
