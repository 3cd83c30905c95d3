// Package failpoint lets crash tests kill the process at a named point of
// its work, so that each step of a job's life (and of an import, and of an
// audit append) can be interrupted deterministically.
//
// A point is armed by starting the process with DSBX_FAILPOINT set to its
// name, or to NAME#N to kill the process at the point's Nth hit rather than
// its first; the variable is read once, when the package initialises.
// Unarmed, Hit costs one string comparison.
package failpoint

import (
	"os"
	"strconv"
	"strings"
	"sync/atomic"
)

// Env is the environment variable that names the armed failpoint.
const Env = "DSBX_FAILPOINT"

// The failpoints, in the order a job meets them.
const (
	// Admitted is in jobs.Service.Submit after the policy decision, before
	// anything about the job is recorded or stored.
	Admitted = "job.admitted"
	// Decided is in jobs.Service.Submit after job.submitted and job.decided
	// are in the audit log, before the job's row is inserted.
	Decided = "job.decided"
	// Submitted is in jobs.Service.Submit after the job is stored, before
	// the response is sent.
	Submitted = "job.submitted"
	// Query is in sandbox/worker.Run right after the worker process started:
	// the server dies while the job's query runs.
	Query = "job.query"
	// ResultWritten is in jobs.Service.execute after the worker wrote the
	// quarantined result, before job.ran is recorded.
	ResultWritten = "job.result"
	// Check is in jobs.Service.check after the disclosure checks, before the
	// released file is written.
	Check = "job.check"
	// Release is in jobs.Service.settle after released.parquet is written
	// and the differencing ledger kept, before result.released is recorded.
	Release = "job.release"
	// Released is in jobs.Service.settle after result.released is in the
	// log, before the job's released state is saved.
	Released = "job.released"
	// AuditWrite is in audit.Log's committer after a batch's records and
	// hashes are written, before they are fsynced and acknowledged.
	AuditWrite = "audit.write"
	// ImportStaged is in datasets.Catalog.Import after the snapshot is
	// written to the staging directory, before it is checked and stored.
	ImportStaged = "import.staged"
	// ImportStore is in datasets.Catalog.Import after the snapshot is moved
	// into place, before its version row is committed.
	ImportStore = "import.store"
)

// armed is the failpoint named by Env when the process started, and nth
// the hit that kills.
var armed, nth = parse(os.Getenv(Env))

// hits counts the armed point's hits.
var hits atomic.Int64

func parse(v string) (string, int64) {
	name, n, ok := strings.Cut(v, "#")
	if !ok {
		return v, 1
	}
	k, err := strconv.ParseInt(n, 10, 64)
	if err != nil || k < 1 {
		k = 1
	}
	return name, k
}

// Hit kills the process with SIGKILL, at once and without running deferred
// code, if name is the armed failpoint (at its Nth hit for NAME#N);
// otherwise it does nothing.
func Hit(name string) {
	if name == armed && armed != "" && hits.Add(1) >= nth {
		if p, err := os.FindProcess(os.Getpid()); err == nil {
			p.Kill() // SIGKILL on Unix
		}
		select {} // the signal is on its way
	}
}
