package audit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// checkpointsFile holds the published checkpoints, oldest first. It is
// append-only; each published checkpoint is one record of
//
//	size <N> len <L>\n
//	<L bytes: the signed checkpoint note for the first N entries>
//
// written with one write and fsynced before Publish returns. N is repeated
// from the note so that a reader can find the sizes without parsing notes,
// and L lets it find the end of a note without relying on its contents. A
// record cut short at the end of the file (a crash during Publish, which
// therefore never returned it) is ignored by Published and cut off by the
// next Publish; anything else that does not parse is an error.
const checkpointsFile = "checkpoints"

const (
	maxPublishedHeader = 64      // longest valid "size N len L\n" line, rounded up
	maxPublishedNote   = 1 << 16 // longest note a record may hold
	publishedTail      = 8 << 10 // bytes Publish reads from the end to find the last record
)

// publishMu serializes Publish and Published in this process, so that
// checkpoints are appended in order of size; the log's directory lock keeps
// other processes out.
var publishMu sync.Mutex

// published is one record of the checkpoints file.
type published struct {
	off  int64  // where its header starts
	size int64  // N from the header
	note []byte // the signed note
}

// Publish signs a checkpoint for the current size and appends it to
// dir/checkpoints (see the format above) unless the last published one has
// the same size, and returns the signed checkpoint (the earlier one if the
// size did not change).
//
// Before publishing it checks that the log still matches the last published
// checkpoint: if it does not, the error wraps ErrNotConsistent.
func (l *Log) Publish() ([]byte, error) {
	publishMu.Lock()
	defer publishMu.Unlock()
	signed, err := l.publish()
	if err != nil {
		return nil, fmt.Errorf("audit: publish checkpoint: %w", err)
	}
	return signed, nil
}

// publish does the work of Publish; publishMu must be held.
func (l *Log) publish() ([]byte, error) {
	path := filepath.Join(l.dir, checkpointsFile)
	_, statErr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if errors.Is(statErr, fs.ErrNotExist) {
		if err := syncDir(l.dir); err != nil {
			return nil, err
		}
	}
	last, end, err := lastPublished(f)
	if err != nil {
		return nil, err
	}

	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, ErrClosed
	}
	n := int64(len(l.offsets) - 1)
	if last != nil {
		if err := l.checkPublished(*last); err != nil {
			l.mu.Unlock()
			return nil, err
		}
		if last.size == n {
			l.mu.Unlock()
			return last.note, nil
		}
	}
	signed, err := l.checkpointAt(n)
	l.mu.Unlock()
	if err != nil {
		return nil, err
	}

	rec := append([]byte(publishedHeader(n, len(signed))), signed...)
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() != end {
		// A torn record from a crash during an earlier Publish.
		if err := f.Truncate(end); err != nil {
			return nil, fmt.Errorf("cut off torn record at offset %d: %w", end, err)
		}
	}
	_, err = f.WriteAt(rec, end)
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		f.Truncate(end) // best effort; a torn record is ignored anyway
		return nil, fmt.Errorf("write %s: %w", checkpointsFile, err)
	}
	return signed, nil
}

// Published returns the signed checkpoints published so far, oldest first.
//
// Each must be signed by the log's key (else the error wraps
// ErrBadSignature), sizes must grow, and each must match the log as it is
// now (else the error wraps ErrNotConsistent).
func (l *Log) Published() ([][]byte, error) {
	publishMu.Lock()
	defer publishMu.Unlock()
	recs, err := l.published()
	if err != nil {
		return nil, fmt.Errorf("audit: published checkpoints: %w", err)
	}
	out := make([][]byte, len(recs))
	for i, r := range recs {
		out[i] = r.note
	}
	return out, nil
}

