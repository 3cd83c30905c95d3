package audit

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/datasandbox/dsbx/failpoint"
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

	// Group commit. Append queues a request and the committer goroutine
	// (commitLoop, started by open, stopped by Close) writes the queued
	// requests in batches. offsets, root and failed change only in the
	// committer, under mu.
	qmu           sync.Mutex
	qcond         *sync.Cond    // signalled when queue grows or stopping is set; uses qmu
	queue         []*appendReq  // requests not yet taken into a batch; guarded by qmu
	stopping      bool          // Close has begun; guarded by qmu
	committerDone chan struct{} // closed when commitLoop returns
	fsyncs        atomic.Int64  // fsync pairs (one per batch written), for tests
	testHookWrite func(n int)   // if set, called by the committer before writing a batch of n entries
}

// Open opens or creates the log in dir (created 0700 if missing); origin names
// the log in checkpoints and is also the name of its signing key.
//
// On first open Open generates an Ed25519 note key pair and stores it as
// dir/signing.key (0600) and dir/verifier.key (0644). On every open it
// recovers from a crash during an append: a torn last line of entries.jsonl
// is cut off, and stored hashes missing or wrong at the end of the hashes
// file (what a crash mid-batch leaves) are recomputed. A wrong stored hash
// before correct ones, or a complete line that is not a valid record, is
// not repaired: the hashes or entries were altered, and Open fails naming
// the entry.
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
	l = &Log{
		dir:           dir,
		origin:        origin,
		now:           o.now,
		signer:        signer,
		vkey:          vkey,
		lock:          lock,
		entries:       ef,
		hashes:        hf,
		offsets:       offsets,
		root:          root,
		committerDone: make(chan struct{}),
	}
	l.qcond = sync.NewCond(&l.qmu)
	go l.commitLoop()
	return l, nil
}

// Append writes one entry durably (entries and hashes written and fsynced)
// and returns it; only after Append returns may the caller let the recorded
// change take effect.
//
// Concurrent calls are committed together (group commit): the log's committer
// writes all events waiting at the time in one batch, with one write and one
// fsync per file, and then acknowledges each of them. An append that finds no
// batch in flight is written at once, so a lone caller pays for exactly one
// write and fsync of each file. Entries get consecutive seqs in the order the
// committer takes their events. If ctx is done before the event is taken
// into a batch, Append returns ctx.Err() and nothing is written for it; once
// taken, the outcome stands whatever happens to ctx. If writing a batch
// fails, every append in it fails and the log must be reopened.
func (l *Log) Append(ctx context.Context, ev Event) (Entry, error) {
	e, err := l.append(ctx, ev)
	if err != nil {
		return Entry{}, fmt.Errorf("audit: append %s: %w", ev.Kind, err)
	}
	return e, nil
}

// Batch limits: the committer takes at most maxBatchEvents events, or events
// whose records come to about maxBatchBytes, into one batch.
const (
	maxBatchEvents = 1024
	maxBatchBytes  = 4 << 20
)

// States of an append request. The committer moves a pending request to
// taken when it takes it into a batch; its caller moves it to abandoned when
// its ctx is done first. Whoever wins the compare-and-swap decides.
const (
	reqPending int32 = iota
	reqTaken
	reqAbandoned
)

// appendReq is one Append waiting for the committer.
type appendReq struct {
	ctx   context.Context
	entry Entry  // the decoded event; the committer sets Seq, Time and Prev
	tail  []byte // the record's bytes after the prev field: `"kind":...}`
	state atomic.Int32
	done  chan appendResult // buffered; receives exactly one result once taken
}

// appendResult is what the committer sends back for a request.
type appendResult struct {
	entry Entry
	err   error
}

// recordHead is how json.Marshal begins an Entry whose seq, time and prev are
// zero; what follows it is the request's tail.
var recordHead = func() []byte {
	b, err := json.Marshal(Entry{Kind: "k"})
	if err != nil {
		panic(err)
	}
	return b[:bytes.Index(b, []byte(`"kind":`))]
}()

