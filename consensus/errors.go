package consensus

import "errors"

// Errors returned by Node methods. They are sentinels: compare with errors.Is.
var (
	// ErrNoLeader: this node knows no leader to take the request to. The
	// caller may fail the request (no quorum known) or retry after a Ready.
	ErrNoLeader = errors.New("consensus: no leader known")
	// ErrNotLeader: the request is taken only by the leader.
	ErrNotLeader = errors.New("consensus: not the leader")
	// ErrBusy: too many proposals are pending; retry after a Ready.
	ErrBusy = errors.New("consensus: too many pending proposals")
	// ErrRemoved: this node is not a member of the cluster.
	ErrRemoved = errors.New("consensus: node is not a member")
	// ErrChangeInProgress: a membership change is still in flight or has not
	// yet taken effect.
	ErrChangeInProgress = errors.New("consensus: a membership change is in progress")
	// ErrBadChange: the membership change does not apply to the current
	// membership (adding a member twice, promoting a non-learner, removing
	// the last voter, more than 64 members).
	ErrBadChange = errors.New("consensus: invalid membership change")
	// ErrUnsafeChange: after the change, the voters this leader has heard from
	// recently would not form a quorum.
	ErrUnsafeChange = errors.New("consensus: membership change would lose the quorum")
	// ErrLagging: the learner to promote has not caught up (its chosen
	// prefix is more than Alpha slots behind the leader's); retry later.
	ErrLagging = errors.New("consensus: learner has not caught up")
	// ErrBadMessage: a message from the network that breaks the protocol's
	// shape. It was ignored; the caller should count it.
	ErrBadMessage = errors.New("consensus: malformed message")
	// ErrCompacted: the slot is below the last compaction point.
	ErrCompacted = errors.New("consensus: slot already compacted")
)
