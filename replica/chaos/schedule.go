package chaos

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// FaultKind names one kind of fault of a schedule.
type FaultKind string

// The faults. "Target" is resolved when the episode runs: Leader means the
// replica that leads at that moment, else the member at index Target
// (modulo the members then).
const (
	FaultNone            FaultKind = "none"               // nothing: a quiet episode
	FaultKill            FaultKind = "kill"               // kill -9 the target, restart it after Hold
	FaultKillAll         FaultKind = "kill-all"           // kill -9 every replica at once, restart them after Hold
	FaultPowerLoss       FaultKind = "power-loss"         // the target loses what it had not fsynced, and dies
	FaultPowerLossAll    FaultKind = "power-loss-all"     // every replica at once
	FaultPause           FaultKind = "pause"              // SIGSTOP the target for Hold (longer than an election timeout), SIGCONT
	FaultIsolate         FaultKind = "isolate"            // cut the target off from every other replica, both ways
	FaultMinority        FaultKind = "partition-minority" // a minority (Targets) on one side, the rest on the other
	FaultSplit           FaultKind = "partition-split"    // groups none of which holds a quorum
	FaultBridge          FaultKind = "partition-bridge"   // two halves that only the target sees both of (5 replicas)
	FaultOneWay          FaultKind = "one-way"            // cut Target → Other only
	FaultFlap            FaultKind = "flap"               // isolate the target and heal, again and again, every Param ms
	FaultDiskFull        FaultKind = "disk-full"          // restart the target with a WAL that fails after Param bytes; restart it normally after Hold
	FaultReplace         FaultKind = "replace"            // kill -9 the target, remove it from the cluster (members remove), join a new replica
	FaultRemovePartition FaultKind = "remove-partitioned" // isolate the target, remove it from the majority side, heal; join a new replica
)

// Leader as a Target means the replica leading when the episode starts.
const Leader = -1

// Episode is one step of a schedule: a fault held for Hold, then healed
// (processes restarted or resumed, links restored), then Gap of quiet.
type Episode struct {
	Fault   FaultKind
	Target  int   // index of a member, or Leader
	Other   int   // one-way: the other end (index, or Leader)
	Targets []int // minority: member indexes
	Param   int64 // flap: period in ms; disk-full: bytes the WAL may take
	Hold    time.Duration
	Gap     time.Duration
}

func target(i int) string {
	if i == Leader {
		return "leader"
	}
	return fmt.Sprintf("member[%d]", i)
}

func (e Episode) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-18s", e.Fault)
	switch e.Fault {
	case FaultKill, FaultPowerLoss, FaultPause, FaultIsolate, FaultBridge, FaultReplace, FaultRemovePartition:
		fmt.Fprintf(&b, " target=%s", target(e.Target))
	case FaultOneWay:
		fmt.Fprintf(&b, " %s→%s", target(e.Target), target(e.Other))
	case FaultMinority:
		fmt.Fprintf(&b, " members=%v", e.Targets)
	case FaultFlap:
		fmt.Fprintf(&b, " target=%s every=%dms", target(e.Target), e.Param)
	case FaultDiskFull:
		fmt.Fprintf(&b, " target=%s wal-bytes=%d", target(e.Target), e.Param)
	}
	fmt.Fprintf(&b, " hold=%v gap=%v", e.Hold, e.Gap)
	return b.String()
}

// Schedule is everything a seed decides about a run.
type Schedule struct {
	Seed          uint64
	Nodes         int  // replicas at the start: 3 or 5
	Mounts        bool // every replica mounts its tree
	SnapshotEvery int  // serve --snapshot-every
	Episodes      []Episode
}

// ScheduleOptions bound what NewSchedule may choose.
type ScheduleOptions struct {
	Nodes     int           // 0: 3 or 5, by the seed
	Mounts    int           // 0: by the seed; 1: on; -1: off
	FaultTime time.Duration // total of the episodes' Hold and Gap (about)
	Faults    []FaultKind   // the kinds to draw from (nil: all)
}

// AllFaults lists every fault kind NewSchedule draws from by default, with
// its weight.
var AllFaults = []struct {
	Kind   FaultKind
	Weight int
}{
	{FaultKill, 4}, {FaultKillAll, 1}, {FaultPowerLoss, 2}, {FaultPowerLossAll, 1},
	{FaultPause, 3}, {FaultIsolate, 3}, {FaultMinority, 2}, {FaultSplit, 1}, {FaultBridge, 1},
	{FaultOneWay, 2}, {FaultFlap, 2}, {FaultDiskFull, 1}, {FaultReplace, 1}, {FaultRemovePartition, 1},
	{FaultNone, 1},
}

