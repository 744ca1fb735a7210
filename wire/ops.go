package wire

import (
	"context"
	"time"

	"github.com/doozerfs/doozerfs/fs"
)

// The verbs of the Client. Every call takes a context: when it ends the call
// returns ctx.Err() at once and the replica is asked to cancel the request
// (a write may still take effect). Store errors are *fs.Error values, so
// errors.Is(err, fs.ErrRevMismatch) and fs.KindOf work. Revisions follow
// SPEC §1: fs.Clobber (-1) writes unconditionally, fs.Missing (0) only
// creates, R > 0 requires the node's rev to be ≤ R.

// read sends a read with this view's consistency.
func (c *Client) read(ctx context.Context, req *Request) (Response, error) {
	req.Consistent = c.consistent
	return c.s.do(ctx, req)
}

// Get returns the body and stat of the file at path, at revision rev
// (0: the replica's current revision, and never older than Seen).
// An empty body may be nil.
func (c *Client) Get(ctx context.Context, path string, rev int64) ([]byte, fs.Stat, error) {
	resp, err := c.read(ctx, &Request{Verb: VerbGet, Path: path, Rev: rev})
	if err != nil {
		return nil, fs.Stat{}, err
	}
	return resp.Body, resp.Stat, nil
}

// Set writes body to the file at path if rev allows it (creating missing
// parent directories) and returns the new revision.
func (c *Client) Set(ctx context.Context, path string, rev int64, body []byte) (int64, error) {
	return c.write(ctx, &Request{Verb: VerbSet, Path: path, Rev: rev, Body: body})
}

// SetLease is Set with the file bound to lease: it is deleted when the
// lease expires or is revoked.
func (c *Client) SetLease(ctx context.Context, path string, rev int64, body []byte, lease int64) (int64, error) {
	return c.write(ctx, &Request{Verb: VerbSet, Path: path, Rev: rev, Body: body, Lease: lease})
}

// Del deletes the file or empty directory at path if rev allows it and
// returns the new revision.
func (c *Client) Del(ctx context.Context, path string, rev int64) (int64, error) {
	return c.write(ctx, &Request{Verb: VerbDel, Path: path, Rev: rev})
}

// Mkdir makes the directory path and any missing parents, unconditionally
// (rev fs.Clobber), and returns the new revision.
func (c *Client) Mkdir(ctx context.Context, path string) (int64, error) {
	return c.MkdirRev(ctx, path, fs.Clobber)
}

// MkdirRev makes the directory path if rev allows it: fs.Missing fails with
// REV_MISMATCH when path exists, as mkdir(2) fails with EEXIST.
func (c *Client) MkdirRev(ctx context.Context, path string, rev int64) (int64, error) {
	return c.write(ctx, &Request{Verb: VerbMkdir, Path: path, Rev: rev})
}

// Txn applies ops all-or-nothing in one revision and returns it.
func (c *Client) Txn(ctx context.Context, ops []fs.Op) (int64, error) {
	return c.write(ctx, &Request{Verb: VerbTxn, Ops: ops})
}

func (c *Client) write(ctx context.Context, req *Request) (int64, error) {
	resp, err := c.s.do(ctx, req)
	if err != nil {
		return 0, err
	}
	return resp.Rev, nil
}

// Rev returns the replica's current revision (never older than Seen).
func (c *Client) Rev(ctx context.Context) (int64, error) {
	resp, err := c.read(ctx, &Request{Verb: VerbRev})
	return resp.Rev, err
}

// Stat returns the stat of the node at path at revision rev (0: current).
func (c *Client) Stat(ctx context.Context, path string, rev int64) (fs.Stat, error) {
	resp, err := c.read(ctx, &Request{Verb: VerbStat, Path: path, Rev: rev})
	return resp.Stat, err
}

// GetDir returns the entries of the directory at path at revision rev
// (0: current), sorted by name.
func (c *Client) GetDir(ctx context.Context, path string, rev int64) ([]fs.DirEntry, error) {
	resp, err := c.read(ctx, &Request{Verb: VerbGetDir, Path: path, Rev: rev})
	return resp.Entries, err
}

// Walk returns every file matching glob at revision rev (0: current),
// sorted by path, with its stat and body.
func (c *Client) Walk(ctx context.Context, glob string, rev int64) ([]File, error) {
	resp, err := c.read(ctx, &Request{Verb: VerbWalk, Path: glob, Rev: rev})
	return resp.Files, err
}

// Wait returns the first event matching glob at revision rev or later,
// blocking until there is one (rev 0: the first after the replica's current
// revision). To follow changes without missing any, use Watch.
func (c *Client) Wait(ctx context.Context, glob string, rev int64) (fs.Event, error) {
	resp, err := c.read(ctx, &Request{Verb: VerbWait, Path: glob, Rev: rev})
	if err != nil {
		return fs.Event{}, err
	}
	if len(resp.Events) == 0 {
		return fs.Event{}, &fs.Error{Kind: fs.KindOther, Path: glob, Detail: "WAIT answered without an event"}
	}
	return resp.Events[0], nil
}

// Nop commits a no-op through consensus: once it returns, every write
// acknowledged before it was called is applied on the replica.
func (c *Client) Nop(ctx context.Context) error {
	_, err := c.s.do(ctx, &Request{Verb: VerbNop})
	return err
}

// LeaseGrant creates a lease that expires ttl after its last renewal and
// returns its id.
func (c *Client) LeaseGrant(ctx context.Context, ttl time.Duration) (int64, error) {
	if ttl <= 0 {
		return 0, badRequest("LEASE_GRANT: ttl %v is not positive", ttl)
	}
	resp, err := c.s.do(ctx, &Request{Verb: VerbLeaseGrant, TTL: ttl})
	return resp.Lease, err
}

// LeaseRenew restarts the lease's TTL and returns the TTL. A lease that has
// expired or was revoked gives NO_LEASE.
func (c *Client) LeaseRenew(ctx context.Context, id int64) (time.Duration, error) {
	resp, err := c.s.do(ctx, &Request{Verb: VerbLeaseRenew, Lease: id})
	return resp.TTL, err
}

// LeaseRevoke ends the lease and deletes its files, in one revision.
func (c *Client) LeaseRevoke(ctx context.Context, id int64) error {
	_, err := c.s.do(ctx, &Request{Verb: VerbLeaseRevoke, Lease: id})
	return err
}

// RemoveMember removes the member called name from the cluster for good:
// the leader proposes its removal and it will not be added again while it
// keeps its identity. It returns once the removal is committed.
func (c *Client) RemoveMember(ctx context.Context, name string) error {
	_, err := c.s.do(ctx, &Request{Verb: VerbRemove, Path: name})
	return err
}

// Members returns the cluster's members as the replica sees them.
func (c *Client) Members(ctx context.Context) ([]Member, error) {
	resp, err := c.read(ctx, &Request{Verb: VerbMembers})
	return resp.Members, err
}

// Self describes the replica this client is connected to.
func (c *Client) Self(ctx context.Context) (Self, error) {
	resp, err := c.read(ctx, &Request{Verb: VerbSelf})
	if err != nil {
		return Self{}, err
	}
	if resp.Self == nil {
		return Self{}, &fs.Error{Kind: fs.KindOther, Detail: "SELF answered without a self"}
	}
	return *resp.Self, nil
}
