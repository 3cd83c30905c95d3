package audit

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// ErrNotConsistent is wrapped by errors from VerifyConsistency when the newer
// checkpoint does not describe a log that only grew from the older one.
var ErrNotConsistent = errors.New("audit: the log did not only grow")

// InclusionProof proves entry seq is in the tree of the first size entries.
func (l *Log) InclusionProof(seq, size int64) (tlog.RecordProof, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, ErrClosed
	}
	n := int64(len(l.offsets) - 1)
	if size < 0 || size > n || seq < 0 || seq >= size {
		return nil, fmt.Errorf("audit: inclusion proof of entry %d in the first %d entries: out of range for a log of %d entries", seq, size, n)
	}
	p, err := tlog.ProveRecord(size, seq, hashFile{l.hashes})
	if err != nil {
		return nil, fmt.Errorf("audit: inclusion proof of entry %d in the first %d entries: %w", seq, size, err)
	}
	return p, nil
}

// ConsistencyProof proves the tree of the first oldSize entries is a prefix of the tree of newSize entries.
func (l *Log) ConsistencyProof(oldSize, newSize int64) (tlog.TreeProof, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, ErrClosed
	}
	n := int64(len(l.offsets) - 1)
	if oldSize < 0 || oldSize > newSize || newSize > n {
		return nil, fmt.Errorf("audit: consistency proof from %d to %d entries: out of range for a log of %d entries", oldSize, newSize, n)
	}
	if oldSize == 0 {
		// The empty tree is a prefix of every tree; nothing to prove.
		return tlog.TreeProof{}, nil
	}
	p, err := tlog.ProveTree(newSize, oldSize, hashFile{l.hashes})
	if err != nil {
		return nil, fmt.Errorf("audit: consistency proof from %d to %d entries: %w", oldSize, newSize, err)
	}
	return p, nil
}

// CheckpointAt signs a checkpoint for the first size entries (size <= Size()), so proofs can be given against any past size.
func (l *Log) CheckpointAt(size int64) ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, ErrClosed
	}
	return l.checkpointAt(size)
}

// checkpointAt signs a checkpoint for the first size entries; l.mu must be held.
func (l *Log) checkpointAt(size int64) ([]byte, error) {
	n := int64(len(l.offsets) - 1)
	if size < 0 || size > n {
		return nil, fmt.Errorf("audit: checkpoint at %d entries: out of range for a log of %d entries", size, n)
	}
	root, err := l.rootAt(size)
	if err != nil {
		return nil, fmt.Errorf("audit: checkpoint at %d entries: %w", size, err)
	}
	c := Checkpoint{Origin: l.origin, Size: size, Root: root}
	signed, err := note.Sign(&note.Note{Text: c.String()}, l.signer)
	if err != nil {
		return nil, fmt.Errorf("audit: sign checkpoint at %d entries: %w", size, err)
	}
	return signed, nil
}

// rootAt returns the tree hash of the first size entries; l.mu must be held
// and size must be at most the log's size.
func (l *Log) rootAt(size int64) (tlog.Hash, error) {
	if size == int64(len(l.offsets)-1) {
		return l.root, nil
	}
	root, err := tlog.TreeHash(size, hashFile{l.hashes})
	if err != nil {
		return tlog.Hash{}, fmt.Errorf("tree hash of %d entries: %w", size, err)
	}
	return root, nil
}

// VerifyInclusion checks that record (its exact bytes) is entry seq of the log a checkpoint describes.
func VerifyInclusion(c Checkpoint, seq int64, record []byte, proof tlog.RecordProof) error {
	if seq < 0 || seq >= c.Size {
		return fmt.Errorf("audit: verify inclusion of entry %d: the checkpoint has only %d entries", seq, c.Size)
	}
	var head struct {
		Seq *int64 `json:"seq"`
	}
	if err := json.Unmarshal(record, &head); err != nil || head.Seq == nil || *head.Seq != seq {
		return fmt.Errorf("audit: verify inclusion of entry %d: the record is not entry %d (its seq field is missing or different)", seq, seq)
	}
	if err := tlog.CheckRecord(proof, c.Size, c.Root, seq, tlog.RecordHash(record)); err != nil {
		return fmt.Errorf("audit: verify inclusion of entry %d in %s at %d entries (root %s): %w",
			seq, c.Origin, c.Size, b64(c.Root), err)
	}
	return nil
}

