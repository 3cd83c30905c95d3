package audit

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

const testOrigin = "datasandbox.test/audit"

// testClock returns a clock that starts at a fixed time and advances one
// second per call; it is safe for concurrent use.
func testClock() func() time.Time {
	var mu sync.Mutex
	t := time.Date(2025, 3, 1, 8, 0, 0, 0, time.FixedZone("CST", 8*3600))
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(time.Second)
		return t
	}
}

// openLog opens the log in dir with a test clock, failing the test on error.
func openLog(t testing.TB, dir string) *Log {
	t.Helper()
	l, err := Open(dir, testOrigin, WithClock(testClock()))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l
}

// appendN appends n events numbered from start.
func appendN(t testing.TB, l *Log, start, n int) {
	t.Helper()
	for i := start; i < start+n; i++ {
		_, err := l.Append(context.Background(), Event{
			Kind:      "job.submitted",
			Principal: "operator/7",
			Subject:   fmt.Sprintf("job/%d", i),
			Data:      map[string]any{"note": fmt.Sprintf("entry-%d", i), "rows": i},
		})
		if err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
	}
}

// exportLog exports l to a fresh directory and reads the export back.
func exportLog(t testing.TB, l *Log) (records [][]byte, checkpoint []byte, vkey string, dir string) {
	t.Helper()
	dir = t.TempDir()
	if err := l.Export(context.Background(), dir); err != nil {
		t.Fatalf("Export: %v", err)
	}
	records, checkpoint, vkey, err := ReadExport(dir)
	if err != nil {
		t.Fatalf("ReadExport: %v", err)
	}
	return records, checkpoint, vkey, dir
}

// mustVerify fails the test unless the records verify.
func mustVerify(t testing.TB, records [][]byte, checkpoint []byte, vkey string) Report {
	t.Helper()
	r, err := Verify(records, checkpoint, vkey)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return r
}

// wantTamper fails the test unless err is a *TamperError naming seq with a
// reason containing reason.
func wantTamper(t testing.TB, err error, seq int64, reason string) {
	t.Helper()
	var te *TamperError
	if !errors.As(err, &te) {
		t.Fatalf("Verify error = %v, want *TamperError", err)
	}
	if te.Seq != seq {
		t.Errorf("TamperError.Seq = %d, want %d (%v)", te.Seq, seq, te)
	}
	if !strings.Contains(te.Reason, reason) {
		t.Errorf("TamperError.Reason = %q, want it to contain %q", te.Reason, reason)
	}
	if want := fmt.Sprintf("audit: entry %d: ", te.Seq); !strings.Contains(te.Error(), want) {
		t.Errorf("Error() = %q, want prefix %q", te.Error(), want)
	}
}

// clone deep-copies records so a test can change them.
func clone(records [][]byte) [][]byte {
	out := make([][]byte, len(records))
	for i, r := range records {
		out[i] = append([]byte(nil), r...)
	}
	return out
}

// signText signs an arbitrary note text with the log's key.
func signText(l *Log, text string) ([]byte, error) {
	return note.Sign(&note.Note{Text: text}, l.signer)
}
