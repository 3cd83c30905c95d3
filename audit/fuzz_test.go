package audit

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// fuzzLog is a real log of fuzzLogSize entries, built once per process:
// its files, its records and the signed checkpoint after each append.
type fuzzLogFiles struct {
	entries, hashes []byte
	signing, vkey   []byte   // the key files
	records         [][]byte // the records, in order
	checkpoints     [][]byte // checkpoints[n] is signed for the first n records
}

const fuzzLogSize = 5

var fuzzLogOnce = sync.OnceValues(func() (*fuzzLogFiles, error) {
	dir, err := os.MkdirTemp("", "dsbx-audit-fuzz-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	l, err := Open(dir, testOrigin, WithClock(testClock()))
	if err != nil {
		return nil, err
	}
	defer l.Close()
	out := &fuzzLogFiles{}
	for i := 0; ; i++ {
		cp, err := l.Checkpoint()
		if err != nil {
			return nil, err
		}
		out.checkpoints = append(out.checkpoints, cp)
		if i == fuzzLogSize {
			break
		}
		if _, err := l.Append(context.Background(), Event{Kind: "job.submitted", Principal: "operator/7", Subject: "job/" + string(rune('a'+i)),
			Data: map[string]any{"note": "entry", "rows": i, "名称": "人口"}}); err != nil {
			return nil, err
		}
	}
	if out.records, err = l.Records(0, fuzzLogSize); err != nil {
		return nil, err
	}
	for name, dst := range map[string]*[]byte{entriesFile: &out.entries, hashesFile: &out.hashes, signingKeyFile: &out.signing, verifierKeyFile: &out.vkey} {
		if *dst, err = os.ReadFile(filepath.Join(dir, name)); err != nil {
			return nil, err
		}
	}
	return out, nil
})

func fuzzLog(tb testing.TB) *fuzzLogFiles {
	tb.Helper()
	fl, err := fuzzLogOnce()
	if err != nil {
		tb.Fatalf("building the fuzz log: %v", err)
	}
	return fl
}

// mangled returns b cut at a few places and with a few bytes flipped.
func mangled(b []byte) [][]byte {
	out := [][]byte{b[:len(b)/2], b[:len(b)-1], b[:len(b)-2], {}}
	for _, i := range []int{0, 7, len(b) / 3, len(b) / 2, len(b) - 2} {
		c := bytes.Clone(b)
		c[i] ^= 0x01
		out = append(out, c)
	}
	return out
}

// FuzzRecover opens a log directory whose entries.jsonl and hashes hold
// fuzzed bytes (with the real key pair). Open must not panic; when it
// fails, it names the problem; when it succeeds, it changed entries.jsonl
// only by cutting a torn last line, the hashes file holds exactly the
// stored hashes of the records, and reopening finds the same log and
// changes nothing.
func FuzzRecover(f *testing.F) {
	fl := fuzzLog(f)
	f.Add(fl.entries, fl.hashes)
	for _, e := range mangled(fl.entries) {
		f.Add(e, fl.hashes)
	}
	for _, h := range mangled(fl.hashes) {
		f.Add(fl.entries, h)
	}
	f.Add(append(bytes.Clone(fl.entries), `{"seq":5,"kind":"x"`...), fl.hashes) // torn append
	f.Add(fl.entries, fl.hashes[:len(fl.hashes)-tlog.HashSize])                 // hashes of the last entry lost
	f.Add([]byte("\n"), []byte{})
	f.Add([]byte(`{"seq":0}`+"\n"), []byte{})
	f.Fuzz(func(t *testing.T, entries, hashes []byte) {
		dir := t.TempDir()
		for name, data := range map[string][]byte{entriesFile: entries, hashesFile: hashes, signingKeyFile: fl.signing, verifierKeyFile: fl.vkey} {
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		l, err := Open(dir, testOrigin)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("Open failed without a message")
			}
			return
		}
		size := l.Size()
		records, err := l.Records(0, size)
		cp, cerr := l.Checkpoint()
		l.Close()
		if err != nil || cerr != nil {
			t.Fatalf("opened log: records %v, checkpoint %v", err, cerr)
		}
		// entries.jsonl is the input up to its last newline.
		kept := entries[:bytes.LastIndexByte(entries, '\n')+1]
		gotEntries, _ := os.ReadFile(filepath.Join(dir, entriesFile))
		if !bytes.Equal(gotEntries, kept) {
			t.Fatalf("entries.jsonl changed beyond cutting the torn last line:\nin  %q\nout %q", entries, gotEntries)
		}
		var joined []byte
		for _, r := range records {
			joined = append(append(joined, r...), '\n')
		}
		if !bytes.Equal(joined, kept) || int64(bytes.Count(kept, []byte("\n"))) != size {
			t.Fatalf("%d records %q read back from entries %q", size, joined, kept)
		}
		// The hashes file holds the stored hashes of exactly these records.
		var want memHashes
		for i, r := range records {
			hs, err := tlog.StoredHashes(int64(i), r, want)
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, hs...)
		}
		var wantBytes []byte
		for _, h := range want {
			wantBytes = append(wantBytes, h[:]...)
		}
		gotHashes, _ := os.ReadFile(filepath.Join(dir, hashesFile))
		if !bytes.Equal(gotHashes, wantBytes) {
			t.Fatalf("hashes file after recovery is not the stored hashes of the records (%d bytes, want %d)", len(gotHashes), len(wantBytes))
		}
		// The checkpoint signs the tree hash of these records.
		c, err := ParseCheckpoint(cp, string(fl.vkey))
		if err != nil {
			t.Fatal(err)
		}
		root, err := tlog.TreeHash(size, want)
		if err != nil || c.Size != size || c.Root != root {
			t.Fatalf("checkpoint %+v, want size %d root %s (%v)", c, size, base64.StdEncoding.EncodeToString(root[:]), err)
		}
		// A good log verifies; an opened one verifies exactly when its
		// records chain (recovery does not check prev).
		if bytes.Equal(kept, fl.entries) {
			if _, err := Verify(records, cp, string(fl.vkey)); err != nil {
				t.Fatalf("the real log, recovered, does not verify: %v", err)
			}
		}
		// Reopening finds the same log and repairs nothing.
		l2, err := Open(dir, testOrigin)
		if err != nil {
			t.Fatalf("reopen after a successful open: %v", err)
		}
		size2 := l2.Size()
		l2.Close()
		gotEntries2, _ := os.ReadFile(filepath.Join(dir, entriesFile))
		gotHashes2, _ := os.ReadFile(filepath.Join(dir, hashesFile))
		if size2 != size || !bytes.Equal(gotEntries2, gotEntries) || !bytes.Equal(gotHashes2, gotHashes) {
			t.Fatalf("reopen changed the log: size %d then %d", size, size2)
		}
	})
}

