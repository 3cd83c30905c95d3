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
// append can leave behind, and nothing else:
//
//   - a last line without '\n' was never acknowledged and is cut off;
//   - the stored hashes of every record are recomputed from the record and
//     compared with the hashes file. Appends only ever write at the end of
//     both files and fsync before the next write, so a crash can damage only
//     the hashes written last: hashes missing at the end of the file, or
//     wrong hashes that run up to the end of the file (the hashes of the
//     last record, or of the last records written together). Such a tail is
//     rewritten, and anything past the hashes of the last record is cut off.
//
// A stored hash that is wrong although a later record's stored hashes are
// right cannot come from a crash: the hashes file (or the entry) was altered
// after it was written, and proofs served from it would be wrong. recoverFiles then fails, naming
// the stored hash and the entry it belongs to, and changes nothing in the
// hashes file. Likewise a complete line that does not parse or has the wrong
// seq is corruption, not a torn write, and is reported as an error.
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

	// The hashes file is in one of three states while the records are read:
	//   - hashesOK: it matches the records read so far;
	//   - suspect (wrong != nil): from stored index wrong.base on it holds
	//     wrong hashes; the right ones are kept in wrong.new, and are only
	//     written if the wrong ones turn out to run to the end of the file;
	//   - rewriting (neither): the hashes of each record are written as it
	//     is read.
	hashesOK := true
	var wrong *pendingHashes
	var firstWrong, firstWrongEntry int64 // the first wrong stored hash and its entry, while suspect
	changed := false
	offsets := []int64{0}

	// startRewrite writes the right hashes kept while suspect, if any, and
	// switches to rewriting.
	startRewrite := func() error {
		hashesOK = false
		if wrong == nil {
			return nil
		}
		buf := make([]byte, 0, len(wrong.new)*tlog.HashSize)
		for _, h := range wrong.new {
			buf = append(buf, h[:]...)
		}
		if _, err := hf.WriteAt(buf, wrong.base*tlog.HashSize); err != nil {
			return fmt.Errorf("rewrite hashes of entries %d and later: %w", firstWrongEntry, err)
		}
		wrong = nil
		changed = true
		return nil
	}

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

		var r tlog.HashReader = hashFile{hf}
		if wrong != nil {
			r = *wrong
		}
		hs, err := tlog.StoredHashes(n, rec, r)
		if err != nil {
			return nil, fmt.Errorf("hashes of entry %d: %w", n, err)
		}
		want := make([]byte, 0, len(hs)*tlog.HashSize)
		for _, h := range hs {
			want = append(want, h[:]...)
		}
		base := tlog.StoredHashIndex(0, n)
		hoff := base * tlog.HashSize

		if hashesOK {
			have := make([]byte, len(want))
			if _, err := io.ReadFull(stored, have); err != nil {
				// The file ends within or before the hashes of this
				// record: what a crash leaves; rewrite from here.
				if err := startRewrite(); err != nil {
					return nil, err
				}
				if err := hf.Truncate(hoff); err != nil {
					return nil, fmt.Errorf("truncate %s: %w", hashesFile, err)
				}
			} else if !bytes.Equal(have, want) {
				switch {
				case wrong == nil:
					i := firstDiff(have, want)
					firstWrong, firstWrongEntry = base+int64(i), n
					wrong = &pendingHashes{r: hashFile{hf}, base: base, new: hs}
				default:
					wrong.new = append(wrong.new, hs...)
				}
			} else if wrong != nil {
				// Right hashes after wrong ones: not a torn write.
				level, k := tlog.SplitStoredHashIndex(firstWrong)
				return nil, fmt.Errorf("%s: stored hash %d (of entry %d; tree level %d over entries [%d, %d)) does not match %s, but the hashes of entry %d after it do: the hashes file or entry %d was altered after they were written",
					hashesFile, firstWrong, firstWrongEntry, level, k<<level, (k+1)<<level, entriesFile, n, firstWrongEntry)
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
	// Wrong hashes up to the end of the file are the torn tail of the last write.
	if err := startRewrite(); err != nil {
		return nil, err
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

// firstDiff returns the index of the first stored hash in which the
// concatenated hashes a and b (of equal length) differ.
func firstDiff(a, b []byte) int {
	for i := 0; i+tlog.HashSize <= len(a); i += tlog.HashSize {
		if !bytes.Equal(a[i:i+tlog.HashSize], b[i:i+tlog.HashSize]) {
			return i / tlog.HashSize
		}
	}
	return 0
}
