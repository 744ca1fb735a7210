// Package integration tests the mount with the real parts, as a person
// would use them. TestMain builds the doozerfs binary; each test starts
// it twice as child processes: `doozerfs serve --mount M1` (a replica
// with its own mount, no network between them) and `doozerfs mount M2
// --addr` (a client mount, a Mirror fed by SNAPSHOT and WATCH over the
// network). Two mounts on one machine stand in for two hosts.
//
// The tests drive the mounts with the tools of a shell (cat, echo, cp,
// tee, sed, truncate, mv, vim, python3, inotifywait) and the doozerfs
// command line, and check what SPEC §6 and docs/mount.md promise: a write
// on one host is read on the other, inotify fires there, each tool
// publishes exactly one whole revision, concurrent writers lose with
// ESTALE and nothing is torn, a client mount outlives its replica and
// catches up, and SIGTERM unmounts.
//
// The package has no code besides this comment. Its tests need /dev/fuse
// and fusermount3: without them they are skipped, or fail with CI=true.
// The test process never serves a mount itself, so unlike package
// mount's tests it may use the mounts with os and exec freely.
package integration
