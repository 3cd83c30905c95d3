package audit

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// mustParse parses a signed checkpoint, failing the test on error.
func mustParse(t testing.TB, signed []byte, vkey string) Checkpoint {
	t.Helper()
	c, err := ParseCheckpoint(signed, vkey)
	if err != nil {
		t.Fatalf("ParseCheckpoint: %v", err)
	}
	return c
}

func TestProofs(t *testing.T) {
	const total = 300
	rng := rand.New(rand.NewPCG(9, 2))
	l := openLog(t, t.TempDir())
	defer l.Close()
	vkey := l.VerifierKey()

	// Grow the log in stages of random length; after each stage sign
	// checkpoints at random sizes up to the current one, 100 in all.
	var cps []Checkpoint
	for n := 0; n < total; {
		step := min(1+rng.IntN(40), total-n)
		appendN(t, l, n, step)
		n += step
		k := 100 * n / total
		for len(cps) < k {
			size := rng.Int64N(int64(n) + 1)
			signed, err := l.CheckpointAt(size)
			if err != nil {
				t.Fatalf("CheckpointAt(%d): %v", size, err)
			}
			cps = append(cps, mustParse(t, signed, vkey))
		}
	}
	records, err := l.Records(0, total)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cps {
		if want := treeHashOf(t, records[:c.Size]); c.Root != want || c.Origin != testOrigin {
			t.Fatalf("CheckpointAt(%d) = %+v, want root %x", c.Size, c, want)
		}
	}
	now, _ := l.Checkpoint()
	at, _ := l.CheckpointAt(total)
	if mustParse(t, now, vkey) != mustParse(t, at, vkey) {
		t.Errorf("CheckpointAt(Size()) differs from Checkpoint()")
	}

	// Consistency between 100 random pairs.
	for range 100 {
		old, new := cps[rng.IntN(len(cps))], cps[rng.IntN(len(cps))]
		if old.Size > new.Size {
			old, new = new, old
		}
		p, err := l.ConsistencyProof(old.Size, new.Size)
		if err != nil {
			t.Fatalf("ConsistencyProof(%d, %d): %v", old.Size, new.Size, err)
		}
		if err := VerifyConsistency(old, new, p); err != nil {
			t.Errorf("VerifyConsistency(%d, %d): %v", old.Size, new.Size, err)
		}
		if old.Size < new.Size {
			if err := VerifyConsistency(new, old, p); !errors.Is(err, ErrNotConsistent) {
				t.Errorf("VerifyConsistency(%d, %d) backwards = %v, want ErrNotConsistent", new.Size, old.Size, err)
			}
		}
		if len(p) > 0 {
			bad := slices.Clone(p)
			bad[rng.IntN(len(bad))][3] ^= 1
			if err := VerifyConsistency(old, new, bad); !errors.Is(err, ErrNotConsistent) {
				t.Errorf("VerifyConsistency(%d, %d) with a damaged proof = %v, want ErrNotConsistent", old.Size, new.Size, err)
			}
		}
	}

	// Inclusion of random entries in random later checkpoints.
	for checked := 0; checked < 100; {
		c := cps[rng.IntN(len(cps))]
		if c.Size == 0 {
			continue
		}
		checked++
		seq := rng.Int64N(c.Size)
		p, err := l.InclusionProof(seq, c.Size)
		if err != nil {
			t.Fatalf("InclusionProof(%d, %d): %v", seq, c.Size, err)
		}
		if err := VerifyInclusion(c, seq, records[seq], p); err != nil {
			t.Errorf("VerifyInclusion(%d in %d): %v", seq, c.Size, err)
		}
		if c.Size < 2 {
			continue
		}
		other := (seq + 1 + rng.Int64N(c.Size-1)) % c.Size
		if err := VerifyInclusion(c, seq, records[other], p); err == nil {
			t.Errorf("VerifyInclusion(%d in %d) succeeded with the record of entry %d", seq, c.Size, other)
		}
		if err := VerifyInclusion(c, other, records[seq], p); err == nil {
			t.Errorf("VerifyInclusion(%d in %d) succeeded for seq %d", seq, c.Size, other)
		}
		if err := VerifyInclusion(c, seq, alterData(t, records, int(seq))[seq], p); err == nil {
			t.Errorf("VerifyInclusion(%d in %d) succeeded with altered data", seq, c.Size)
		}
		if err := VerifyInclusion(c, seq, records[seq], tlog.RecordProof(nil)); err == nil && c.Size > 1 {
			t.Errorf("VerifyInclusion(%d in %d) succeeded without a proof", seq, c.Size)
		}
	}
}

