package audit

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const (
	entriesFile = "entries.jsonl"
	hashesFile  = "hashes"
	lockFile    = "lock"
)

// ErrClosed is returned by methods of a Log that has been closed.
var ErrClosed = errors.New("audit: log is closed")

// Log is an open, append-only audit log; its methods are safe for concurrent use.
type Log struct {
	dir    string
	origin string
	now    func() time.Time
	signer note.Signer
	vkey   string

	mu      sync.Mutex
	lock    *os.File
	entries *os.File
	hashes  *os.File
	offsets []int64   // offsets[i] is where record i starts; offsets[Size()] is the end of entries.jsonl
	root    tlog.Hash // tree hash of all entries
	closed  bool
	failed  error // set when an append failed half-way; the log must be reopened
}

// Open opens or creates the log in dir (created 0700 if missing); origin names
// the log in checkpoints and is also the name of its signing key.
//
// On first open Open generates an Ed25519 note key pair and stores it as
// dir/signing.key (0600) and dir/verifier.key (0644). On every open it
// recovers from a crash during an append: a torn last line of entries.jsonl
// is cut off, and the stored hashes are checked against the entries and
// truncated or recomputed where they do not match. A complete line that is
// not a valid record is not repaired: Open reports it and fails.
func Open(dir, origin string, opts ...Option) (*Log, error) {
	o := options{now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	if !validOrigin(origin) {
		return nil, fmt.Errorf("audit: open %s: invalid origin %q (need a non-empty name without spaces or '+')", dir, origin)
	}
	l, err := open(dir, origin, o)
	if err != nil {
		return nil, fmt.Errorf("audit: open %s: %w", dir, err)
	}
	return l, nil
}

// open does the work of Open.
func open(dir, origin string, o options) (l *Log, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	lock, err := lockDir(filepath.Join(dir, lockFile))
	if err != nil {
		return nil, err
	}
	var files []*os.File
	files = append(files, lock)
	defer func() {
		if err != nil {
			for _, f := range files {
				f.Close()
			}
		}
	}()
	ef, err := os.OpenFile(filepath.Join(dir, entriesFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	files = append(files, ef)
	hf, err := os.OpenFile(filepath.Join(dir, hashesFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	files = append(files, hf)
	if err := syncDir(dir); err != nil {
		return nil, err
	}

	st, err := ef.Stat()
	if err != nil {
		return nil, err
	}
	signer, vkey, err := loadKeys(dir, origin, st.Size() == 0)
	if err != nil {
		return nil, err
	}
	offsets, err := recoverFiles(ef, hf)
	if err != nil {
		return nil, err
	}
	n := int64(len(offsets) - 1)
	root, err := tlog.TreeHash(n, hashFile{hf})
	if err != nil {
		return nil, fmt.Errorf("tree hash of %d entries: %w", n, err)
	}
	return &Log{
		dir:     dir,
		origin:  origin,
		now:     o.now,
		signer:  signer,
		vkey:    vkey,
		lock:    lock,
		entries: ef,
		hashes:  hf,
		offsets: offsets,
		root:    root,
	}, nil
}

// Append writes one entry durably (entries and hashes written and fsynced)
// and returns it; only after Append returns may the caller let the recorded
// change take effect.
func (l *Log) Append(ctx context.Context, ev Event) (Entry, error) {
	e, err := l.append(ctx, ev)
	if err != nil {
		return Entry{}, fmt.Errorf("audit: append %s: %w", ev.Kind, err)
	}
	return e, nil
}

// append does the work of Append.
func (l *Log) append(ctx context.Context, ev Event) (Entry, error) {
	if ev.Kind == "" {
		return Entry{}, errors.New("event kind is empty")
	}
	data, err := marshalData(ev.Data)
	if err != nil {
		return Entry{}, err
	}
	if err := ctx.Err(); err != nil {
		return Entry{}, err
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return Entry{}, err
	}
	if err := ctx.Err(); err != nil {
		return Entry{}, err
	}

	n := int64(len(l.offsets) - 1)
	e := Entry{
		Seq:       n,
		Time:      l.now().UTC().Round(0),
		Prev:      base64.StdEncoding.EncodeToString(l.root[:]),
		Kind:      ev.Kind,
		Principal: ev.Principal,
		Subject:   ev.Subject,
		Data:      data,
	}
	if e.Credential = ev.Credential; e.Credential == "" {
		e.Credential = credentialOf(ctx)
	}
	rec, err := json.Marshal(e)
	if err != nil {
		return Entry{}, err
	}
	// Return exactly what Entry(n) will decode from the stored bytes.
	if e, err = decodeEntry(rec); err != nil {
		return Entry{}, err
	}

	// Compute everything before writing, so that nothing can fail after
	// the entry is on disk.
	hs, err := tlog.StoredHashes(n, rec, hashFile{l.hashes})
	if err != nil {
		return Entry{}, err
	}
	base := tlog.StoredHashIndex(0, n)
	root, err := tlog.TreeHash(n+1, pendingHashes{r: hashFile{l.hashes}, base: base, new: hs})
	if err != nil {
		return Entry{}, err
	}
	hbuf := make([]byte, 0, len(hs)*tlog.HashSize)
	for _, h := range hs {
		hbuf = append(hbuf, h[:]...)
	}
	line := append(rec, '\n')
	off := l.offsets[n]
	hoff := base * tlog.HashSize

	// Each append pays for two fsyncs; batching concurrent appends into one
	// write and one fsync (group commit) would raise throughput later.
	if err := l.write(line, off, hbuf, hoff); err != nil {
		return Entry{}, err
	}
	l.offsets = append(l.offsets, off+int64(len(line)))
	l.root = root
	return e, nil
}

// write stores a record and its hashes and fsyncs both files. If anything
// fails it tries to cut both files back and marks the log failed, because
// after a failed fsync the state of the file on disk is unknown.
func (l *Log) write(line []byte, off int64, hbuf []byte, hoff int64) error {
	_, err := l.entries.WriteAt(line, off)
	if err == nil {
		_, err = l.hashes.WriteAt(hbuf, hoff)
	}
	if err == nil {
		err = l.entries.Sync()
	}
	if err == nil {
		err = l.hashes.Sync()
	}
	if err == nil {
		return nil
	}
	l.entries.Truncate(off)
	l.hashes.Truncate(hoff)
	l.failed = err
	return fmt.Errorf("write entry: %w (log must be reopened)", err)
}

// usable reports why the log cannot be used, if it cannot; l.mu must be held.
func (l *Log) usable() error {
	if l.closed {
		return ErrClosed
	}
	if l.failed != nil {
		return fmt.Errorf("log failed earlier and must be reopened: %w", l.failed)
	}
	return nil
}

// Size returns the number of entries in the log.
func (l *Log) Size() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return int64(len(l.offsets) - 1)
}

// Record returns the exact stored bytes of entry seq, without the newline.
func (l *Log) Record(seq int64) ([]byte, error) {
	recs, err := l.Records(seq, seq+1)
	if err != nil {
		return nil, err
	}
	return recs[0], nil
}

// Entry returns entry seq, decoded.
func (l *Log) Entry(seq int64) (Entry, error) {
	rec, err := l.Record(seq)
	if err != nil {
		return Entry{}, err
	}
	e, err := decodeEntry(rec)
	if err != nil {
		return Entry{}, fmt.Errorf("audit: decode entry %d: %w", seq, err)
	}
	return e, nil
}

// Records returns the stored bytes of entries [from, to).
func (l *Log) Records(from, to int64) ([][]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, ErrClosed
	}
	recs, err := l.records(from, to)
	if err != nil {
		return nil, fmt.Errorf("audit: records [%d, %d): %w", from, to, err)
	}
	return recs, nil
}

// records does the work of Records; l.mu must be held.
func (l *Log) records(from, to int64) ([][]byte, error) {
	n := int64(len(l.offsets) - 1)
	if from < 0 || from > to || to > n {
		return nil, fmt.Errorf("out of range for a log of %d entries", n)
	}
	start := l.offsets[from]
	buf := make([]byte, l.offsets[to]-start)
	if _, err := l.entries.ReadAt(buf, start); err != nil {
		return nil, err
	}
	recs := make([][]byte, 0, to-from)
	for i := from; i < to; i++ {
		b := buf[l.offsets[i]-start : l.offsets[i+1]-start]
		recs = append(recs, b[:len(b)-1:len(b)-1])
	}
	return recs, nil
}

// Checkpoint returns a signed C2SP checkpoint for the log's current size.
func (l *Log) Checkpoint() ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, ErrClosed
	}
	return l.checkpoint()
}

// checkpoint signs a checkpoint for the current size; l.mu must be held.
func (l *Log) checkpoint() ([]byte, error) {
	c := Checkpoint{Origin: l.origin, Size: int64(len(l.offsets) - 1), Root: l.root}
	signed, err := note.Sign(&note.Note{Text: c.String()}, l.signer)
	if err != nil {
		return nil, fmt.Errorf("audit: sign checkpoint: %w", err)
	}
	return signed, nil
}

// VerifierKey returns the note verifier key that checks the log's checkpoints.
func (l *Log) VerifierKey() string {
	return l.vkey
}

// Close closes the log's files and releases its lock; later calls do nothing.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	err := l.entries.Close()
	if herr := l.hashes.Close(); err == nil {
		err = herr
	}
	if lerr := l.lock.Close(); err == nil {
		err = lerr
	}
	if err != nil {
		return fmt.Errorf("audit: close: %w", err)
	}
	return nil
}
