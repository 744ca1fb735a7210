// Package chaos is a Jepsen-style harness for doozerfs: it runs a real
// cluster of `doozerfs serve` processes, drives concurrent clients through
// it while injecting faults from a seeded schedule, and then checks
// everything the clients saw against the consistency contract
// (SPEC §2–§3). docs/testing.md describes how to run it and lists the bugs
// it found.
//
// A run (Run) takes a seed. The seed decides the schedule (NewSchedule):
// 3 or 5 replicas, mounts or not, how often replicas snapshot, and a
// sequence of episodes, each one fault held for a while, healed, then
// followed by a quiet gap. Printing a Schedule shows all of it, and the
// same seed with the same options gives the same schedule. Which replica
// "the leader" is can only be known when an episode runs; the report's
// timeline says what each episode did.
//
// # The cluster
//
// Every replica is a process with its own data directory, HTTP port
// (pprof, for goroutine counts) and, with mounts, its own FUSE mount
// (serve --mount). Replicas run the binary the caller built: TestMain
// builds it without the race detector, because five race-built replicas
// and their mounts on a two-core CI machine spend the election timeouts
// on instrumentation (CHAOS_RACE=1 builds them with -race; the logs are
// then scanned for DATA RACE like they are for panics).
//
// # Faults
//
//   - kill -9 of one replica (or the leader) and restart; kill -9 of every
//     replica at once.
//   - Power loss of one or every replica: serve runs with
//     DOOZERFS_TEST_FAULTS=power-loss-signal, and SIGUSR1 makes it call
//     wal.WAL.SimulateCrash — what it wrote but did not fdatasync is
//     zeroed — and die. A kill -9 alone cannot lose unsynced writes (the
//     page cache survives it); this can.
//   - SIGSTOP for 1.5–4.5 s (longer than the 0.5–0.9 s election timeout),
//     then SIGCONT.
//   - Partitions through a fault-injecting proxy (Net): each replica is
//     started with --advertise pointing at its own proxy, so every byte a
//     peer sends it — consensus and gossip TCP streams, gossip UDP
//     packets — goes through that proxy, which knows the sender from the
//     HELLO frame (TCP) or the source address (UDP). A cut link holds TCP
//     bytes (TCP would retransmit them after a real partition heals) and
//     drops UDP packets. Kinds: the leader or any replica isolated, a
//     minority cut off, a split with no quorum anywhere, a bridge (two
//     halves only one replica sees both of), one-way cuts (leader →
//     follower, follower → leader, follower → follower), and flapping.
//     Clients dial the replicas' own addresses, not the proxies, so a
//     client of an isolated leader keeps talking to it: that is where
//     stale reads and lost writes would show.
//     The proxy was chosen over network namespaces because it needs no
//     privileges, no iptables, and cuts one direction of one link exactly;
//     it does not model latency or reordering on a healthy link (the
//     consensus simulator does).
//   - Membership changes during faults: a killed replica is removed with
//     `members remove` and a new one joins in its place; or an isolated
//     replica is removed from the majority side, the partition healed, and
//     a new replica joins.
//   - Disk full: a replica restarts with
//     DOOZERFS_TEST_FAULTS=wal-fail-after=N (wal.Faults.FailAfterBytes):
//     its WAL takes N more bytes and then fails as a full disk does, which
//     stops the replica; it is restarted without the fault after the hold.
//
// Clock jumps are not injected: lease expiry and every timeout in the
// replica use Go's monotonic clock, and commit times are made monotonic
// at apply (max of the stamp and the last applied time), so a wall-clock
// jump changes no decision.
//
// # The workload
//
// Two clients per replica do GETs, SETs (unconditional and compare-and-set
// on the rev they last saw), DELs, TXNs that set the two files of a group
// together conditional on the first, and WALKs of the group; half of them
// read consistently. Two clients do WAITs. Four WATCH streams (the first
// on /** from rev 1: the recorder) follow the store across failovers.
// With mounts, one worker per mount writes its own files (echo > f) and
// reads everyone's.
//
// # Checks
//
// After the last episode every link is healed, every process resumed or
// restarted, the workload runs a few seconds more and stops, and a final
// transaction marks the end. Then:
//
//   - The history of writes and consistent reads is linearizable
//     (porcupine, one partition per key and one for the group). A write
//     of unknown outcome is placed by its unique body in the event log.
//   - Plain reads are session-monotonic, and every read saw a state its
//     keys had at one revision between the client's floor and the first
//     write called after it returned.
//   - Every acknowledged write (client or mount) is in the committed event
//     log at its revision, transactions are whole, nothing is in the log
//     that no client wrote, no write is applied twice, revisions follow
//     real time.
//   - Every member applied the final revision, their trees are the same
//     there, their event histories agree, and they settle at one
//     revision; the membership is what the harness made it, with a leader.
//   - Every WAIT returned the first matching event at or after its rev;
//     every WATCH stream delivered each matching event of the log once, in
//     order, without gaps, up to the final revision.
//   - No replica logged a panic or a data race, exited on its own, or
//     failed to shut down cleanly on SIGTERM; fds and goroutines once the
//     clients are gone are not far above what each process had when it
//     started serving; /ctl/node/*/addr names the advertised addresses.
//   - Every mount gave only expected errors while its replica ran, never a
//     torn or unknown body, is usable at the end (a write through each is
//     seen through every other), and shows what the store holds.
//
// A failing run's report prints the seed, the schedule, the violations,
// the timeline and the command that runs the same seed again; the run's
// directory (logs, data, report.txt, porcupine's visualisation) is kept.
package chaos
