package audit

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// gcWaitQueued waits until n requests are queued for the committer.
func gcWaitQueued(t *testing.T, l *Log, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		l.qmu.Lock()
		got := len(l.queue)
		l.qmu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests queued, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// gcBlockFirstBatch makes the committer stop before writing its next batch
// until release is closed; entered is closed when it has stopped there. Later
// batches run hook (if not nil) before their write.
func gcBlockFirstBatch(l *Log, hook func(call, n int)) (entered, release chan struct{}) {
	entered, release = make(chan struct{}), make(chan struct{})
	calls := 0
	l.testHookWrite = func(n int) {
		calls++
		if calls == 1 {
			close(entered)
			<-release
			return
		}
		if hook != nil {
			hook(calls, n)
		}
	}
	return entered, release
}

func TestGroupCommitConcurrent(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	const workers, each = 64, 50
	const total = workers * each

	var (
		mu    sync.Mutex
		got   = make(map[int64]Entry, total)
		errs  []error
		byWkr = make([][]int64, workers)
	)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				e, err := l.Append(context.Background(), Event{
					Kind:      "test.groupcommit",
					Principal: "worker",
					Subject:   "job/x",
					Data:      map[string]int{"w": w, "i": i},
				})
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					if _, dup := got[e.Seq]; dup {
						errs = append(errs, errors.New("duplicate seq"))
					}
					got[e.Seq] = e
					byWkr[w] = append(byWkr[w], e.Seq)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		t.Fatal(err)
	}
	if len(got) != total {
		t.Fatalf("%d distinct seqs acknowledged, want %d", len(got), total)
	}
	if n := l.Size(); n != total {
		t.Fatalf("Size = %d, want %d", n, total)
	}
	for seq := range int64(total) {
		e, ok := got[seq]
		if !ok {
			t.Fatalf("seq %d never acknowledged", seq)
		}
		stored, err := l.Entry(seq)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(e, stored) {
			t.Fatalf("Append returned %+v, Entry(%d) = %+v", e, seq, stored)
		}
	}
	for w, seqs := range byWkr {
		for i := 1; i < len(seqs); i++ {
			if seqs[i] <= seqs[i-1] {
				t.Fatalf("worker %d: seq %d after %d", w, seqs[i], seqs[i-1])
			}
		}
	}
	fsyncs := l.fsyncs.Load()
	t.Logf("%d appends in %d fsync pairs", total, fsyncs)
	if fsyncs >= total {
		t.Errorf("%d fsync pairs for %d appends, want batching", fsyncs, total)
	}

	records, cp, vkey, _ := exportLog(t, l)
	if r := mustVerify(t, records, cp, vkey); r.Size != total {
		t.Fatalf("verified size = %d, want %d", r.Size, total)
	}
	c0, err := ParseCheckpoint(cp, vkey)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l = openLog(t, dir)
	defer l.Close()
	if n := l.Size(); n != total {
		t.Fatalf("Size after reopen = %d, want %d", n, total)
	}
	cp1, err := l.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	c1, err := ParseCheckpoint(cp1, vkey)
	if err != nil {
		t.Fatal(err)
	}
	if c1 != c0 {
		t.Errorf("checkpoint after reopen = %+v, want %+v", c1, c0)
	}
}

func TestGroupCommitLoneAppendIsOneFsyncPair(t *testing.T) {
	l := openLog(t, t.TempDir())
	defer l.Close()
	appendN(t, l, 0, 5)
	if got := l.fsyncs.Load(); got != 5 {
		t.Errorf("%d fsync pairs for 5 sequential appends, want 5", got)
	}
}

func TestGroupCommitCanceledContext(t *testing.T) {
	l := openLog(t, t.TempDir())
	defer l.Close()
	appendN(t, l, 0, 2)
	before := l.fsyncs.Load()

	// Done before Append is called.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Append(ctx, Event{Kind: "k"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Append with canceled ctx = %v, want context.Canceled", err)
	}
	if got := l.fsyncs.Load(); got != before {
		t.Errorf("fsync pairs %d -> %d for a canceled append", before, got)
	}

	// Done while queued behind a batch being written.
	entered, release := gcBlockFirstBatch(l, nil)
	first := make(chan error, 1)
	go func() {
		_, err := l.Append(context.Background(), Event{Kind: "first"})
		first <- err
	}()
	<-entered
	ctx, cancel = context.WithCancel(context.Background())
	queued := make(chan error, 1)
	go func() {
		_, err := l.Append(ctx, Event{Kind: "abandoned"})
		queued <- err
	}()
	gcWaitQueued(t, l, 1)
	cancel()
	select {
	case err := <-queued:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("queued Append after cancel = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("queued Append did not return after its ctx was canceled")
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 3, 1)
	if n := l.Size(); n != 4 {
		t.Fatalf("Size = %d, want 4 (the canceled events must not be written)", n)
	}
	for seq := range int64(4) {
		if e, _ := l.Entry(seq); e.Kind == "abandoned" || e.Kind == "k" {
			t.Errorf("entry %d is a canceled event: %+v", seq, e)
		}
	}
	records, cp, vkey, _ := exportLog(t, l)
	mustVerify(t, records, cp, vkey)
}

