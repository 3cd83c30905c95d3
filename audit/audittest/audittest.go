// Package audittest builds audit logs in memory, for benchmarks and tests
// that need many valid entries without writing them durably one by one.
package audittest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/datasandbox/dsbx/audit"
)

// Records makes n records exactly as audit.Log.Append stores them: entry i
// is entry(i) with seq i and prev the tree hash of records [0, i). It also
// returns the tree hash of all n.
func Records(n int64, entry func(i int64) audit.Entry) ([][]byte, tlog.Hash, error) {
	records := make([][]byte, 0, n)
	hashes := make(hashList, 0, tlog.StoredHashCount(n))
	var root tlog.Hash
	var err error
	for i := range n {
		if root, err = tlog.TreeHash(i, hashes); err != nil {
			return nil, root, err
		}
		e := entry(i)
		e.Seq = i
		e.Time = e.Time.UTC().Round(0)
		e.Prev = base64.StdEncoding.EncodeToString(root[:])
		rec, err := json.Marshal(e)
		if err != nil {
			return nil, root, err
		}
		hs, err := tlog.StoredHashes(i, rec, hashes)
		if err != nil {
			return nil, root, err
		}
		hashes = append(hashes, hs...)
		records = append(records, rec)
	}
	root, err = tlog.TreeHash(n, hashes)
	return records, root, err
}

// SignCheckpoint signs c with a fresh key named c.Origin and returns the
// signed note and the verifier key.
func SignCheckpoint(c audit.Checkpoint) ([]byte, string, error) {
	skey, vkey, err := note.GenerateKey(rand.Reader, c.Origin)
	if err != nil {
		return nil, "", err
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		return nil, "", err
	}
	cp, err := note.Sign(&note.Note{Text: c.String()}, signer)
	return cp, vkey, err
}

// hashList is an in-memory tlog.HashReader.
type hashList []tlog.Hash

func (h hashList) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(h)) {
			return nil, fmt.Errorf("audittest: hash %d not stored (have %d)", x, len(h))
		}
		out[i] = h[x]
	}
	return out, nil
}