// NewSchedule draws a schedule from seed: the same seed and options give
// the same schedule.
func NewSchedule(seed uint64, o ScheduleOptions) Schedule {
	rng := rand.New(rand.NewPCG(seed, 0x6368616f73)) // "chaos"
	s := Schedule{Seed: seed, Nodes: o.Nodes}
	if s.Nodes == 0 {
		s.Nodes = 3
		if rng.IntN(3) == 0 {
			s.Nodes = 5
		}
	}
	switch o.Mounts {
	case 1:
		s.Mounts = true
	case -1:
		s.Mounts = false
	default:
		s.Mounts = rng.IntN(2) == 0
	}
	// Most runs never snapshot, so that every replica keeps the whole
	// event history; one in three snapshots often, to exercise snapshot
	// install and restart from a snapshot.
	s.SnapshotEvery = 1 << 30
	if rng.IntN(3) == 0 {
		s.SnapshotEvery = 100 + rng.IntN(300)
	}
	total := o.FaultTime
	if total <= 0 {
		total = 30 * time.Second
	}
	kinds := o.Faults
	weights := make([]int, 0, len(AllFaults))
	if kinds == nil {
		for _, f := range AllFaults {
			kinds = append(kinds, f.Kind)
			weights = append(weights, f.Weight)
		}
	} else {
		for range kinds {
			weights = append(weights, 1)
		}
	}
	sum := 0
	for _, w := range weights {
		sum += w
	}
	replaces := 0
	var used time.Duration
	for used < total {
		var k FaultKind
		for {
			x := rng.IntN(sum)
			for i, w := range weights {
				if x < w {
					k = kinds[i]
					break
				}
				x -= w
			}
			// At most two membership changes a run, and a bridge needs 5.
			if (k == FaultReplace || k == FaultRemovePartition) && replaces >= 2 {
				continue
			}
			if k == FaultBridge && s.Nodes < 5 {
				continue
			}
			break
		}
		e := Episode{Fault: k, Target: rng.IntN(s.Nodes), Other: Leader}
		if rng.IntN(3) == 0 {
			e.Target = Leader
		}
		e.Hold = time.Duration(1000+rng.IntN(3000)) * time.Millisecond
		e.Gap = time.Duration(500+rng.IntN(2000)) * time.Millisecond
		switch k {
		case FaultPause:
			// Longer than the election timeout (0.5–0.9 s).
			e.Hold = time.Duration(1500+rng.IntN(3000)) * time.Millisecond
		case FaultMinority:
			e.Targets = rng.Perm(s.Nodes)[:1+rng.IntN((s.Nodes-1)/2)]
			e.Target = 0
		case FaultSplit, FaultKillAll, FaultPowerLossAll, FaultNone:
			e.Target = 0
		case FaultOneWay:
			// leader → a follower, a follower → the leader, or between
			// two followers (a clash is resolved when the episode runs).
			a, b := rng.IntN(s.Nodes), rng.IntN(s.Nodes)
			switch rng.IntN(3) {
			case 0:
				e.Target, e.Other = Leader, a
			case 1:
				e.Target, e.Other = a, Leader
			default:
				e.Target, e.Other = a, b
			}
		case FaultFlap:
			e.Param = int64(100 + rng.IntN(600))
			e.Hold = time.Duration(2000+rng.IntN(3000)) * time.Millisecond
		case FaultDiskFull:
			e.Param = int64(20<<10 + rng.IntN(200<<10))
			e.Hold = time.Duration(3000+rng.IntN(3000)) * time.Millisecond
		case FaultReplace, FaultRemovePartition:
			replaces++
			e.Hold = 2 * time.Second
			e.Gap = time.Duration(2000+rng.IntN(2000)) * time.Millisecond
		}
		s.Episodes = append(s.Episodes, e)
		used += e.Hold + e.Gap
	}
	return s
}

func (s Schedule) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d: %d replicas, mounts %v, snapshot-every %d, %d episodes\n",
		s.Seed, s.Nodes, s.Mounts, s.SnapshotEvery, len(s.Episodes))
	for i, e := range s.Episodes {
		fmt.Fprintf(&b, "  %2d. %s\n", i+1, e)
	}
	return b.String()
}
