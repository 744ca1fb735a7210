// Package wal is the durable storage of one doozerfs replica: a write-ahead
// log of consensus state in segment files, snapshot files of the fs tree,
// and the lock that keeps two processes off one data directory. The byte
// formats and recovery rules are in docs/storage.md.
//
// # Who calls it
//
// The replica's storage loop opens a DataDir (or a WAL and a SnapshotStore)
// at start, replays the newest snapshot and the log, then for every batch
// its consensus core asks to persist calls Append once per record and Sync
// once for the batch (group commit), and sends messages or answers clients
// only after Sync returns. It assigns the record types (1..MaxUserType).
// After saving a snapshot and a synced checkpoint record it calls
// TruncateBefore. `doozerfs snapshot restore` calls ImportSnapshot.
//
// # Indexes
//
// The WAL numbers records itself: consecutive indexes, starting at 1,
// never reused, kept across restarts and truncation. NextIndex says what the
// next Append gets; Replay passes each record's index; TruncateBefore takes
// one. A segment file is named after its sequence number and the index of
// its first record, so whole segments below an index can be deleted without
// reading them. Indexes are the WAL's, not consensus slots: the replica
// stores slots inside its records.
//
// # Durability
//
// A record is durable when Sync (or Close) returns nil after it was
// appended: one fdatasync per Sync, and the directory is fsynced whenever a
// segment or snapshot file is created, renamed or deleted. Any I/O failure
// breaks the WAL for good (ErrBroken): after a failed fdatasync nothing can
// be trusted about the unsynced data, so the replica must stop, and a
// restart recovers what is really on disk.
//
// # Concurrency
//
// A WAL is safe for concurrent use but built for one writer: every method
// takes one mutex, and Sync holds it during fdatasync, so an Append waits
// for a Sync in progress. Replay holds it while calling its callback, which
// therefore must not call the WAL; so must OnSync. A SnapshotStore is safe
// for concurrent use and independent of the WAL: Save streams without the
// store's lock, so a snapshot may be written by another goroutine while
// the storage loop goes on appending. Neither starts goroutines.
//
// # Tests
//
// Options.Faults and WAL.SimulateCrash inject write and sync failures and
// power loss; they exist for tests (this package's and the replica's chaos
// harness) and must stay unused in production.
package wal
