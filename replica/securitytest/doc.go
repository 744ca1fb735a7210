// Package securitytest holds the tests of SPEC §9 and issue 10 against real
// replicas (replica.Open on 127.0.0.1, in this process): every combination
// of secrets for clients, peers and gossip; TLS with a CA the tests make
// (mutual TLS between replicas, wrong certificates refused, a client
// without TLS refused with a readable error); a peer without the secret
// that cannot join, inject consensus messages or get a member announced
// by UDP; and hostile clients (deep and huge msgpack values, slow readers
// under a WATCH, connection churn) while a well-behaved client keeps
// getting answers and the replica's heap stays bounded.
//
// It has no non-test code; docs/security.md is what it checks.
package securitytest
