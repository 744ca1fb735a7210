package wal

import (
	"fmt"
	"log/slog"
	"time"
)

// Defaults and limits of Options.
const (
	DefaultSegmentSize   = 64 << 20 // bytes
	DefaultMaxRecord     = 64 << 20 // bytes
	DefaultKeepSnapshots = 2

	minSegmentSize = 1 << 10 // bytes; small segments are for tests
	maxMaxRecord   = 1 << 30 // bytes; the length field is 32 bits
)

// SlowSync is how long an fdatasync may take before Sync logs a warning.
const SlowSync = time.Second

// Options configures a WAL, a SnapshotStore and a DataDir. The zero value of
// each field means its default; nothing may change after Open.
type Options struct {
	// SegmentSize is the target size of a segment file in bytes (default
	// 64 MiB, at least 1 KiB). A segment is started when the next record
	// would take the current one past it; a single record larger than that
	// gets a segment of its own.
	SegmentSize int64

	// MaxRecord is the largest record Data in bytes (default 64 MiB, at most
	// 1 GiB). Append refuses larger records, and a length field above it on
	// disk is damage: it is never used to size an allocation.
	MaxRecord int

	// NoPreallocate turns off fallocate of new segments to SegmentSize and
	// the zeros written ahead of the records (docs/storage.md §2.2). Both
	// make each fdatasync cheaper (no block allocation, no size change, no
	// unwritten extent to convert) and are on by default.
	NoPreallocate bool

	// Repair makes Open and SnapshotStore.Latest cut damaged data instead of
	// failing: a copy of each damaged file is kept as <name>.damaged-<unix
	// seconds>, the log is cut after its last good record, and later
	// segments are moved aside. Everything done is logged. This is --repair.
	Repair bool

	// KeepSnapshots is how many snapshot files a SnapshotStore keeps
	// (default 2, so a damaged newest one still has a predecessor).
	KeepSnapshots int

	// Logger receives one line per event an operator cares about: a torn
	// tail truncated, a repair, a slow sync. Nil means no logging.
	Logger *slog.Logger

	// OnSync, if not nil, is called after every fdatasync of appended data,
	// on the goroutine that called Sync (or Append, when a segment fills up)
	// with the WAL's lock held: it must be quick and must not call the WAL.
	// It exists for metrics.
	OnSync func(SyncInfo)

	// Now is the clock used to time syncs and name damaged copies (default
	// time.Now).
	Now func() time.Time

	// Faults injects failures. For tests only: leave nil in production.
	Faults *Faults

	// dirSynced, if not nil, is called after every directory fsync with the
	// directory's path. A seam for this package's tests.
	dirSynced func(dir string)
}

// SyncInfo describes one fdatasync of WAL data, for OnSync.
type SyncInfo struct {
	Took    time.Duration // time spent in fdatasync
	Bytes   int64         // bytes made durable by this sync
	Records int           // records made durable by this sync
	Err     error         // nil unless the sync failed
}

// Faults are failures a test injects into a WAL. Production code leaves
// Options.Faults nil.
type Faults struct {
	// FailAfterBytes, when positive, lets only that many bytes of records
	// reach segment files over the WAL's life: the write that crosses the
	// limit is cut short there, as on a full disk, and fails with
	// ErrInjected (which breaks the WAL). Segment headers do not count.
	FailAfterBytes int64

	// FailSync, if not nil, is called before every fdatasync of appended
	// data; a non-nil result is used as that sync's error (the data is then
	// not synced) and breaks the WAL.
	FailSync func() error

	// SkipDatasync is a deliberately broken WAL: Sync writes the batch and
	// its commit frame to the segment file but skips the fdatasync and
	// reports success, so records are acknowledged while only in the page
	// cache. A kill -9 keeps them; SimulateCrash (a power loss) zeroes
	// them. The chaos harness uses it to show that it catches a replica
	// that acknowledges before fsync.
	SkipDatasync bool
}

// DefaultOptions returns the options used when every field is zero.
func DefaultOptions() Options {
	return Options{
		SegmentSize:   DefaultSegmentSize,
		MaxRecord:     DefaultMaxRecord,
		KeepSnapshots: DefaultKeepSnapshots,
		Logger:        slog.New(slog.DiscardHandler),
		Now:           time.Now,
	}
}

// withDefaults fills zero fields with their defaults and validates the rest.
func (o Options) withDefaults() (Options, error) {
	d := DefaultOptions()
	if o.SegmentSize == 0 {
		o.SegmentSize = d.SegmentSize
	}
	if o.MaxRecord == 0 {
		o.MaxRecord = d.MaxRecord
	}
	if o.KeepSnapshots == 0 {
		o.KeepSnapshots = d.KeepSnapshots
	}
	if o.Logger == nil {
		o.Logger = d.Logger
	}
	if o.Now == nil {
		o.Now = d.Now
	}
	return o, o.validate()
}

func (o Options) validate() error {
	switch {
	case o.SegmentSize < minSegmentSize:
		return fmt.Errorf("wal: SegmentSize %d is below the minimum of %d bytes", o.SegmentSize, minSegmentSize)
	case o.MaxRecord < 0 || o.MaxRecord > maxMaxRecord:
		return fmt.Errorf("wal: MaxRecord %d is outside 1..%d bytes", o.MaxRecord, maxMaxRecord)
	case o.KeepSnapshots < 1:
		return fmt.Errorf("wal: KeepSnapshots %d must be at least 1", o.KeepSnapshots)
	}
	return nil
}
