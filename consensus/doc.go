// Package consensus is doozerfs's Multi-Paxos core: it decides the order of
// opaque values, one slot after another, among the replicas of a cluster.
//
// It is a pure state machine in the shape of a library that leaves out
// transport and storage. It starts no goroutines, reads no clock, does no
// I/O and uses no global random source (Config.Seed seeds its own). Time is
// Tick; input is Step (messages from peers), Propose, ReadIndex,
// ProposeConfChange, OfferSnapshot and Compact; output is Ready.
//
// # Who calls it
//
// The replica package owns one Node per process and drives it from a single
// loop: Tick every 10 ms, Step for each message received, Propose for each
// client write, then, whenever HasReady reports true, Ready → persist → send
// → apply → Advance.
//
// # The Ready contract
//
// A Ready says what to persist (Entries and HardState, fsynced when
// MustSync), what to send (Messages), what to apply (Committed, in slot
// order; Snapshot first if set) and which snapshots to stream to peers
// (SendSnapshots). The caller handles it in this order:
//
//  1. persist Snapshot (if any), then Entries, then HardState; fsync if MustSync;
//  2. send Messages (those whose Type.NeedsPersist() is false may go while
//     step 1 runs);
//  3. install Snapshot (if any), apply Committed, answer ReadStates;
//  4. Advance.
//
// Persist-before-send is what makes the protocol safe across crashes: no
// promise or acceptance leaves a node before it is durable, so a node that
// crashes and loses its last unsynced write has only lost state nobody saw.
// Committed holds only slots chosen by a quorum that persisted them, so
// applying them before this node's own fsync is safe.
//
// # Concurrency
//
// A Node is not safe for concurrent use. The caller serialises every call;
// Step, Tick and the other inputs may be called between Ready and Advance,
// but Ready may not be called again until Advance. Slices in a Ready or in a
// Message are shared with the node and with each other: read-only.
//
// docs/consensus.md describes the algorithm, every message, what is
// persisted when, the invariants and why they hold, and the contract for the
// replica (snapshots, de-duplication, reads, ticks).
package consensus
