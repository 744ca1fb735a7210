package chaos

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/doozerfs/doozerfs/mount"
)

var doozerfsBin string

// TestMain builds the doozerfs binary the replicas run: without the race
// detector unless CHAOS_RACE=1 (see the package documentation).
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "doozerfs-chaos-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	doozerfsBin = filepath.Join(dir, "doozerfs")
	args := []string{"build", "-o", doozerfsBin}
	if os.Getenv("CHAOS_RACE") == "1" {
		args = append(args, "-race")
	}
	args = append(args, "github.com/doozerfs/doozerfs/cmd/doozerfs")
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building doozerfs: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// haveFUSE reports whether mounts can be used; with CI=true a missing
// capability is a failure.
func haveFUSE(t *testing.T) bool {
	t.Helper()
	_, errDev := os.Stat("/dev/fuse")
	_, errBin := exec.LookPath("fusermount3")
	if errDev == nil && errBin == nil {
		return true
	}
	msg := fmt.Sprintf("no FUSE (%v, %v): running without mounts", errDev, errBin)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Log(msg)
	return false
}

// runDir is where a run keeps its files: under CHAOS_DIR if set (kept
// there when the run fails), else the system's temporary directory.
func runDir(t *testing.T, seed uint64) string {
	base := os.Getenv("CHAOS_DIR")
	if base == "" {
		base = os.TempDir()
	}
	return filepath.Join(base, fmt.Sprintf("doozerfs-chaos-%d-%d", seed, time.Now().UnixNano()))
}

// runSeed runs one seed and fails t on a violation, printing the report
// (seed, schedule, violations, timeline, how to reproduce).
func runSeed(t *testing.T, cfg Config) *Report {
	t.Helper()
	cfg.Binary = doozerfsBin
	if cfg.Dir == "" {
		cfg.Dir = runDir(t, cfg.Seed)
	}
	cfg.ClearMount = mount.ClearStale
	if cfg.Logf == nil {
		cfg.Logf = t.Logf
	}
	if cfg.Options.Mounts == 1 && !haveFUSE(t) {
		cfg.Options.Mounts = -1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rep, err := Run(ctx, cfg)
	if err != nil {
		sched := NewSchedule(cfg.Seed, cfg.Options)
		if cfg.Schedule != nil {
			sched = *cfg.Schedule
		}
		t.Fatalf("chaos seed %d could not run: %v\n%s(files in %s)", cfg.Seed, err, sched, cfg.Dir)
	}
	return rep
}

func expectPass(t *testing.T, rep *Report) {
	t.Helper()
	if rep.Failed() {
		t.Errorf("%s", rep)
		return
	}
	t.Logf("%s", rep)
	os.RemoveAll(rep.Dir)
}

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return d
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return n
}

// shortRuns are CI's bounded version: a 3-replica cluster with mounts
// and two 5-replica ones without, each through about 25 s of faults.
// Seeds 1, 2 and 3 cover kill -9 (of the leader too), power loss of one
// replica and of all, pauses, every partition kind but the one-way cut,
// both membership changes, and a snapshot every 248 slots (seed 2).
var shortRuns = []ScheduleOptions{
	{Nodes: 3, Mounts: 1, FaultTime: 25 * time.Second},
	{Nodes: 5, Mounts: -1, FaultTime: 25 * time.Second},
	{Nodes: 5, Mounts: -1, FaultTime: 25 * time.Second},
}

// TestChaosShort is the chaos harness in CI: three fixed seeds (or
// CHAOS_SEEDS=a,b,…), under three minutes in all with -race on two cores.
func TestChaosShort(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos runs take minutes")
	}
	seeds := []uint64{1, 2, 3}
	if v := os.Getenv("CHAOS_SEEDS"); v != "" {
		seeds = nil
		for _, s := range strings.Split(v, ",") {
			n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
			if err != nil {
				t.Fatalf("CHAOS_SEEDS: %v", err)
			}
			seeds = append(seeds, n)
		}
	}
	for i, seed := range seeds {
		opts := shortRuns[i%len(shortRuns)]
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
			expectPass(t, runSeed(t, Config{Seed: seed, Options: opts}))
		})
	}
}

