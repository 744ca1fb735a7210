package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/doozerfs/doozerfs/replica"
	"github.com/doozerfs/doozerfs/replica/wal"
)

// testFaultsEnv names the environment variable through which the chaos
// harness (replica/chaos) injects failures into `doozerfs serve`. It is
// for tests only: every item makes the replica lose data or stop on
// purpose. A comma-separated list of:
//
//	wal-fail-after=N   the WAL takes N bytes of records, then fails as on a
//	                   full disk (the replica stops; restart it without this)
//	power-loss-signal  SIGUSR1 ends the WAL as a power loss would (what was
//	                   not fdatasynced is zeroed) and kills the process
//	ack-before-fsync   a deliberately broken build: the WAL never
//	                   fdatasyncs, so acknowledged writes do not survive a
//	                   power loss
const testFaultsEnv = "DOOZERFS_TEST_FAULTS"

// testFaults parses DOOZERFS_TEST_FAULTS: the replica's TestFaults (nil
// without the variable) and whether SIGUSR1 means a power loss.
func testFaults(e *env) (tf *replica.TestFaults, powerLoss bool, err error) {
	v := e.getenv(testFaultsEnv)
	if v == "" {
		return nil, false, nil
	}
	tf = &replica.TestFaults{WAL: &wal.Faults{}}
	for _, item := range strings.Split(v, ",") {
		name, arg, _ := strings.Cut(strings.TrimSpace(item), "=")
		switch name {
		case "":
		case "wal-fail-after":
			n, err := strconv.ParseInt(arg, 10, 64)
			if err != nil || n <= 0 {
				return nil, false, usagef("%s: wal-fail-after=%q: want a positive number of bytes", testFaultsEnv, arg)
			}
			tf.WAL.FailAfterBytes = n
		case "power-loss-signal":
			powerLoss = true
		case "ack-before-fsync":
			tf.WAL.SkipDatasync = true
		default:
			return nil, false, usagef("%s: unknown item %q", testFaultsEnv, name)
		}
	}
	fmt.Fprintf(e.stderr, "doozerfs: TEST FAULTS ENABLED (%s=%s): this replica loses data on purpose; never use it in production\n", testFaultsEnv, v)
	return tf, powerLoss, nil
}

// armPowerLoss makes SIGUSR1 a simulated power loss of r: its WAL drops
// what was not synced, and the process dies at once, as if unplugged.
func armPowerLoss(r *replica.Replica, log *slog.Logger) (stop func()) {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGUSR1)
	done := make(chan struct{})
	go func() {
		select {
		case <-c:
		case <-done:
			return
		}
		err := r.SimulatePowerLoss()
		log.Warn("simulated power loss (test fault): killing the process", "err", err)
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
	}()
	return func() { signal.Stop(c); close(done) }
}