// VerifyConsistency checks that old is a prefix of new: errors wrap ErrNotConsistent, naming both sizes and roots.
//
// Checkpoints of two different origins are not compared; that error does not
// wrap ErrNotConsistent. A wrong proof also gives ErrNotConsistent, since it
// does not show that the log only grew.
func VerifyConsistency(old, new Checkpoint, proof tlog.TreeProof) error {
	if old.Origin != new.Origin {
		return fmt.Errorf("audit: verify consistency: checkpoints of different logs (%q and %q)", old.Origin, new.Origin)
	}
	fail := func(why string) error {
		return fmt.Errorf("%w: %s %d entries (root %s) -> %d entries (root %s): %s",
			ErrNotConsistent, old.Origin, old.Size, b64(old.Root), new.Size, b64(new.Root), why)
	}
	switch {
	case old.Size > new.Size:
		return fail("the log shrank")
	case old.Size == 0:
		if empty, _ := tlog.TreeHash(0, nil); old.Root != empty {
			return fail("the older checkpoint's root is not the empty tree's hash")
		}
		return nil
	case old.Size == new.Size:
		if old.Root != new.Root {
			return fail("same size, different roots")
		}
		return nil
	}
	if err := tlog.CheckTree(proof, new.Size, new.Root, old.Size, old.Root); err != nil {
		return fail(fmt.Sprintf("consistency proof does not verify: %v", err))
	}
	return nil
}

// VerifyGrowth checks offline that an export (records, newSigned) is intact
// and extends an older checkpoint oldSigned that a regulator saved: both
// checkpoints must be signed by vkey, and the first old.Size records must
// hash to old's root.
//
// The export itself is checked first with [Verify], whose errors it returns
// unchanged. A checkpoint that is not validly signed gives an error wrapping
// ErrBadSignature. If the export is intact but does not extend the old
// checkpoint, the error is a *TamperError:
//
//   - fewer records than the old checkpoint: at the first missing entry,
//     reason "log truncated below the saved checkpoint's N entries";
//   - the first old.Size records hash to another root: at entry old.Size-1,
//     reason "the log was rewritten within its first N entries". The old
//     checkpoint holds only the root of those entries, and an intact export
//     re-chains every prev after a rewritten entry, so nothing narrower can
//     be attributed without the old records themselves.
func VerifyGrowth(records [][]byte, oldSigned, newSigned []byte, vkey string) (Report, error) {
	old, err := ParseCheckpoint(oldSigned, vkey)
	if err != nil {
		return Report{}, fmt.Errorf("audit: verify growth: saved checkpoint: %w", err)
	}
	r, err := Verify(records, newSigned, vkey)
	if err != nil {
		return Report{}, err
	}
	m := int64(len(records))
	if m < old.Size {
		return Report{}, &TamperError{
			Seq:    m,
			Reason: fmt.Sprintf("log truncated below the saved checkpoint's %d entries: the export has %d", old.Size, m),
		}
	}
	var hashes memHashes
	for i, rec := range records[:old.Size] {
		hs, err := tlog.StoredHashes(int64(i), rec, hashes)
		if err != nil {
			return Report{}, fmt.Errorf("audit: verify growth: hashes of entry %d: %w", i, err)
		}
		hashes = append(hashes, hs...)
	}
	root, err := tlog.TreeHash(old.Size, hashes)
	if err != nil {
		return Report{}, fmt.Errorf("audit: verify growth: tree hash of %d entries: %w", old.Size, err)
	}
	if root != old.Root {
		if old.Size == 0 {
			return Report{}, errors.New("audit: verify growth: saved checkpoint for the empty log has a wrong root hash")
		}
		return Report{}, &TamperError{
			Seq: old.Size - 1,
			Reason: fmt.Sprintf("the log was rewritten within its first %d entries: they no longer hash to the saved checkpoint's root (%s, now %s)",
				old.Size, b64(old.Root), b64(root)),
		}
	}
	return r, nil
}

// b64 returns the standard base64 of h, as checkpoints show it.
func b64(h tlog.Hash) string {
	return base64.StdEncoding.EncodeToString(h[:])
}
