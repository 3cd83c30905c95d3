package audit

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/mod/sumdb/tlog"
)

// hashFile reads stored hashes from the flat hashes file, where the hash
// with stored index i occupies bytes [32*i, 32*i+32).
type hashFile struct {
	f *os.File
}

// ReadHashes implements tlog.HashReader.
func (h hashFile) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, idx := range indexes {
		if _, err := h.f.ReadAt(out[i][:], idx*tlog.HashSize); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("read stored hash %d: %w", idx, err)
		}
	}
	return out, nil
}

// pendingHashes serves the stored hashes of a record being appended (which
// start at stored index base) from memory and all earlier ones from r.
type pendingHashes struct {
	r    tlog.HashReader
	base int64
	new  []tlog.Hash
}

// ReadHashes implements tlog.HashReader.
func (p pendingHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	var old []int64
	var at []int
	for i, idx := range indexes {
		switch {
		case idx >= p.base && idx < p.base+int64(len(p.new)):
			out[i] = p.new[idx-p.base]
		case idx >= p.base:
			return nil, fmt.Errorf("stored hash %d not yet written", idx)
		default:
			old = append(old, idx)
			at = append(at, i)
		}
	}
	if len(old) > 0 {
		hs, err := p.r.ReadHashes(old)
		if err != nil {
			return nil, err
		}
		for j, h := range hs {
			out[at[j]] = h
		}
	}
	return out, nil
}

// memHashes is an in-memory list of stored hashes, used by Verify.
type memHashes []tlog.Hash

// ReadHashes implements tlog.HashReader.
func (m memHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, idx := range indexes {
		if idx < 0 || idx >= int64(len(m)) {
			return nil, fmt.Errorf("stored hash %d out of range", idx)
		}
		out[i] = m[idx]
	}
	return out, nil
}