func TestGroupCommitClose(t *testing.T) {
	l := openLog(t, t.TempDir())
	appendN(t, l, 0, 1)

	// Close waits for the batch being written and fails the queued ones.
	entered, release := gcBlockFirstBatch(l, nil)
	first := make(chan error, 1)
	go func() {
		_, err := l.Append(context.Background(), Event{Kind: "in.flight"})
		first <- err
	}()
	<-entered
	const queued = 5
	errs := make(chan error, queued)
	for range queued {
		go func() {
			_, err := l.Append(context.Background(), Event{Kind: "queued"})
			errs <- err
		}()
	}
	gcWaitQueued(t, l, queued)
	closed := make(chan error, 1)
	go func() { closed <- l.Close() }()
	for {
		l.qmu.Lock()
		stopping := l.stopping
		l.qmu.Unlock()
		if stopping {
			break
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a batch was being written", err)
	case <-time.After(20 * time.Millisecond):
	}
	close(release)
	if err := <-first; err != nil {
		t.Errorf("in-flight Append = %v, want success", err)
	}
	for range queued {
		if err := <-errs; !errors.Is(err, ErrClosed) {
			t.Errorf("queued Append = %v, want ErrClosed", err)
		}
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(context.Background(), Event{Kind: "late"}); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close = %v, want ErrClosed", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

func TestGroupCommitWriteFailure(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	appendN(t, l, 0, 3)

	// The second batch finds the hashes file read-only: its entries are
	// written, its hashes are not, and the batch must be rolled back.
	var orig *os.File
	batchLen := make(chan int, 1)
	entered, release := gcBlockFirstBatch(l, func(call, n int) {
		if call != 2 {
			return
		}
		ro, err := os.Open(filepath.Join(dir, hashesFile))
		if err != nil {
			panic(err)
		}
		l.mu.Lock()
		orig, l.hashes = l.hashes, ro
		l.mu.Unlock()
		batchLen <- n
	})
	first := make(chan error, 1)
	go func() {
		_, err := l.Append(context.Background(), Event{Kind: "before.failure"})
		first <- err
	}()
	<-entered
	const doomed = 10
	errs := make(chan error, doomed)
	for range doomed {
		go func() {
			_, err := l.Append(context.Background(), Event{Kind: "doomed"})
			errs <- err
		}()
	}
	gcWaitQueued(t, l, doomed)
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if n := <-batchLen; n != doomed {
		t.Errorf("failing batch has %d entries, want %d", n, doomed)
	}
	for range doomed {
		err := <-errs
		if err == nil || !strings.Contains(err.Error(), "must be reopened") {
			t.Errorf("Append in failed batch = %v, want a write error", err)
		}
	}
	if n := l.Size(); n != 4 {
		t.Errorf("Size = %d after failed batch, want 4", n)
	}
	l.mu.Lock()
	end := l.offsets[len(l.offsets)-1]
	l.mu.Unlock()
	if got := fileSize(t, dir, entriesFile); got != end {
		t.Errorf("entries.jsonl is %d bytes after failed batch, want %d (cut back)", got, end)
	}
	_, err := l.Append(context.Background(), Event{Kind: "after.failure"})
	if err == nil || !strings.Contains(err.Error(), "failed earlier") {
		t.Errorf("Append after failure = %v, want the failed-log error", err)
	}

	l.mu.Lock()
	l.hashes.Close()
	l.hashes = orig
	l.mu.Unlock()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir)
	defer l.Close()
	if n := l.Size(); n != 4 {
		t.Fatalf("Size after reopen = %d, want 4", n)
	}
	appendN(t, l, 4, 2)
	records, cp, vkey, _ := exportLog(t, l)
	if r := mustVerify(t, records, cp, vkey); r.Size != 6 {
		t.Errorf("verified size = %d, want 6", r.Size)
	}
}
