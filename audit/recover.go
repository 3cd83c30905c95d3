package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/mod/sumdb/tlog"
)

// recoverFiles scans entries.jsonl once and returns the offsets of its
// records (plus the end offset). On the way it repairs what a crash during an
// append can leave behind:
//
//   - a last line without '\n' was never acknowledged and is cut off;
//   - the stored hashes of every record are recomputed and compared with the
//     hashes file; from the first missing or wrong hash on, the file is
//     rewritten, and anything past the hashes of the last record is cut off.
//
// A complete line that does not parse or has the wrong seq is corruption, not
// a torn write, and is reported as an error.
func recoverFiles(ef, hf *os.File) ([]int64, error) {
	est, err := ef.Stat()
	if err != nil {
		return nil, err
	}
	hst, err := hf.Stat()
	if err != nil {
		return nil, err
	}
	entries := bufio.NewReaderSize(io.NewSectionReader(ef, 0, est.Size()), 1<<16)
	stored := bufio.NewReaderSize(io.NewSectionReader(hf, 0, hst.Size()), 1<<16)
	hashesOK := true // the hashes file matches the records read so far
	changed := false
	offsets := []int64{0}

	for n := int64(0); ; n++ {
		off := offsets[n]
		line, err := entries.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			if len(line) > 0 {
				// Torn last line.
				if err := ef.Truncate(off); err != nil {
					return nil, fmt.Errorf("truncate torn entry %d: %w", n, err)
				}
				changed = true
			}
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", entriesFile, err)
		}
		rec := line[:len(line)-1]
		var head struct {
			Seq *int64 `json:"seq"`
		}
		if err := json.Unmarshal(rec, &head); err != nil {
			return nil, fmt.Errorf("%s: entry %d (offset %d) is corrupt: %w", entriesFile, n, off, err)
		}
		if head.Seq == nil || *head.Seq != n {
			return nil, fmt.Errorf("%s: entry %d (offset %d) is corrupt: wrong or missing seq", entriesFile, n, off)
		}

		hs, err := tlog.StoredHashes(n, rec, hashFile{hf})
		if err != nil {
			return nil, fmt.Errorf("hashes of entry %d: %w", n, err)
		}
		want := make([]byte, 0, len(hs)*tlog.HashSize)
		for _, h := range hs {
			want = append(want, h[:]...)
		}
		hoff := tlog.StoredHashIndex(0, n) * tlog.HashSize
		if hashesOK {
			have := make([]byte, len(want))
			if _, err := io.ReadFull(stored, have); err != nil || !bytes.Equal(have, want) {
				hashesOK = false
				if err := hf.Truncate(hoff); err != nil {
					return nil, fmt.Errorf("truncate %s: %w", hashesFile, err)
				}
			}
		}
		if !hashesOK {
			if _, err := hf.WriteAt(want, hoff); err != nil {
				return nil, fmt.Errorf("rewrite hashes of entry %d: %w", n, err)
			}
			changed = true
		}
		offsets = append(offsets, off+int64(len(line)))
	}

	n := int64(len(offsets) - 1)
	if end := tlog.StoredHashCount(n) * tlog.HashSize; hst.Size() > end || changed {
		if err := hf.Truncate(end); err != nil {
			return nil, fmt.Errorf("truncate %s: %w", hashesFile, err)
		}
		changed = true
	}
	if changed {
		if err := ef.Sync(); err != nil {
			return nil, fmt.Errorf("sync %s: %w", entriesFile, err)
		}
		if err := hf.Sync(); err != nil {
			return nil, fmt.Errorf("sync %s: %w", hashesFile, err)
		}
	}
	return offsets, nil
}
