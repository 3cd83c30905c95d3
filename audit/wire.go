package audit

import (
	"encoding/base64"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"
)

// WireProof is an inclusion or consistency proof as the HTTP API carries
// it: the proof's hashes in standard base64, and for an inclusion proof the
// entry's exact bytes.
type WireProof struct {
	Seq    int64    `json:"seq,omitempty"`
	Size   int64    `json:"size"`
	Old    int64    `json:"old,omitempty"`
	Record string   `json:"record,omitempty"`
	Hashes []string `json:"proof"`
}

// EncodeHashes renders proof hashes for a WireProof.
func EncodeHashes(hs []tlog.Hash) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = base64.StdEncoding.EncodeToString(h[:])
	}
	return out
}

// Proof decodes the proof's hashes.
func (p WireProof) Proof() ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(p.Hashes))
	for i, h := range p.Hashes {
		b, err := base64.StdEncoding.DecodeString(h)
		if err != nil || len(b) != tlog.HashSize {
			return nil, fmt.Errorf("audit: proof hash %d %q is not a base64 SHA-256", i, h)
		}
		copy(out[i][:], b)
	}
	return out, nil
}