// append does the work of Append: it prepares the record's fixed part and
// hands the request to the committer.
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

	// Everything but seq, time and prev is encoded here, in parallel with
	// other callers; the committer only splices in the head. The bytes are
	// those json.Marshal gives for the whole entry, because the head fields
	// come first and are encoded the same way by commit.
	e := Entry{
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
	if !bytes.HasPrefix(rec, recordHead) {
		return Entry{}, fmt.Errorf("internal error: record %.40q does not start with %q", rec, recordHead)
	}
	// Return exactly what Entry(n) will decode from the stored bytes.
	if e, err = decodeEntry(rec); err != nil {
		return Entry{}, err
	}
	r := &appendReq{ctx: ctx, entry: e, tail: rec[len(recordHead):], done: make(chan appendResult, 1)}

	l.qmu.Lock()
	if l.stopping {
		l.qmu.Unlock()
		return Entry{}, ErrClosed
	}
	l.queue = append(l.queue, r)
	l.qcond.Signal()
	l.qmu.Unlock()

	select {
	case res := <-r.done:
		return res.entry, res.err
	case <-ctx.Done():
		if r.state.CompareAndSwap(reqPending, reqAbandoned) {
			return Entry{}, ctx.Err()
		}
		res := <-r.done // taken into a batch before ctx was done
		return res.entry, res.err
	}
}

// commitLoop is the committer goroutine started by open: it takes the
// waiting requests in batches and commits them until Close, then fails the
// requests still queued with ErrClosed.
func (l *Log) commitLoop() {
	defer close(l.committerDone)
	var batch []*appendReq
	for {
		l.qmu.Lock()
		for len(l.queue) == 0 && !l.stopping {
			l.qcond.Wait()
		}
		if l.stopping {
			queued := l.queue
			l.queue = nil
			l.qmu.Unlock()
			for _, r := range queued {
				if r.state.CompareAndSwap(reqPending, reqTaken) {
					r.done <- appendResult{err: ErrClosed}
				}
			}
			return
		}
		batch = batch[:0]
		size, k := 0, 0
		for ; k < len(l.queue) && len(batch) < maxBatchEvents && size < maxBatchBytes; k++ {
			r := l.queue[k]
			l.queue[k] = nil
			if r.state.CompareAndSwap(reqPending, reqTaken) {
				batch = append(batch, r)
				size += len(r.tail) + 128
			}
		}
		m := copy(l.queue, l.queue[k:])
		clear(l.queue[m:])
		l.queue = l.queue[:m]
		l.qmu.Unlock()

		l.commit(batch)
		clear(batch)
	}
}

// prevLen is the length of a prev field: standard base64 of a tree hash.
const prevLen = (tlog.HashSize + 2) / 3 * 4

// batchRec is a request of a batch with the entry it will be acknowledged with.
type batchRec struct {
	r     *appendReq
	entry Entry
}

// commit assigns seqs, times and prevs to a batch, writes the records and
// their stored hashes, fsyncs both files, publishes the new size and root
// and answers every request. Only the committer calls it, and only the
// committer changes offsets, root and failed, so it may read them without
// l.mu; it takes l.mu to change them.
func (l *Log) commit(batch []*appendReq) {
	l.mu.Lock()
	err := l.usable()
	l.mu.Unlock()
	if err != nil {
		for _, r := range batch {
			r.done <- appendResult{err: err}
		}
		return
	}

	// Compute everything before writing, so that nothing but the write and
	// the fsyncs can fail once bytes are on disk.
	n0 := int64(len(l.offsets) - 1)
	off0 := l.offsets[n0]
	base := tlog.StoredHashIndex(0, n0)
	hr := pendingHashes{r: &hashCache{r: hashFile{l.hashes}}, base: base}
	root := l.root
	n := n0
	size := 0
	for _, r := range batch {
		size += 128 + len(r.tail) // 128 > `{"seq":<19 digits>,"time":<32>,"prev":"<44>",` + "\n"
	}
	lines := make([]byte, 0, size)
	ends := make([]int64, 0, len(batch)) // ends[i] is where record n0+i ends
	recs := make([]batchRec, 0, len(batch))
	var prev [prevLen]byte
	for i, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.done <- appendResult{err: err}
			continue
		}
		e := r.entry
		ts, err := l.now().UTC().Round(0).MarshalJSON()
		if err == nil {
			err = e.Time.UnmarshalJSON(ts)
		}
		if err != nil {
			r.done <- appendResult{err: err}
			continue
		}
		base64.StdEncoding.Encode(prev[:], root[:])
		e.Seq = n
		e.Prev = string(prev[:])

		start := len(lines)
		lines = append(lines, `{"seq":`...)
		lines = strconv.AppendInt(lines, n, 10)
		lines = append(lines, `,"time":`...)
		lines = append(lines, ts...)
		lines = append(lines, `,"prev":"`...)
		lines = append(lines, prev[:]...)
		lines = append(lines, `",`...)
		lines = append(lines, r.tail...)
		hs, err := tlog.StoredHashes(n, lines[start:], hr)
		if err == nil {
			hr.new = append(hr.new, hs...)
			root, err = tlog.TreeHash(n+1, hr)
		}
		if err != nil {
			// The stored hashes cannot be read. Nothing is written:
			// the whole batch fails, as a lone append did before
			// group commit, but the log stays usable.
			err = fmt.Errorf("hashes of entry %d: %w", n, err)
			for _, br := range recs {
				br.r.done <- appendResult{err: err}
			}
			for _, r := range batch[i:] {
				r.done <- appendResult{err: err}
			}
			return
		}
		lines = append(lines, '\n')
		ends = append(ends, off0+int64(len(lines)))
		recs = append(recs, batchRec{r: r, entry: e})
		n++
	}
	if len(recs) == 0 {
		return
	}
	hbuf := make([]byte, 0, len(hr.new)*tlog.HashSize)
	for _, h := range hr.new {
		hbuf = append(hbuf, h[:]...)
	}

	if l.testHookWrite != nil {
		l.testHookWrite(len(recs))
	}
	if err := l.write(lines, off0, hbuf, base*tlog.HashSize); err != nil {
		l.fail(recs, err)
		return
	}
	l.mu.Lock()
	l.offsets = append(l.offsets, ends...)
	l.root = root
	l.mu.Unlock()
	for _, br := range recs {
		br.r.done <- appendResult{entry: br.entry}
	}
}

