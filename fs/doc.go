// Package fs is the doozerfs namespace: a versioned tree of files and
// directories, kept as a pure, deterministic state machine. It imports only
// the standard library. docs/data-model.md states every rule it implements,
// with examples, and the binary formats it reads and writes.
//
// # What it holds
//
// A Tree holds the current revision, a window of past revisions
// (Config.History, default 10,000, and optionally Config.HistoryBytes) with
// the events that made each of them, and the leases. Mutations (a TXN of SET/DEL/MKDIR/CHECK ops, NOP, and the
// lease verbs) go in through Apply; a mutation that changes the tree makes
// exactly one new revision, and one that fails changes nothing and takes no
// revision. Apply never reads a clock or a random source: the same
// mutations in the same order give the same tree on every replica.
//
// Revisions are persistent: a change copies only the nodes on the path from
// the root to what changed (and O(log n) nodes of each directory's sorted
// child set), sharing the rest with the revisions before it. So a View of
// any revision is immutable, and reading the current revision never copies
// or locks the tree. The window keeps, instead of the past trees, each
// revision's events and undo records; ViewAt rebuilds a past revision from
// them, at a cost that grows with its distance from the current one.
//
// # Who calls it
//
//   - The replica applies each chosen consensus value with Apply, answers
//     reads from View and ViewAt, feeds watches from Events and the Result's
//     events, writes snapshots for log compaction and catch-up with
//     WriteSnapshot, and restarts from them with ReadSnapshot. Its leader
//     owns the lease timers and proposes MutLeaseExpire.
//   - The remote mount keeps a mirror tree fed by WATCH through ApplyEvents,
//     so its reads never cross the network.
//   - The wire codec and the WAL carry mutations as Mutation.MarshalBinary.
//   - Everyone validates paths with ValidPath and globs with CompileGlob.
//
// # Concurrency contract
//
// Apply and ApplyEvents change the tree; call them from one goroutine at a
// time (the replica's apply loop). Rev, Oldest, HistoryBytes, View, ViewAt,
// Events, Leases, LeaseFiles and WriteSnapshot may be called from any number of
// goroutines at the same time as Apply: the bookkeeping they read is
// guarded by a read-write mutex (the current revision by an atomic
// pointer), and a View, once returned, never changes, so any number of
// goroutines may read it. Globs are immutable too.
//
// # Ownership of bodies
//
// Bodies are never copied. Apply keeps each SET's Op.Body slice in the tree
// (and ApplyEvents each Event.Body): the caller must not modify it
// afterwards. Get, Walk, Events and Result.Events hand out the tree's own
// slices: callers must not modify a returned body. Result.Events itself is
// shared with the history and must not be modified either.
package fs