// TestChaosSeed runs the seed of CHAOS_SEED, with CHAOS_FAULT_TIME,
// CHAOS_NODES and CHAOS_MOUNTS (1 or 0) as a failing run printed them.
func TestChaosSeed(t *testing.T) {
	v := os.Getenv("CHAOS_SEED")
	if v == "" {
		t.Skip("set CHAOS_SEED to run one seed")
	}
	seed, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		t.Fatalf("CHAOS_SEED: %v", err)
	}
	opts := ScheduleOptions{FaultTime: envDuration(t, "CHAOS_FAULT_TIME", 60*time.Second), Nodes: envInt(t, "CHAOS_NODES", 0)}
	switch os.Getenv("CHAOS_MOUNTS") {
	case "1":
		opts.Mounts = 1
	case "0":
		opts.Mounts = -1
	}
	expectPass(t, runSeed(t, Config{Seed: seed, Options: opts}))
}

// TestChaosSoak runs seed after seed for SOAK_DURATION (make soak
// DURATION=…), from CHAOS_SEED_START (default: the clock), each through
// CHAOS_FAULT_TIME (default 60 s) of faults. It goes on after a failing
// seed, and fails at the end if any did.
func TestChaosSoak(t *testing.T) {
	v := os.Getenv("SOAK_DURATION")
	if v == "" {
		t.Skip("set SOAK_DURATION (make soak DURATION=30m)")
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("SOAK_DURATION=%q: %v", v, err)
	}
	first := uint64(time.Now().Unix())
	if s := os.Getenv("CHAOS_SEED_START"); s != "" {
		if first, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("CHAOS_SEED_START: %v", err)
		}
	}
	faultTime := envDuration(t, "CHAOS_FAULT_TIME", 60*time.Second)
	mounts := 0
	if !haveFUSE(t) {
		mounts = -1
	}
	start := time.Now()
	var failed []uint64
	seed := first
	for ; time.Since(start) < d; seed++ {
		opts := ScheduleOptions{FaultTime: faultTime, Mounts: mounts}
		rep := runSeed(t, Config{Seed: seed, Options: opts, Logf: func(string, ...any) {}})
		if rep.Failed() {
			failed = append(failed, seed)
			t.Errorf("%s", rep)
		} else {
			t.Logf("seed %d: PASS in %v: %s; %s", seed, rep.Took.Round(time.Second), rep.Stats,
				strings.ReplaceAll(strings.TrimSpace(rep.Schedule.String()), "\n", ";"))
			os.RemoveAll(rep.Dir)
		}
	}
	t.Logf("soak: seeds %d..%d (%d runs) in %v; failed: %v", first, seed-1, seed-first, time.Since(start).Round(time.Second), failed)
}

// TestChaosCatchesBrokenBuild shows that the harness catches a replica
// that acknowledges writes before they are durable: with
// DOOZERFS_TEST_FAULTS=ack-before-fsync the WAL never fdatasyncs, and a
// power loss of the whole cluster then loses acknowledged writes. The
// same schedule on the real build passes.
func TestChaosCatchesBrokenBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos runs take minutes")
	}
	sched := &Schedule{Nodes: 3, Mounts: false, SnapshotEvery: 1 << 30, Episodes: []Episode{
		{Fault: FaultNone, Hold: 3 * time.Second},
		{Fault: FaultPowerLossAll, Hold: time.Second, Gap: 2 * time.Second},
	}}
	rep := runSeed(t, Config{Seed: 7, Schedule: sched, TestFaults: []string{"ack-before-fsync"}})
	if !rep.Failed() {
		t.Fatalf("the broken build (ack before fsync) passed:\n%s", rep)
	}
	t.Logf("the broken build is caught:\n%s", rep)
	lost := false
	for _, v := range rep.Violations {
		lost = lost || v.Check == "durability" || v.Check == "linearizability" || v.Check == "reads" || v.Check == "sessions"
	}
	if !lost {
		t.Errorf("the broken build failed, but not for losing acknowledged writes:\n%s", rep)
	}
	os.RemoveAll(rep.Dir)
	t.Run("control", func(t *testing.T) {
		expectPass(t, runSeed(t, Config{Seed: 7, Schedule: sched}))
	})
}

// Regression: a replica isolated longer than gossip's failure detection
// (and the dead-timeout) was removed as dead once the partition healed and
// never came back, because memberlist on either side had given the other
// up for good (found by seeds 103 and 104 of the first soak).
func TestChaosRegressionGossipReconvergesAfterALongPartition(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos runs take minutes")
	}
	sched := &Schedule{Nodes: 3, Mounts: false, SnapshotEvery: 1 << 30, Episodes: []Episode{
		{Fault: FaultIsolate, Target: 1, Hold: 8 * time.Second, Gap: 2 * time.Second},
		{Fault: FaultSplit, Hold: 6 * time.Second, Gap: 2 * time.Second},
	}}
	expectPass(t, runSeed(t, Config{Seed: 103, Schedule: sched}))
}