func TestProofsAgainstOtherLog(t *testing.T) {
	l := openLog(t, t.TempDir())
	defer l.Close()
	appendN(t, l, 0, 20)
	records, _ := l.Records(0, 20)
	p, err := l.InclusionProof(7, 20)
	if err != nil {
		t.Fatal(err)
	}
	tp, err := l.ConsistencyProof(10, 20)
	if err != nil {
		t.Fatal(err)
	}
	old := mustParse(t, must(l.CheckpointAt(10)), l.VerifierKey())

	for name, origin := range map[string]string{"same origin": testOrigin, "other origin": "other.test/audit"} {
		t.Run(name, func(t *testing.T) {
			other, err := Open(t.TempDir(), origin, WithClock(testClock()))
			if err != nil {
				t.Fatal(err)
			}
			defer other.Close()
			appendN(t, other, 100, 20)
			signed, _ := other.Checkpoint()
			if _, err := ParseCheckpoint(signed, l.VerifierKey()); !errors.Is(err, ErrBadSignature) {
				t.Errorf("other log's checkpoint with our key: %v, want ErrBadSignature", err)
			}
			c := mustParse(t, signed, other.VerifierKey())
			if err := VerifyInclusion(c, 7, records[7], p); err == nil {
				t.Errorf("VerifyInclusion succeeded against another log's checkpoint")
			}
			err = VerifyConsistency(old, c, tp)
			if err == nil {
				t.Fatalf("VerifyConsistency succeeded against another log's checkpoint")
			}
			if origin == testOrigin && !errors.Is(err, ErrNotConsistent) {
				t.Errorf("VerifyConsistency = %v, want ErrNotConsistent", err)
			}
		})
	}
}

