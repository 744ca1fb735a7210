// Package mount shows a doozerfs store as a directory, through FUSE
// (bazil.org/fuse): cat reads a file, echo > writes one as a
// compare-and-set on the revision it had when opened, ls lists a
// directory, and inotify fires on this host when another host changes a
// file. docs/mount.md describes every system call's behaviour; this
// comment is about the code.
//
// # Who calls what
//
// cmd/doozerfs calls Mount with a Store: the in-process replica for
// `doozerfs serve --mount`, or a Mirror over a wire.Client for
// `doozerfs mount --addr`. It calls Close on SIGINT or SIGTERM, and
// ClearStale (Mount does too) to clear a mount left by a killed daemon.
//
// # The pieces
//
//   - server (server.go, dispatch.go) reads the kernel's requests and
//     calls the nodes, which implement bazil's fusefs interfaces. Requests
//     that never block are answered on the reading goroutine; the others
//     each get a goroutine.
//   - fsys (fsys.go) keeps the node the kernel holds for each path, the
//     overlay of files this host has and the store has not (overlay.go),
//     and resolves paths against the store's current view.
//   - dirNode and fileNode (dir.go, file.go, rename.go) answer namespace
//     requests; handle (handle.go) buffers a writer's changes and commits
//     them as one conditional SET; cache.go keeps each open on one
//     revision despite the kernel's shared page cache.
//   - follower (follow.go, replay.go) follows the store's applied
//     revisions: it feeds .doozerfs/events (ctl.go), replays other hosts'
//     changes through the mountpoint for inotify, and invalidates what
//     the kernel caches.
//   - Mirror (mirror.go) is the Store of a host without a replica.
//
// # Concurrency contract
//
// Mount, Close, Unmount and ClearStale may be called from any goroutine;
// Close may be called many times. A Store's methods are called from many
// goroutines at once; Store.Txn is called with no lock of this package
// held but the committing handle's own.
//
// Goroutines: one reads requests (server.serve) and answers the
// non-blocking ones itself; one per blocking request; one follower,
// locked to its OS thread for its whole life so that the handlers know
// its requests by thread id (the FUSE request's pid is the calling
// thread's id); short-lived ones that send kernel notifications on behalf
// of handlers. Kernel notifications (invalidations, poll wake-ups) are
// sent only from the follower and those short-lived goroutines, never
// from a request handler, where they can deadlock.
//
// Locks, in the order they may be taken: handle.mu (held across the
// store call of a commit, so one handle commits one thing at a time);
// fileNode.mu; server.mu; fsys.mu. fsys.mu and fileNode.mu are never held
// across a store call, a system call or a kernel notification, and no
// handler answered inline takes handle.mu of a writer. The follower takes
// only fsys.mu, briefly, and never while it replays: its replays are
// requests to this very server.
//
// Every store call carries the request's context (cancelled by the
// kernel's INTERRUPT) and Options.Timeout on top, so no caller waits
// forever for the store.
package mount