// fail marks the log failed with err (it must be reopened) and answers every
// request in recs with the error.
func (l *Log) fail(recs []batchRec, err error) {
	l.mu.Lock()
	if l.failed == nil {
		l.failed = err
	}
	l.mu.Unlock()
	for _, br := range recs {
		br.r.done <- appendResult{err: err}
	}
}

// write stores a batch of records and their hashes with one write and one
// fsync per file (one "fsync pair", counted in l.fsyncs). If anything fails
// it cuts both files back to where the batch started; the caller marks the
// log failed, because after a failed fsync the state of the file on disk is
// unknown.
func (l *Log) write(lines []byte, off int64, hbuf []byte, hoff int64) error {
	_, err := l.entries.WriteAt(lines, off)
	if err == nil {
		_, err = l.hashes.WriteAt(hbuf, hoff)
	}
	if err == nil {
		failpoint.Hit(failpoint.AuditWrite)
		// The two files sync at once: a batch waits for the slower fsync,
		// not for both one after the other.
		hashesSynced := make(chan error, 1)
		go func() { hashesSynced <- l.hashes.Sync() }()
		err = errors.Join(l.entries.Sync(), <-hashesSynced)
	}
	if err == nil {
		l.fsyncs.Add(1)
		return nil
	}
	l.entries.Truncate(off)
	l.hashes.Truncate(hoff)
	return fmt.Errorf("write entries: %w (log must be reopened)", err)
}

// hashCache reads stored hashes through r and keeps them for the rest of a
// batch: stored hashes below the log's size never change, and the records of
// a batch read the same few ones (the right edge of the tree) again and again.
type hashCache struct {
	r tlog.HashReader
	m map[int64]tlog.Hash
}

// ReadHashes implements tlog.HashReader.
func (c *hashCache) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	var miss []int64
	for i, idx := range indexes {
		h, ok := c.m[idx]
		if !ok {
			miss = append(miss, idx)
			continue
		}
		out[i] = h
	}
	if len(miss) == 0 {
		return out, nil
	}
	hs, err := c.r.ReadHashes(miss)
	if err != nil {
		return nil, err
	}
	if c.m == nil {
		c.m = make(map[int64]tlog.Hash)
	}
	for j, idx := range miss {
		c.m[idx] = hs[j]
	}
	for i, idx := range indexes {
		out[i] = c.m[idx]
	}
	return out, nil
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
// It waits for a batch being written to finish; appends still queued and
// appends begun after Close fail with ErrClosed. A Log that is not closed
// keeps its committer goroutine.
func (l *Log) Close() error {
	l.qmu.Lock()
	l.stopping = true
	l.qcond.Broadcast()
	l.qmu.Unlock()
	<-l.committerDone

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
