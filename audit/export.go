package audit

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

const (
	exportEntriesFile    = "entries.jsonl"
	exportCheckpointFile = "checkpoint"
	exportVerifierFile   = "verifier.key"
)

// WriteExport writes an export a regulator can carry away and verify offline:
// dir/entries.jsonl (one record per line, exactly the stored bytes),
// dir/checkpoint (the signed note) and dir/verifier.key (vkey).
func WriteExport(dir string, records [][]byte, checkpoint []byte, vkey string) error {
	var buf bytes.Buffer
	for i, rec := range records {
		if bytes.IndexByte(rec, '\n') >= 0 {
			return fmt.Errorf("audit: write export %s: record %d contains a newline", dir, i)
		}
		buf.Write(rec)
		buf.WriteByte('\n')
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("audit: write export %s: %w", dir, err)
	}
	files := []struct {
		name string
		data []byte
	}{
		{exportEntriesFile, buf.Bytes()},
		{exportCheckpointFile, checkpoint},
		{exportVerifierFile, []byte(strings.TrimSpace(vkey) + "\n")},
	}
	for _, f := range files {
		if err := writeFileAtomic(filepath.Join(dir, f.name), f.data, 0o644); err != nil {
			return fmt.Errorf("audit: write export: %w", err)
		}
	}
	return nil
}

// Export writes the whole log to dir as WriteExport does, with a checkpoint
// of exactly the exported entries (both taken under the log's lock).
func (l *Log) Export(ctx context.Context, dir string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("audit: export %s: %w", dir, err)
	}
	records, checkpoint, err := l.snapshot()
	if err != nil {
		return fmt.Errorf("audit: export %s: %w", dir, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("audit: export %s: %w", dir, err)
	}
	return WriteExport(dir, records, checkpoint, l.vkey)
}

// snapshot returns all records and a checkpoint of the same size.
func (l *Log) snapshot() ([][]byte, []byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, nil, ErrClosed
	}
	records, err := l.records(0, int64(len(l.offsets)-1))
	if err != nil {
		return nil, nil, err
	}
	checkpoint, err := l.checkpoint()
	if err != nil {
		return nil, nil, err
	}
	return records, checkpoint, nil
}

// ReadExport reads an export written by WriteExport.
func ReadExport(dir string) (records [][]byte, checkpoint []byte, vkey string, err error) {
	data, err := os.ReadFile(filepath.Join(dir, exportEntriesFile))
	if err != nil {
		return nil, nil, "", fmt.Errorf("audit: read export: %w", err)
	}
	checkpoint, err = os.ReadFile(filepath.Join(dir, exportCheckpointFile))
	if err != nil {
		return nil, nil, "", fmt.Errorf("audit: read export: %w", err)
	}
	vkeyBytes, err := os.ReadFile(filepath.Join(dir, exportVerifierFile))
	if err != nil {
		return nil, nil, "", fmt.Errorf("audit: read export: %w", err)
	}
	return splitRecords(data), checkpoint, strings.TrimSpace(string(vkeyBytes)), nil
}

// splitRecords splits the contents of entries.jsonl into records. Every line
// counts, empty ones included, so that Verify sees them; only the newline
// ending the last record is not a separator.
func splitRecords(data []byte) [][]byte {
	if len(data) == 0 {
		return nil
	}
	data = bytes.TrimSuffix(data, []byte("\n"))
	return bytes.Split(data, []byte("\n"))
}
