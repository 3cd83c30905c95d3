package audit

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// Each test here alters one kind of stored byte and shows that
// verification fails and names what was altered.

// patchFile overwrites len(b) bytes of dir/name at off, through its own file
// descriptor (so an open Log sees the change).
func patchFile(t *testing.T, dir, name string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// alterSignature flips a bit of the (first) signature of a signed note,
// keeping it well-formed.
func alterSignature(t *testing.T, signed []byte) []byte {
	t.Helper()
	i := bytes.Index(signed, []byte("\n\n— "))
	if i < 0 {
		t.Fatalf("no signature in %q", signed)
	}
	line := signed[i+2:]
	line = line[:bytes.IndexByte(line, '\n')]
	sp := bytes.LastIndexByte(line, ' ')
	sig, err := base64.StdEncoding.DecodeString(string(line[sp+1:]))
	if err != nil {
		t.Fatal(err)
	}
	sig[len(sig)-1] ^= 1 // the last byte: Ed25519 signature, after the 4-byte key hash
	forged := bytes.Clone(signed)
	copy(forged[i+2+sp+1:], base64.StdEncoding.EncodeToString(sig))
	if bytes.Equal(forged, signed) || len(forged) != len(signed) {
		t.Fatal("alterSignature did not change the note in place")
	}
	return forged
}

// (1) An entry's bytes altered in entries.jsonl: Verify of an export names
// the entry, and so does reopening the log.
func TestTamperStoredEntry(t *testing.T) {
	const k = 4
	dir := t.TempDir()
	l := openLog(t, dir)
	appendN(t, l, 0, tamperN)

	data, err := os.ReadFile(filepath.Join(dir, entriesFile))
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(data, []byte(fmt.Sprintf(`"note":"entry-%d"`, k)))
	if i < 0 {
		t.Fatal("entry 4 not found")
	}
	patchFile(t, dir, entriesFile, int64(i+len(`"note":"e`)), []byte("E"))

	records, cp, vkey, _ := exportLog(t, l)
	if !bytes.Contains(records[k], []byte(`"note":"eEtry-4"`)) {
		t.Fatalf("export does not hold the altered entry: %s", records[k])
	}
	_, err = Verify(records, cp, vkey)
	wantTamper(t, err, k, fmt.Sprintf("content altered (hash no longer matches prev of entry %d)", k+1))

	// Once closed, the log does not open: the entry no longer matches its
	// stored hashes.
	l.Close()
	_, err = Open(dir, testOrigin)
	if want := fmt.Sprintf("stored hash %d (of entry %d;", tlog.StoredHashIndex(0, k), k); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("reopen = %v, want an error containing %q", err, want)
	}
}

// (2) A byte of the hashes file altered in the middle: proofs served from
// it fail against a checkpoint signed before, and reopening the log fails
// naming the stored hash and its entry.
func TestTamperStoredHash(t *testing.T) {
	const n, k = 40, 20
	dir := t.TempDir()
	l := openLog(t, dir)
	defer l.Close()
	appendN(t, l, 0, n)
	signed, err := l.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	c := mustParse(t, signed, l.VerifierKey())
	records, _ := l.Records(0, n)

	idx := tlog.StoredHashIndex(0, k) // the leaf hash of entry k
	hf, _ := os.ReadFile(filepath.Join(dir, hashesFile))
	b := hf[idx*tlog.HashSize+11] ^ 0x40
	patchFile(t, dir, hashesFile, idx*tlog.HashSize+11, []byte{b})

	// Entry k+1's proof holds its sibling, entry k's leaf hash.
	p, err := l.InclusionProof(k+1, n)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyInclusion(c, k+1, records[k+1], p); err == nil {
		t.Errorf("an inclusion proof served from the altered hashes file verifies")
	}
	// The proof of entry k itself does not use its own leaf hash.
	p, _ = l.InclusionProof(k, n)
	if err := VerifyInclusion(c, k, records[k], p); err != nil {
		t.Errorf("inclusion proof of entry %d: %v", k, err)
	}
	// A checkpoint at size k+1 and a consistency proof from it, both served
	// from the altered file, do not verify against the one signed before.
	old, _ := l.CheckpointAt(k + 1)
	tp, err := l.ConsistencyProof(k+1, n)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyConsistency(mustParse(t, old, l.VerifierKey()), c, tp); !errors.Is(err, ErrNotConsistent) {
		t.Errorf("VerifyConsistency from the altered hashes file = %v, want ErrNotConsistent", err)
	}

	l.Close()
	_, err = Open(dir, testOrigin)
	want := fmt.Sprintf("stored hash %d (of entry %d; tree level 0 over entries [%d, %d))", idx, k, k, k+1)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("reopen = %v, want an error containing %q", err, want)
	}
}

// (3) A checkpoint's signature altered: ParseCheckpoint and Verify fail with
// ErrBadSignature.
func TestTamperCheckpointSignature(t *testing.T) {
	records, cp, vkey := tamperLog(t)
	forged := alterSignature(t, cp)
	if _, err := ParseCheckpoint(forged, vkey); !errors.Is(err, ErrBadSignature) {
		t.Errorf("ParseCheckpoint = %v, want ErrBadSignature", err)
	}
	_, err := Verify(records, forged, vkey)
	wantSignatureError(t, err)
	_, err = VerifyGrowth(records, forged, cp, vkey)
	wantSignatureError(t, err)
}

// (4) A published checkpoint altered in dir/checkpoints: Published fails
// with ErrBadSignature, and so does VerifyGrowth from the altered one.
func TestTamperPublishedCheckpoint(t *testing.T) {
	for _, what := range []string{"signature", "root"} {
		t.Run(what, func(t *testing.T) {
			dir := t.TempDir()
			l := openLog(t, dir)
			defer l.Close()
			for i := range 3 {
				appendN(t, l, 4*i, 4)
				if _, err := l.Publish(); err != nil {
					t.Fatal(err)
				}
			}
			pub, err := l.Published()
			if err != nil || len(pub) != 3 {
				t.Fatalf("Published = %d, %v", len(pub), err)
			}
			file := readPublishedFile(t, dir)
			i := bytes.Index(file, pub[1])
			var forged []byte
			switch what {
			case "signature":
				forged = alterSignature(t, pub[1])
			case "root":
				c := mustParse(t, pub[1], l.VerifierKey())
				edited := c
				edited.Root[0] ^= 1
				forged = bytes.Replace(pub[1], []byte(c.String()), []byte(edited.String()), 1)
			}
			patchFile(t, dir, checkpointsFile, int64(i), forged)

			_, err = l.Published()
			if !errors.Is(err, ErrBadSignature) || !strings.Contains(err.Error(), fmt.Sprintf("record at offset %d", i-len(publishedHeader(8, len(pub[1]))))) {
				t.Errorf("Published = %v, want ErrBadSignature naming the record", err)
			}
			records, cp, vkey, _ := exportLog(t, l)
			_, err = VerifyGrowth(records, forged, cp, vkey)
			wantSignatureError(t, err)
			if _, err := VerifyGrowth(records, pub[1], cp, vkey); err != nil {
				t.Errorf("VerifyGrowth from the intact checkpoint: %v", err)
			}
		})
	}
}