// published reads and checks all published checkpoints; publishMu must be
// held.
func (l *Log) published() ([]published, error) {
	data, err := os.ReadFile(filepath.Join(l.dir, checkpointsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	recs, _, err := splitPublished(data, 0)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, ErrClosed
	}
	for i, r := range recs {
		if i > 0 && r.size <= recs[i-1].size {
			return nil, fmt.Errorf("%s: record at offset %d: size %d does not grow from %d", checkpointsFile, r.off, r.size, recs[i-1].size)
		}
		if err := l.checkPublished(r); err != nil {
			return nil, err
		}
	}
	return recs, nil
}

// checkPublished checks that a published record is signed by the log's key,
// agrees with its header and matches the log; l.mu must be held.
func (l *Log) checkPublished(r published) error {
	c, err := ParseCheckpoint(r.note, l.vkey)
	if err != nil {
		return fmt.Errorf("%s: record at offset %d: %w", checkpointsFile, r.off, err)
	}
	if c.Size != r.size {
		return fmt.Errorf("%s: record at offset %d: header says size %d, checkpoint says %d", checkpointsFile, r.off, r.size, c.Size)
	}
	n := int64(len(l.offsets) - 1)
	if c.Size > n {
		return fmt.Errorf("%w: published checkpoint at offset %d has %d entries, the log only %d", ErrNotConsistent, r.off, c.Size, n)
	}
	root, err := l.rootAt(c.Size)
	if err != nil {
		return err
	}
	if root != c.Root {
		return fmt.Errorf("%w: published checkpoint at offset %d: the first %d entries hash to %s, not to the published root %s",
			ErrNotConsistent, r.off, c.Size, b64(root), b64(c.Root))
	}
	return nil
}

// lastPublished returns the last complete record of the checkpoints file f
// (nil if there is none) and the offset where the complete records end. It
// reads only the end of the file unless that does not hold a whole record.
func lastPublished(f *os.File) (*published, int64, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	size := st.Size()
	start := max(size-publishedTail, 0)
	buf := make([]byte, size-start)
	if _, err := f.ReadAt(buf, start); err != nil && err != io.EOF {
		return nil, 0, err
	}
	if start > 0 {
		// The last record is the one whose header line starts at a line
		// start in buf and whose note ends exactly at the end of the file.
		// (A note cannot contain such a line: no checkpoint or signature
		// line starts with "size ".)
		for i := bytes.LastIndex(buf, []byte("\nsize ")); i >= 0; i = bytes.LastIndex(buf[:i], []byte("\nsize ")) {
			recs, end, err := splitPublished(buf[i+1:], start+int64(i)+1)
			if err == nil && len(recs) == 1 && end == size {
				return &recs[0], size, nil
			}
		}
		buf = make([]byte, size)
		if _, err := f.ReadAt(buf, 0); err != nil && err != io.EOF {
			return nil, 0, err
		}
	}
	recs, end, err := splitPublished(buf, 0)
	if err != nil || len(recs) == 0 {
		return nil, end, err
	}
	return &recs[len(recs)-1], end, nil
}

// publishedHeader returns the header line of a record.
func publishedHeader(size int64, noteLen int) string {
	return "size " + strconv.FormatInt(size, 10) + " len " + strconv.Itoa(noteLen) + "\n"
}

// splitPublished splits data, the checkpoints file from offset base on, into
// records; it returns them and the offset where the complete records end.
// A record cut short at the end (torn) is left out.
func splitPublished(data []byte, base int64) ([]published, int64, error) {
	var recs []published
	pos := 0
	for pos < len(data) {
		rest := data[pos:]
		off := base + int64(pos)
		nl := bytes.IndexByte(rest[:min(len(rest), maxPublishedHeader)], '\n')
		if nl < 0 {
			if len(rest) < maxPublishedHeader || allZero(rest) {
				break // torn header
			}
			return nil, 0, fmt.Errorf("%s: record at offset %d: no header line", checkpointsFile, off)
		}
		size, noteLen, ok := parsePublishedHeader(string(rest[:nl+1]))
		if !ok {
			if allZero(rest) {
				break // a torn write that left zeros
			}
			return nil, 0, fmt.Errorf("%s: record at offset %d: bad header %q", checkpointsFile, off, rest[:nl])
		}
		if nl+1+noteLen > len(rest) {
			break // torn note
		}
		recs = append(recs, published{off: off, size: size, note: rest[nl+1 : nl+1+noteLen : nl+1+noteLen]})
		pos += nl + 1 + noteLen
	}
	return recs, base + int64(pos), nil
}

// parsePublishedHeader parses "size <N> len <L>\n", accepting only the
// canonical form publishedHeader writes.
func parsePublishedHeader(line string) (size int64, noteLen int, ok bool) {
	f := strings.Split(strings.TrimSuffix(line, "\n"), " ")
	if len(f) != 4 || f[0] != "size" || f[2] != "len" {
		return 0, 0, false
	}
	a, b := f[1], f[3]
	size, err1 := strconv.ParseInt(a, 10, 64)
	l, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil || size < 0 || l <= 0 || l > maxPublishedNote || publishedHeader(size, l) != line {
		return 0, 0, false
	}
	return size, l, true
}

// allZero reports whether b holds only zero bytes.
func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
