package audit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// fileSize returns the size of dir/name.
func fileSize(t *testing.T, dir, name string) int64 {
	t.Helper()
	st, err := os.Stat(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// appendBytes appends b to dir/name.
func appendBytes(t *testing.T, dir, name string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestCrashRecovery(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	appendN(t, l, 0, 3)
	entriesSize := fileSize(t, dir, entriesFile)
	l.Close()

	// A crash mid-append: half a record, no newline, and a hashes file
	// that lost the end of its last hash.
	appendBytes(t, dir, entriesFile, []byte(`{"seq":3,"time":"2025-03-01T00:00:00Z","prev":"AAAA`))
	hashes := filepath.Join(dir, hashesFile)
	if err := os.Truncate(hashes, fileSize(t, dir, hashesFile)-5); err != nil {
		t.Fatal(err)
	}

	l = openLog(t, dir)
	defer l.Close()
	if got := l.Size(); got != 3 {
		t.Fatalf("Size after recovery = %d, want 3", got)
	}
	if got := fileSize(t, dir, entriesFile); got != entriesSize {
		t.Errorf("entries.jsonl is %d bytes after recovery, want %d", got, entriesSize)
	}
	if got, want := fileSize(t, dir, hashesFile), tlog.StoredHashCount(3)*tlog.HashSize; got != want {
		t.Errorf("hashes is %d bytes after recovery, want %d", got, want)
	}
	appendN(t, l, 3, 2)
	records, cp, vkey, _ := exportLog(t, l)
	if r := mustVerify(t, records, cp, vkey); r.Size != 5 {
		t.Errorf("verified size = %d, want 5", r.Size)
	}
}

func TestRecoveryTrimsExtraHashes(t *testing.T) {
	// The hashes of an entry reached the disk but the entry did not.
	dir := t.TempDir()
	l := openLog(t, dir)
	appendN(t, l, 0, 4)
	l.Close()
	appendBytes(t, dir, hashesFile, make([]byte, 3*tlog.HashSize))

	l = openLog(t, dir)
	defer l.Close()
	if got, want := fileSize(t, dir, hashesFile), tlog.StoredHashCount(4)*tlog.HashSize; got != want {
		t.Errorf("hashes is %d bytes after recovery, want %d", got, want)
	}
	appendN(t, l, 4, 3)
	records, cp, vkey, _ := exportLog(t, l)
	mustVerify(t, records, cp, vkey)
}

func TestRecoveryRecomputesWrongHashes(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	appendN(t, l, 0, 6)
	cp0, _ := l.Checkpoint()
	l.Close()

	// Flip a byte in a stored hash in the middle of the file.
	path := filepath.Join(dir, hashesFile)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[tlog.StoredHashIndex(0, 3)*tlog.HashSize+7] ^= 0xff
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}

	l = openLog(t, dir)
	defer l.Close()
	cp1, err := l.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	c0, _ := ParseCheckpoint(cp0, l.VerifierKey())
	c1, _ := ParseCheckpoint(cp1, l.VerifierKey())
	if c0 != c1 {
		t.Errorf("checkpoint after recovery = %+v, want %+v", c1, c0)
	}
	appendN(t, l, 6, 2)
	records, cp, vkey, _ := exportLog(t, l)
	mustVerify(t, records, cp, vkey)
}

func TestOpenRefusesCorruptCompleteLine(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	appendN(t, l, 0, 2)
	l.Close()
	appendBytes(t, dir, entriesFile, []byte("not json\n"))
	_, err := Open(dir, testOrigin)
	if err == nil || !strings.Contains(err.Error(), "entry 2") {
		t.Fatalf("Open = %v, want an error about entry 2", err)
	}
}
