// Package wire is doozerfs's network protocol: frames, the messages they
// carry, the HELLO that opens every connection, and the Go client.
// docs/protocol.md describes the bytes, for clients in other languages.
//
// # Who uses what
//
// The replica (the server) uses Conn to read and write frames, Accept and
// Policy for HELLO, ReadRequest/DecodeRequest for client requests,
// WriteResponse (from any goroutine) or QueueResponse+Flush (from the
// reading goroutine, flushing when Buffered is 0) and ErrorResponse for
// answers, and AppendMsg/DecodeMsg (or Conn.WriteMsg/ReadMsg) for its own
// peer and gossip messages after HELLO. The mount and the command line use
// Client.
//
// A frame is a 4-byte big-endian payload length and one msgpack value.
// Every reader enforces a limit (DefaultMaxFrame unless configured): a
// longer frame is ErrFrameTooBig and the connection must close; an empty
// or malformed one is an *fs.Error of kind BAD_REQUEST and the connection
// goes on. HELLO, Request and Response are encoded and decoded by hand
// over byte slices (plain msgpack, checked against vmihailenco/msgpack in
// the tests): decoding is strict about types and required fields, checks
// every length against the bytes present before allocating, bounds
// nesting, and allocates only the strings and bodies it returns.
//
// # Concurrency
//
// The Append*, Decode* and Read*Frame functions keep no state and may run
// concurrently on distinct buffers.
//
// A Conn is read by one goroutine at a time and written by any number:
// writers queue frames and whichever finds no write under way writes all
// queued frames in one call (see Conn).
//
// A Client is safe for concurrent use; concurrent calls share its one
// connection, each waiting only for its own response. While connected it
// runs two goroutines (a reader that hands each response to its caller, a
// writer that sends queued requests in batches), plus one while dialling;
// all end at Close. Snapshot runs in the caller's goroutine on a
// connection of its own. A Watch's Next and NextBatch are for one goroutine
// at a time; its Close, like the Client's, may be called from any.
//
// # Failure
//
// Every Client call takes a context: when it ends the call returns
// ctx.Err() and the replica is asked to CANCEL the request. When the
// connection breaks the Client dials the next address (in the order given,
// wrapping around). A request whose outcome is known not to depend on how
// many times it runs (reads, NOP, LEASE_RENEW) is sent again there; a
// write that may have reached the old replica fails with an *fs.Error of
// kind TIMEOUT (outcome unknown) and is never sent twice. When no replica
// can be reached calls fail with UNAVAILABLE. Watches resume from the first
// revision they had not covered. Every read carries the highest revision
// the client has seen (Client.Seen) as its minimum, so reads never go
// backwards, even across replicas.
package wire