// must returns b, panicking on err.
func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func TestProofEdges(t *testing.T) {
	l := openLog(t, t.TempDir())
	defer l.Close()
	vkey := l.VerifierKey()
	empty := mustParse(t, must(l.CheckpointAt(0)), vkey)
	appendN(t, l, 0, 5)
	records, _ := l.Records(0, 5)

	for _, args := range [][2]int64{{-1, 5}, {5, 5}, {0, 0}, {0, 6}, {3, 2}} {
		if _, err := l.InclusionProof(args[0], args[1]); err == nil {
			t.Errorf("InclusionProof(%d, %d) succeeded", args[0], args[1])
		}
	}
	for _, args := range [][2]int64{{-1, 5}, {3, 2}, {0, 6}} {
		if _, err := l.ConsistencyProof(args[0], args[1]); err == nil {
			t.Errorf("ConsistencyProof(%d, %d) succeeded", args[0], args[1])
		}
	}
	for _, size := range []int64{-1, 6} {
		if _, err := l.CheckpointAt(size); err == nil {
			t.Errorf("CheckpointAt(%d) succeeded", size)
		}
	}

	// From the empty log, and between equal sizes, nothing needs proving.
	one := mustParse(t, must(l.CheckpointAt(1)), vkey)
	five := mustParse(t, must(l.CheckpointAt(5)), vkey)
	for _, pair := range [][2]Checkpoint{{empty, five}, {empty, empty}, {five, five}, {one, five}} {
		p, err := l.ConsistencyProof(pair[0].Size, pair[1].Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := VerifyConsistency(pair[0], pair[1], p); err != nil {
			t.Errorf("VerifyConsistency(%d, %d): %v", pair[0].Size, pair[1].Size, err)
		}
	}
	p, _ := l.InclusionProof(0, 1)
	if err := VerifyInclusion(one, 0, records[0], p); err != nil {
		t.Errorf("VerifyInclusion(0 in 1): %v", err)
	}
	if err := VerifyInclusion(one, 1, records[1], p); err == nil {
		t.Errorf("VerifyInclusion of entry 1 in a checkpoint of 1 entry succeeded")
	}

	// A checkpoint of the same size with another root: the error names
	// both sizes and roots.
	forged := five
	forged.Root[0] ^= 1
	err := VerifyConsistency(five, forged, nil)
	if !errors.Is(err, ErrNotConsistent) || !strings.Contains(err.Error(), b64(five.Root)) || !strings.Contains(err.Error(), b64(forged.Root)) {
		t.Errorf("VerifyConsistency with a forged root = %v", err)
	}
	badEmpty := empty
	badEmpty.Root = five.Root
	if err := VerifyConsistency(badEmpty, five, nil); !errors.Is(err, ErrNotConsistent) {
		t.Errorf("VerifyConsistency from a wrong empty root = %v", err)
	}

	l.Close()
	for name, err := range map[string]error{
		"InclusionProof":   func() error { _, err := l.InclusionProof(0, 1); return err }(),
		"ConsistencyProof": func() error { _, err := l.ConsistencyProof(0, 1); return err }(),
		"CheckpointAt":     func() error { _, err := l.CheckpointAt(1); return err }(),
		"Publish":          func() error { _, err := l.Publish(); return err }(),
		"Published":        func() error { _, err := l.Published(); return err }(),
	} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
}

// rewriteWithKeys opens a new log in a fresh directory that uses the keys of
// the log in dir: what someone holding the signing key can make.
func rewriteWithKeys(t *testing.T, dir string) *Log {
	t.Helper()
	newDir := t.TempDir()
	for _, name := range []string{signingKeyFile, verifierKeyFile} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(newDir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return openLog(t, newDir)
}

func TestVerifyGrowth(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	defer l.Close()
	appendN(t, l, 0, 12)
	saved, err := l.Checkpoint() // what the regulator kept
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 12, 8)
	records, cp, vkey, _ := exportLog(t, l)

	t.Run("grown", func(t *testing.T) {
		r, err := VerifyGrowth(records, saved, cp, vkey)
		if err != nil || r.Size != 20 || r.Origin != testOrigin {
			t.Fatalf("VerifyGrowth = %+v, %v", r, err)
		}
		if _, err := VerifyGrowth(records, cp, cp, vkey); err != nil {
			t.Errorf("VerifyGrowth against a checkpoint of the same size: %v", err)
		}
		empty, _ := l.CheckpointAt(0)
		if _, err := VerifyGrowth(records, empty, cp, vkey); err != nil {
			t.Errorf("VerifyGrowth from the empty log: %v", err)
		}
	})
	t.Run("rewritten", func(t *testing.T) {
		// The operator, who holds the key, rewrote entry 5 and re-chained
		// and re-signed the log: the export verifies on its own.
		rl := rewriteWithKeys(t, dir)
		defer rl.Close()
		appendN(t, rl, 0, 5)
		appendN(t, rl, 1005, 1)
		appendN(t, rl, 6, 14)
		forged, fcp, _, _ := exportLog(t, rl)
		mustVerify(t, forged, fcp, vkey)
		_, err := VerifyGrowth(forged, saved, fcp, vkey)
		wantTamper(t, err, 11, "the log was rewritten within its first 12 entries: they no longer hash to the saved checkpoint's root")
	})
	t.Run("altered export", func(t *testing.T) {
		_, err := VerifyGrowth(alterData(t, records, 5), saved, cp, vkey)
		wantTamper(t, err, 5, "content altered")
	})
	t.Run("truncated", func(t *testing.T) {
		rl := rewriteWithKeys(t, dir)
		defer rl.Close()
		appendN(t, rl, 0, 9)
		short, scp, _, _ := exportLog(t, rl)
		_, err := VerifyGrowth(short, saved, scp, vkey)
		wantTamper(t, err, 9, "log truncated below the saved checkpoint's 12 entries")

		_, err = VerifyGrowth(records[:9], saved, cp, vkey)
		wantTamper(t, err, 9, "log truncated/extended")
	})
	t.Run("bad signature", func(t *testing.T) {
		other := openLog(t, t.TempDir())
		defer other.Close()
		appendN(t, other, 0, 12)
		otherSaved, _ := other.Checkpoint()
		_, err := VerifyGrowth(records, otherSaved, cp, vkey)
		wantSignatureError(t, err)
	})
}

// readPublishedFile returns the contents of dir/checkpoints.
func readPublishedFile(t *testing.T, dir string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, checkpointsFile))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// wantPublished checks that Published returns exactly want.
func wantPublished(t *testing.T, l *Log, want [][]byte) {
	t.Helper()
	got, err := l.Published()
	if err != nil {
		t.Fatalf("Published: %v", err)
	}
	if !slices.EqualFunc(got, want, bytes.Equal) {
		t.Fatalf("Published returned %d checkpoints, want %d (or they differ)", len(got), len(want))
	}
}

