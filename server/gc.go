package server

import (
	"os"
	"runtime/debug"
)

// GCPercent is the garbage collector's target (GOGC) a platform process
// runs with unless GOGC is set: 400, against Go's 100. Admission decisions
// allocate about 114 KB each in OPA's evaluator, and in a profile of them a
// quarter of the CPU was the collector; their slowest 1 % were the ones a
// collection ran beside (BenchmarkAdmit: p99 1.8–2.0 ms at 100, 1.5 ms at
// 400, p50 400 → 355 µs). The cost is memory: the heap may grow to 5 times
// what is live, tens of MB for a server, not the jobs, which run in
// processes of their own.
const GCPercent = 400

// TuneGC sets the collector's target to GCPercent unless the GOGC
// environment variable chose one. `dsbx serve`, `dsbx worker` and the
// benchmark, which hosts the platform in its process, call it at start.
func TuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(GCPercent)
	}
}
