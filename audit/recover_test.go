package audit

import (
	"bytes"
	"fmt"
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

// flipHashByte flips one byte of the stored hash with index idx.
func flipHashByte(t *testing.T, dir string, idx int64) {
	t.Helper()
	path := filepath.Join(dir, hashesFile)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[idx*tlog.HashSize+7] ^= 0xff
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// wantRepaired reopens the log in dir and checks that recovery rewrote the
// stored hashes so that the log has the checkpoint cp0 again and grows on.
func wantRepaired(t *testing.T, dir string, cp0 []byte) {
	t.Helper()
	l := openLog(t, dir)
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
	n := int(l.Size())
	appendN(t, l, n, 2)
	records, cp, vkey, _ := exportLog(t, l)
	mustVerify(t, records, cp, vkey)
	for seq := range int64(n + 2) {
		p, err := l.InclusionProof(seq, int64(n+2))
		if err != nil {
			t.Fatal(err)
		}
		c, _ := ParseCheckpoint(cp, vkey)
		if err := VerifyInclusion(c, seq, records[seq], p); err != nil {
			t.Errorf("after recovery: inclusion proof of entry %d: %v", seq, err)
		}
	}
}

// A crash can leave wrong bytes in the hashes of the last record (a write
// that reached the disk only in part); recovery recomputes them.
func TestRecoveryRecomputesLastRecordHashes(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	appendN(t, l, 0, 8)
	cp0, _ := l.Checkpoint()
	l.Close()
	// Entry 7 stores hashes 11 (its leaf) to 14; flip its level-2 hash.
	flipHashByte(t, dir, tlog.StoredHashIndex(0, 7)+2)
	wantRepaired(t, dir, cp0)
}

// Group commit writes the hashes of several records at once, so a crash can
// leave wrong hashes for the last few records, followed by nothing; recovery
// recomputes them too.
func TestRecoveryRecomputesWrongTail(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	appendN(t, l, 0, 9)
	cp0, _ := l.Checkpoint()
	l.Close()
	for _, seq := range []int64{6, 7, 8} {
		flipHashByte(t, dir, tlog.StoredHashIndex(0, seq))
	}
	wantRepaired(t, dir, cp0)

	// Wrong hashes for entries 6 and 7, and the hashes file ends early.
	dir = t.TempDir()
	l = openLog(t, dir)
	appendN(t, l, 0, 9)
	cp0, _ = l.Checkpoint()
	l.Close()
	flipHashByte(t, dir, tlog.StoredHashIndex(0, 6))
	flipHashByte(t, dir, tlog.StoredHashIndex(0, 7))
	if err := os.Truncate(filepath.Join(dir, hashesFile), tlog.StoredHashIndex(0, 8)*tlog.HashSize+3); err != nil {
		t.Fatal(err)
	}
	wantRepaired(t, dir, cp0)
}

// A wrong stored hash in the middle of the file, with right hashes after
// it, is not what a crash leaves: Open fails, names it, and leaves the file
// as it found it. (Recovery used to recompute it silently.)
func TestOpenRefusesAlteredHashes(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	appendN(t, l, 0, 6)
	l.Close()
	idx := tlog.StoredHashIndex(0, 3) // the leaf hash of entry 3
	flipHashByte(t, dir, idx)
	before, err := os.ReadFile(filepath.Join(dir, hashesFile))
	if err != nil {
		t.Fatal(err)
	}

	_, err = Open(dir, testOrigin)
	want := fmt.Sprintf("stored hash %d (of entry 3; tree level 0 over entries [3, 4))", idx)
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "altered") {
		t.Fatalf("Open = %v, want an error containing %q", err, want)
	}
	after, err := os.ReadFile(filepath.Join(dir, hashesFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Errorf("the failed Open changed the hashes file")
	}
	// A higher-level hash of an earlier entry is named with its level.
	flipHashByte(t, dir, idx) // undo
	flipHashByte(t, dir, idx+1)
	_, err = Open(dir, testOrigin)
	if want := fmt.Sprintf("stored hash %d (of entry 3; tree level 1 over entries [2, 4))", idx+1); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Open = %v, want an error containing %q", err, want)
	}
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