// FuzzVerify verifies an export whose entries.jsonl and checkpoint hold
// fuzzed bytes, against the real verifier key. Verify must not panic; it
// fails with a *TamperError naming an entry within the log, or an error
// naming the problem; and a log that verifies is unaltered: exactly the
// first N records of the real log, for the N its checkpoint signs.
func FuzzVerify(f *testing.F) {
	fl := fuzzLog(f)
	var prefix []byte
	for n, cp := range fl.checkpoints {
		f.Add(bytes.Clone(prefix), cp)
		if n < len(fl.records) {
			prefix = append(append(prefix, fl.records[n]...), '\n')
		}
	}
	full := fl.checkpoints[fuzzLogSize]
	for _, e := range mangled(fl.entries) {
		f.Add(e, full)
	}
	for _, c := range mangled(full) {
		f.Add(fl.entries, c)
	}
	// Entries reordered, and one dropped.
	f.Add(bytes.Join([][]byte{fl.records[1], fl.records[0], fl.records[2], fl.records[3], fl.records[4], nil}, []byte("\n")), full)
	f.Add(bytes.Join([][]byte{fl.records[0], fl.records[1], fl.records[3], fl.records[4], nil}, []byte("\n")), full)
	f.Fuzz(func(t *testing.T, entries, checkpoint []byte) {
		// The export's files, written without WriteExport's fsyncs, which
		// would make this a benchmark of the disk.
		dir := t.TempDir()
		for name, data := range map[string][]byte{exportEntriesFile: entries, exportCheckpointFile: checkpoint, exportVerifierFile: fl.vkey} {
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		records, cp, vkey, err := ReadExport(dir)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := Verify(records, cp, vkey)
		if err != nil {
			var te *TamperError
			switch {
			case errors.As(err, &te):
				if te.Reason == "" || te.Seq < 0 || te.Seq > max(int64(len(records)), fuzzLogSize) {
					t.Fatalf("tamper error %#v for %d records", te, len(records))
				}
			case err.Error() == "":
				t.Fatal("Verify failed without a message")
			}
			return
		}
		n := rep.Size
		if n < 0 || n > fuzzLogSize || int64(len(records)) != n {
			t.Fatalf("verified %d records as a log of %d", len(records), n)
		}
		for i, r := range records {
			if !bytes.Equal(r, fl.records[i]) {
				t.Fatalf("verified although record %d was altered:\nhave %q\nwant %q", i, r, fl.records[i])
			}
		}
		c, err := ParseCheckpoint(fl.checkpoints[n], vkey)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Root != base64.StdEncoding.EncodeToString(c.Root[:]) || rep.Origin != testOrigin {
			t.Fatalf("report %+v, want root %x of %s", rep, c.Root, testOrigin)
		}
	})
}