func TestPublish(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	if got, err := l.Published(); err != nil || len(got) != 0 {
		t.Fatalf("Published before any Publish = %d, %v", len(got), err)
	}
	var want [][]byte
	publish := func(size int64) {
		t.Helper()
		signed, err := l.Publish()
		if err != nil {
			t.Fatalf("Publish: %v", err)
		}
		if c := mustParse(t, signed, l.VerifierKey()); c.Size != size {
			t.Fatalf("Publish published size %d, want %d", c.Size, size)
		}
		if len(want) == 0 || !bytes.Equal(want[len(want)-1], signed) {
			want = append(want, signed)
		}
	}
	publish(0)
	appendN(t, l, 0, 5)
	publish(5)
	before := readPublishedFile(t, dir)
	publish(5) // unchanged size: nothing appended
	if after := readPublishedFile(t, dir); !bytes.Equal(before, after) {
		t.Errorf("Publish at an unchanged size changed the file")
	}
	if len(want) != 2 {
		t.Fatalf("published %d checkpoints, want 2", len(want))
	}
	wantPublished(t, l, want)
	if !bytes.HasPrefix(before, []byte("size 0 len ")) {
		t.Errorf("checkpoints file starts %q", before[:min(len(before), 20)])
	}

	// Survives reopening.
	l.Close()
	l = openLog(t, dir)
	defer l.Close()
	wantPublished(t, l, want)
	publish(5)
	if len(want) != 2 {
		t.Errorf("Publish after reopen appended at an unchanged size")
	}

	// Enough checkpoints that Publish finds the last one from the end of
	// the file only.
	for i := 5; i < 65; i++ {
		appendN(t, l, i, 1)
		publish(int64(i + 1))
		publish(int64(i + 1))
	}
	if n := len(readPublishedFile(t, dir)); n <= publishedTail {
		t.Fatalf("checkpoints file is only %d bytes", n)
	}
	wantPublished(t, l, want)

	// A crash during Publish leaves a torn record: Published ignores it,
	// the next Publish cuts it off.
	signed, _ := l.Checkpoint()
	appendBytes(t, dir, checkpointsFile, []byte(publishedHeader(65, len(signed))))
	appendBytes(t, dir, checkpointsFile, signed[:len(signed)/2])
	wantPublished(t, l, want)
	publish(65) // same size as the last complete record: nothing to cut or add
	appendN(t, l, 65, 1)
	publish(66)
	wantPublished(t, l, want)
	appendBytes(t, dir, checkpointsFile, []byte("size 6"))
	wantPublished(t, l, want)
	appendN(t, l, 66, 1)
	publish(67)
	wantPublished(t, l, want)
}

func TestPublishedMustMatchLog(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	defer l.Close()
	appendN(t, l, 0, 6)
	if _, err := l.Publish(); err != nil {
		t.Fatal(err)
	}

	// A log rewritten with the same key, given the real log's published
	// checkpoints: they no longer match it.
	rl := rewriteWithKeys(t, dir)
	defer rl.Close()
	appendN(t, rl, 0, 3)
	appendN(t, rl, 1003, 1)
	appendN(t, rl, 4, 2)
	if err := os.WriteFile(filepath.Join(rl.dir, checkpointsFile), readPublishedFile(t, dir), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := rl.Published(); !errors.Is(err, ErrNotConsistent) {
		t.Errorf("Published of a rewritten log = %v, want ErrNotConsistent", err)
	}
	appendN(t, rl, 6, 1)
	if _, err := rl.Publish(); !errors.Is(err, ErrNotConsistent) {
		t.Errorf("Publish on a rewritten log = %v, want ErrNotConsistent", err)
	}
}

// A proof survives its trip through the API's wire form; a damaged hash is
// refused.
func TestWireProof(t *testing.T) {
	l := openLog(t, t.TempDir())
	defer l.Close()
	appendN(t, l, 0, 20)
	proof, err := l.ConsistencyProof(5, 20)
	if err != nil {
		t.Fatal(err)
	}
	back, err := WireProof{Old: 5, Size: 20, Hashes: EncodeHashes(proof)}.Proof()
	if err != nil || len(back) != len(proof) || back[0] != proof[0] {
		t.Fatalf("round trip: %v %v", back, err)
	}
	if _, err := (WireProof{Hashes: []string{"not base64!"}}).Proof(); err == nil {
		t.Fatal("a damaged hash was accepted")
	}
}
