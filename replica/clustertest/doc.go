// Package clustertest runs real doozerfs clusters — one `doozerfs serve`
// process per replica, each with its own data directory and mount, on
// loopback — and checks what a user on several hosts would see: a write
// through one host's mount is readable through another's as soon as it
// returns, inotify fires there, members are listed under /ctl/node, the
// cluster survives kill -9 of its leader and of every replica at once
// without losing an acknowledged write. It holds only tests.
package clustertest
