package wire

import "strconv"

// Verb is what a Request asks for. The numbers travel on the wire; they are
// append-only like fs.Kind.
type Verb uint8

// The verbs of SPEC §4. Zero is not a verb: a request without one is
// answered UNKNOWN_VERB.
const (
	VerbGet         Verb = 1  // read a file's body and stat
	VerbSet         Verb = 2  // write a file (conditional on Rev)
	VerbDel         Verb = 3  // delete a file or an empty directory (conditional on Rev)
	VerbMkdir       Verb = 4  // make a directory (conditional on Rev)
	VerbTxn         Verb = 5  // apply Ops all-or-nothing in one revision
	VerbRev         Verb = 6  // the replica's current revision
	VerbStat        Verb = 7  // a node's stat
	VerbGetDir      Verb = 8  // a directory's entries
	VerbWalk        Verb = 9  // every file matching a glob, with stat and body
	VerbWait        Verb = 10 // the first matching event at or after Rev
	VerbWatch       Verb = 11 // the stream of matching events from Rev on
	VerbCancel      Verb = 12 // end the request whose tag is Other
	VerbNop         Verb = 13 // a no-op through consensus (a write barrier)
	VerbLeaseGrant  Verb = 14 // create a lease with TTL
	VerbLeaseRenew  Verb = 15 // restart a lease's TTL
	VerbLeaseRevoke Verb = 16 // end a lease and delete its files
	VerbMembers     Verb = 17 // the cluster's members as this replica sees them
	VerbSelf        Verb = 18 // this replica
	VerbSnapshot    Verb = 19 // stream a consistent snapshot of the store
	VerbRemove      Verb = 20 // remove the member named Path from the cluster for good
)

var verbNames = [...]string{
	VerbGet:         "GET",
	VerbSet:         "SET",
	VerbDel:         "DEL",
	VerbMkdir:       "MKDIR",
	VerbTxn:         "TXN",
	VerbRev:         "REV",
	VerbStat:        "STAT",
	VerbGetDir:      "GETDIR",
	VerbWalk:        "WALK",
	VerbWait:        "WAIT",
	VerbWatch:       "WATCH",
	VerbCancel:      "CANCEL",
	VerbNop:         "NOP",
	VerbLeaseGrant:  "LEASE_GRANT",
	VerbLeaseRenew:  "LEASE_RENEW",
	VerbLeaseRevoke: "LEASE_REVOKE",
	VerbMembers:     "MEMBERS",
	VerbSelf:        "SELF",
	VerbSnapshot:    "SNAPSHOT",
	VerbRemove:      "MEMBER_REMOVE",
}

// Valid reports whether v is a verb of this protocol version.
func (v Verb) Valid() bool { return v >= VerbGet && int(v) < len(verbNames) }

// String returns the verb's name, such as "GET".
func (v Verb) String() string {
	if v.Valid() {
		return verbNames[v]
	}
	return "VERB_" + strconv.Itoa(int(v))
}

// IsRead reports whether the verb only reads: such a request carries
// MinRev and Consistent, and the client may send it again after a broken
// connection because doing it twice has the same effect as doing it once.
func (v Verb) IsRead() bool {
	switch v {
	case VerbGet, VerbRev, VerbStat, VerbGetDir, VerbWalk, VerbWait,
		VerbWatch, VerbMembers, VerbSelf, VerbSnapshot:
		return true
	}
	return false
}

// Streams reports whether the verb is answered many times: every response
// but the last has More set.
func (v Verb) Streams() bool { return v == VerbWatch || v == VerbSnapshot }
