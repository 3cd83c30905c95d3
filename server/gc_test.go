package server

import (
	"runtime/debug"
	"testing"
)

func TestTuneGC(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	t.Setenv("GOGC", "")
	TuneGC()
	if got := debug.SetGCPercent(100); got != GCPercent {
		t.Fatalf("GOGC %d after TuneGC, want %d", got, GCPercent)
	}
	t.Setenv("GOGC", "50") // the operator's choice stands
	TuneGC()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("TuneGC changed GOGC to %d though GOGC was set", got)
	}
}
