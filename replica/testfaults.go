package replica

import "github.com/doozerfs/doozerfs/replica/wal"

// TestFaults are failures a test injects into a replica: the chaos harness
// (replica/chaos) sets them through serve's DOOZERFS_TEST_FAULTS. They
// make the replica lose data or stop on purpose. Production leaves
// Config.TestFaults nil.
type TestFaults struct {
	// WAL is handed to the write-ahead log (wal.Options.Faults):
	// FailAfterBytes stands in for a full disk, SkipDatasync for a broken
	// build that acknowledges writes before they are durable.
	WAL *wal.Faults
}

func (f *TestFaults) walFaults() *wal.Faults {
	if f == nil {
		return nil
	}
	return f.WAL
}

// SimulatePowerLoss is for tests only: it ends the replica's WAL as a
// power loss would (wal.WAL.SimulateCrash): what was written since the
// last fdatasync is zeroed on disk, and every later write to the WAL
// fails, so the replica stops. The caller then kills the process; a
// restart on the data directory sees what a real power loss would have
// left.
func (r *Replica) SimulatePowerLoss() error { return r.dd.WAL.SimulateCrash() }
