package audit

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const tamperN = 10 // entries in the log the tampering tests start from

// tamperLog returns the export of an intact log of tamperN entries.
func tamperLog(t *testing.T) (records [][]byte, checkpoint []byte, vkey string) {
	t.Helper()
	l := openLog(t, t.TempDir())
	defer l.Close()
	appendN(t, l, 0, tamperN)
	records, checkpoint, vkey, _ = exportLog(t, l)
	return records, checkpoint, vkey
}

// alterData changes one byte inside the data of record k (a letter of the
// "note" value), keeping it valid JSON.
func alterData(t *testing.T, records [][]byte, k int) [][]byte {
	t.Helper()
	out := clone(records)
	i := bytes.Index(out[k], []byte(`"note":"entry-`))
	if i < 0 {
		t.Fatalf("record %d has no note: %s", k, out[k])
	}
	out[k][i+len(`"note":"e`)] = 'E'
	return out
}

func TestExportVerifyIntact(t *testing.T) {
	l := openLog(t, t.TempDir())
	defer l.Close()
	records, cp, vkey, _ := exportLog(t, l)
	if r := mustVerify(t, records, cp, vkey); r.Size != 0 || r.Origin != testOrigin {
		t.Errorf("empty log report = %+v", r)
	}

	appendN(t, l, 0, 13)
	records, cp, vkey, dir := exportLog(t, l)
	r := mustVerify(t, records, cp, vkey)
	c, err := ParseCheckpoint(cp, vkey)
	if err != nil {
		t.Fatal(err)
	}
	if r.Size != 13 || r.Origin != testOrigin || r.Root != base64.StdEncoding.EncodeToString(c.Root[:]) {
		t.Errorf("report = %+v, checkpoint = %+v", r, c)
	}
	if vkey != l.VerifierKey() {
		t.Errorf("exported vkey = %q, want %q", vkey, l.VerifierKey())
	}
	// The export holds exactly the stored bytes, one per line.
	stored, _ := l.Records(0, l.Size())
	data, err := os.ReadFile(filepath.Join(dir, "entries.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if want := append(bytes.Join(stored, []byte("\n")), '\n'); !bytes.Equal(data, want) {
		t.Errorf("entries.jsonl differs from the stored records")
	}
}

func TestTamperDataMiddle(t *testing.T) {
	records, cp, vkey := tamperLog(t)
	_, err := Verify(alterData(t, records, 4), cp, vkey)
	wantTamper(t, err, 4, "content altered (hash no longer matches prev of entry 5)")
}

func TestTamperDataFirst(t *testing.T) {
	records, cp, vkey := tamperLog(t)
	_, err := Verify(alterData(t, records, 0), cp, vkey)
	wantTamper(t, err, 0, "prev of entry 1")
}

func TestTamperDataLast(t *testing.T) {
	records, cp, vkey := tamperLog(t)
	_, err := Verify(alterData(t, records, tamperN-1), cp, vkey)
	wantTamper(t, err, tamperN-1, "content altered")
}

func TestTamperPrevOfFirst(t *testing.T) {
	records, cp, vkey := tamperLog(t)
	forged := clone(records)
	forged[0] = bytes.Replace(forged[0], []byte(`"prev":"`), []byte(`"prev":"A`), 1)
	_, err := Verify(forged, cp, vkey)
	wantTamper(t, err, 0, "empty tree")
}

func TestTamperUnparsable(t *testing.T) {
	records, cp, vkey := tamperLog(t)
	forged := clone(records)
	forged[6] = forged[6][:len(forged[6])-1] // drop the closing brace
	_, err := Verify(forged, cp, vkey)
	wantTamper(t, err, 6, "does not parse")
}

func TestTamperDelete(t *testing.T) {
	records, cp, vkey := tamperLog(t)
	const k = 3
	forged := append(clone(records[:k]), clone(records[k+1:])...)
	_, err := Verify(forged, cp, vkey)
	wantTamper(t, err, k, "reordered, inserted or removed entry")
}

func TestTamperSwap(t *testing.T) {
	records, cp, vkey := tamperLog(t)
	const k = 5
	forged := clone(records)
	forged[k], forged[k+1] = forged[k+1], forged[k]
	_, err := Verify(forged, cp, vkey)
	wantTamper(t, err, k, "reordered, inserted or removed entry")
}

func TestTamperInsert(t *testing.T) {
	records, cp, vkey := tamperLog(t)
	const k = 7
	// A forged entry that copies the seq and prev of entry k, so that it
	// looks right at its own position; the real entry k, now one further
	// on, is what no longer fits.
	e, err := decodeEntry(records[k])
	if err != nil {
		t.Fatal(err)
	}
	fake := []byte(`{"seq":7,"time":"2025-03-01T00:00:30Z","prev":"` + e.Prev + `","kind":"result.released","subject":"job/999"}`)
	forged := append(clone(records[:k]), fake)
	forged = append(forged, clone(records[k:])...)
	_, err = Verify(forged, cp, vkey)
	wantTamper(t, err, k+1, "reordered, inserted or removed entry (seq 7 at position 8)")
}

func TestTamperTruncateLast(t *testing.T) {
	// Drop the last line of the exported file itself.
	l := openLog(t, t.TempDir())
	defer l.Close()
	appendN(t, l, 0, tamperN)
	_, _, _, dir := exportLog(t, l)
	path := filepath.Join(dir, "entries.jsonl")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cut := bytes.LastIndexByte(data[:len(data)-1], '\n') + 1
	if err := os.WriteFile(path, data[:cut], 0o644); err != nil {
		t.Fatal(err)
	}
	records, cp, vkey, err := ReadExport(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Verify(records, cp, vkey)
	wantTamper(t, err, tamperN-1, "log truncated/extended: checkpoint says 10 entries, found 9")
}

func TestTamperTruncateLastHalfway(t *testing.T) {
	records, cp, vkey := tamperLog(t)
	forged := clone(records)
	forged[tamperN-1] = forged[tamperN-1][:len(forged[tamperN-1])/2]
	_, err := Verify(forged, cp, vkey)
	wantTamper(t, err, tamperN-1, "does not parse")
}

// rewrittenLog builds a log with the same events as tamperLog plus change,
// chained correctly but signed by a key that is not the checkpoint's: it is
// what a forger with write access but no signing key can produce.
func rewrittenLog(t *testing.T, change func(l *Log)) [][]byte {
	t.Helper()
	l := openLog(t, t.TempDir())
	defer l.Close()
	change(l)
	records, err := l.Records(0, l.Size())
	if err != nil {
		t.Fatal(err)
	}
	return records
}

func TestTamperRewrittenAndExtended(t *testing.T) {
	_, cp, vkey := tamperLog(t)
	forged := rewrittenLog(t, func(l *Log) {
		appendN(t, l, 0, 4)
		if _, err := l.Append(context.Background(), Event{Kind: "result.released", Subject: "job/999"}); err != nil {
			t.Fatal(err)
		}
		appendN(t, l, 4, tamperN-4)
	})
	_, err := Verify(forged, cp, vkey)
	wantTamper(t, err, tamperN, "log truncated/extended: checkpoint says 10 entries, found 11")
}

func TestTamperRewrittenSameSize(t *testing.T) {
	_, cp, vkey := tamperLog(t)
	forged := rewrittenLog(t, func(l *Log) {
		appendN(t, l, 0, 2)
		appendN(t, l, 1000, 1)
		appendN(t, l, 3, tamperN-3)
	})
	_, err := Verify(forged, cp, vkey)
	wantTamper(t, err, tamperN-1, "checkpoint root")
}

// wantSignatureError fails the test unless err is a plain signature error.
func wantSignatureError(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("Verify succeeded, want a signature error")
	}
	var te *TamperError
	if errors.As(err, &te) {
		t.Fatalf("Verify error = %v, want a signature error, not a TamperError", err)
	}
	if !errors.Is(err, ErrBadSignature) || !strings.Contains(err.Error(), "signature does not verify with the given key") {
		t.Errorf("Verify error = %v, want ErrBadSignature", err)
	}
}

func TestCheckpointSignedByOtherKey(t *testing.T) {
	records, _, vkey := tamperLog(t)
	// Another log with the same origin and the same entries count, but its
	// own key.
	other := openLog(t, t.TempDir())
	defer other.Close()
	appendN(t, other, 0, tamperN)
	otherCP, err := other.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	_, err = Verify(records, otherCP, vkey)
	wantSignatureError(t, err)
	// And the right checkpoint checked with the wrong key.
	_, cp, _ := tamperLog(t)
	_, err = Verify(records, cp, other.VerifierKey())
	wantSignatureError(t, err)
}

func TestCheckpointEdited(t *testing.T) {
	records, cp, vkey := tamperLog(t)
	c, err := ParseCheckpoint(cp, vkey)
	if err != nil {
		t.Fatal(err)
	}
	edits := map[string]func(c Checkpoint) Checkpoint{
		"root": func(c Checkpoint) Checkpoint { c.Root[0] ^= 1; return c },
		"size": func(c Checkpoint) Checkpoint { c.Size--; return c },
	}
	for name, edit := range edits {
		t.Run(name, func(t *testing.T) {
			forged := bytes.Replace(cp, []byte(c.String()), []byte(edit(c).String()), 1)
			if bytes.Equal(forged, cp) {
				t.Fatal("edit did not change the checkpoint")
			}
			_, err := Verify(records, forged, vkey)
			wantSignatureError(t, err)
		})
	}
}

func TestParseCheckpointRejectsMalformed(t *testing.T) {
	l := openLog(t, t.TempDir())
	defer l.Close()
	good := Checkpoint{Origin: testOrigin, Size: 3}
	for name, body := range map[string]string{
		"two lines":    testOrigin + "\n3\n",
		"bad size":     testOrigin + "\n03\n" + base64.StdEncoding.EncodeToString(good.Root[:]) + "\n",
		"short root":   testOrigin + "\n3\nAAAA\n",
		"other origin": "other.example/audit\n3\n" + base64.StdEncoding.EncodeToString(good.Root[:]) + "\n",
	} {
		signed, err := signText(l, body)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseCheckpoint(signed, l.VerifierKey()); err == nil {
			t.Errorf("%s: ParseCheckpoint succeeded", name)
		}
	}
	signed, err := signText(l, good.String()+"extension line\n")
	if err != nil {
		t.Fatal(err)
	}
	if c, err := ParseCheckpoint(signed, l.VerifierKey()); err != nil || c != good {
		t.Errorf("checkpoint with extension line = %+v, %v; want %+v", c, err, good)
	}
}
