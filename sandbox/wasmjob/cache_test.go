package wasmjob

import (
	"errors"
	"path/filepath"
	"testing"
)

// A module compiled into the shared cache by the compile worker runs in a
// job's worker under the job's page limit, not the compiler's: wazero's
// file cache, loaded straight into a runtime with a smaller limit, once let
// a Go guest's memory grow until the worker's memory cap killed it.
func TestCachedModuleKeepsThePageLimit(t *testing.T) {
	b := buildTestGuest(t, "escape", "region")
	dir := t.TempDir()
	cache := filepath.Join(dir, "cache")
	if _, err := Check(ctx(t), b, cache); err != nil {
		t.Fatal(err)
	}
	s := spec(t, b, "region")
	s.CacheDir = cache
	s.Limits.Memory, s.Limits.MemoryPages = "16MB", 256
	rep, err := RunIsolated(ctx(t), s)
	// The guest writes no Arrow stream: the host refuses its output.
	var oe *OutputError
	if rep == nil || rep.Guest == nil || rep.Guest.PeakPages > 256 || !errors.As(err, &oe) || oe.Code != CodeUndecodable {
		t.Fatalf("err %v, report %+v; want the guest to finish within 256 pages and its output refused", err, rep)
	}
}
