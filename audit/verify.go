package audit

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"
)

// Report describes a log that Verify found intact.
type Report struct {
	Size   int64  // number of entries
	Root   string // standard base64 of the tree hash, as in the checkpoint
	Origin string // the log's origin
}

// TamperError says which entry Verify found altered, dropped, inserted or
// reordered, and why.
type TamperError struct {
	Seq    int64
	Reason string
}

// Error returns "audit: entry <seq>: <reason>".
func (e *TamperError) Error() string {
	return fmt.Sprintf("audit: entry %d: %s", e.Seq, e.Reason)
}

// Verify checks records against a signed checkpoint and the verifier key vkey
// and reports the log if it is intact.
//
// It recomputes every leaf hash (tlog.RecordHash of the exact record bytes),
// checks that each entry's seq equals its position and its prev equals the
// recomputed tree hash of the entries before it, and that the tree hash over
// all records equals the checkpoint's root for the same size.
//
// A checkpoint that is not validly signed by vkey gives an error wrapping
// ErrBadSignature. Any other failure is a *TamperError naming the first bad
// entry, attributed as follows:
//
//   - a record that does not parse (or contains a newline, or has no kind):
//     its position;
//   - a record whose seq differs from its position: that position, reason
//     "reordered, inserted or removed entry";
//   - a record whose prev differs from the recomputed tree hash of the
//     entries before it: the entry before it, position-1, reason "content
//     altered (hash no longer matches prev of entry N)", because that is the
//     first entry whose bytes no longer hash as they did when N was
//     appended; at position 0 (prev must be the empty tree hash) entry 0;
//   - every prev right but as many records as the checkpoint says: the
//     checkpoint root differs only if the last entry was altered, so the last
//     entry;
//   - a different number of records than the checkpoint says: reason "log
//     truncated/extended: checkpoint says N entries, found M", at
//     min(N, M), the first entry missing or unexpected.
//
// Checks run in this order, so a record-level finding wins over a size
// mismatch.
func Verify(records [][]byte, checkpoint []byte, vkey string) (Report, error) {
	c, err := ParseCheckpoint(checkpoint, vkey)
	if err != nil {
		return Report{}, err
	}
	// An intact log is the common case: if every record parses with its
	// seq, and all of them hash to the signed root, they are exactly what
	// was signed, and the per-entry prev checks (a tree hash per entry)
	// are needed only to name the first bad entry when something differs.
	if rep, ok := verifyFast(records, c); ok {
		return rep, nil
	}
	var hashes memHashes
	for i, rec := range records {
		pos := int64(i)
		if err := checkRecord(pos, rec, hashes); err != nil {
			return Report{}, err
		}
		hs, err := tlog.StoredHashes(pos, rec, hashes)
		if err != nil {
			return Report{}, fmt.Errorf("audit: verify: hashes of entry %d: %w", pos, err)
		}
		hashes = append(hashes, hs...)
	}

	m := int64(len(records))
	if m != c.Size {
		return Report{}, &TamperError{
			Seq:    min(c.Size, m),
			Reason: fmt.Sprintf("log truncated/extended: checkpoint says %d entries, found %d", c.Size, m),
		}
	}
	root, err := tlog.TreeHash(m, hashes)
	if err != nil {
		return Report{}, fmt.Errorf("audit: verify: tree hash: %w", err)
	}
	if root != c.Root {
		if m == 0 {
			return Report{}, errors.New("audit: verify: checkpoint for the empty log has a wrong root hash")
		}
		return Report{}, &TamperError{Seq: m - 1, Reason: "content altered (tree hash no longer matches the checkpoint root)"}
	}
	return Report{Size: m, Root: base64.StdEncoding.EncodeToString(root[:]), Origin: c.Origin}, nil
}

// checkRecord checks the record at position pos against the stored hashes
// of the records before it.
func checkRecord(pos int64, rec []byte, hashes memHashes) error {
	if bytes.IndexByte(rec, '\n') >= 0 {
		return &TamperError{Seq: pos, Reason: "record contains a newline"}
	}
	e, err := decodeEntry(rec)
	if err != nil {
		return &TamperError{Seq: pos, Reason: fmt.Sprintf("record does not parse: %v", err)}
	}
	if e.Seq != pos {
		return &TamperError{Seq: pos, Reason: fmt.Sprintf("reordered, inserted or removed entry (seq %d at position %d)", e.Seq, pos)}
	}
	if e.Kind == "" {
		return &TamperError{Seq: pos, Reason: "record does not parse: no kind"}
	}
	want, err := tlog.TreeHash(pos, hashes)
	if err != nil {
		return fmt.Errorf("audit: verify: tree hash of %d entries: %w", pos, err)
	}
	if e.Prev == base64.StdEncoding.EncodeToString(want[:]) {
		return nil
	}
	if pos == 0 {
		return &TamperError{Seq: 0, Reason: "content altered (prev is not the hash of the empty tree)"}
	}
	return &TamperError{Seq: pos - 1, Reason: fmt.Sprintf("content altered (hash no longer matches prev of entry %d)", pos)}
}

// verifyFast reports the log intact if every record is well formed and
// the records hash to the checkpoint's root; ok is false otherwise, and
// Verify then finds and names the first bad entry.
func verifyFast(records [][]byte, c Checkpoint) (Report, bool) {
	if int64(len(records)) != c.Size {
		return Report{}, false
	}
	hashes := make(memHashes, 0, 2*len(records)+64)
	for i, rec := range records {
		if bytes.IndexByte(rec, '\n') >= 0 {
			return Report{}, false
		}
		var e struct {
			Seq  *int64 `json:"seq"`
			Kind string `json:"kind"`
		}
		if json.Unmarshal(rec, &e) != nil || e.Seq == nil || *e.Seq != int64(i) || e.Kind == "" {
			return Report{}, false
		}
		hs, err := tlog.StoredHashes(int64(i), rec, hashes)
		if err != nil {
			return Report{}, false
		}
		hashes = append(hashes, hs...)
	}
	root, err := tlog.TreeHash(c.Size, hashes)
	if err != nil || root != c.Root {
		return Report{}, false
	}
	return Report{Size: c.Size, Root: base64.StdEncoding.EncodeToString(root[:]), Origin: c.Origin}, true
}
