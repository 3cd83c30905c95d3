package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/datasandbox/dsbx/audit"
	"github.com/datasandbox/dsbx/operators"
)

// node is a second Service on p's state database, audit log and
// quarantine, as a `dsbx worker` process is on a shared PostgreSQL and
// directory, with a clock the test moves.
func (p *platform) node(t *testing.T, name string, clock *atomic.Int64) *Service {
	t.Helper()
	s := New(p.db, p.quarantine(), testSecret, p.catalog, p.dir, p.policy, p.log)
	s.JoinAsNode(name)
	s.SetClock(func() time.Time { return time.Unix(0, clock.Load()) })
	t.Cleanup(s.Stop)
	return s
}

// TestDeadNodesJobRunsAgainOnceAndIsReleasedOnce: a node that claims a job
// and dies leaves it running under its lease; when the lease runs out,
// another node queues the job again (once), runs it and releases it once;
// the dead node, were it only paused, can no longer save the job. A job
// whose second node dies too fails instead of running a third time.
func TestDeadNodesJobRunsAgainOnceAndIsReleasedOnce(t *testing.T) {
	ctx := context.Background()
	p := newPlatform(t)
	var clock atomic.Int64
	clock.Store(testNow.UnixNano())
	p.svc.SetClock(func() time.Time { return time.Unix(0, clock.Load()) })
	p.dir.SetClock(func() time.Time { return time.Unix(0, clock.Load()) })
	acme := p.principal(t, "acme")

	dead := p.node(t, "node-a", &clock)
	j := p.submit(t, acme, totalsSQL)
	claimed, ok, err := dead.claim(ctx)
	if err != nil || !ok || claimed.ID != j.ID {
		t.Fatalf("node-a claimed %d %v %v, want job %d", claimed.ID, ok, err, j.ID)
	}
	// node-a dies here. Another node starting now leaves the job alone:
	// its lease still runs.
	live := p.node(t, "node-b", &clock)
	if err := live.ReclaimExpired(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := p.svc.Get(ctx, acme, j.ID); got.State != StateRunning {
		t.Fatalf("job %s while node-a's lease runs, want running", got.State)
	}

	clock.Add(int64(LeaseTime + time.Second))
	if err := live.ReclaimExpired(ctx); err != nil {
		t.Fatal(err)
	}
	if err := live.ReclaimExpired(ctx); err != nil { // a second look changes nothing
		t.Fatal(err)
	}
	if got, _ := p.svc.Get(ctx, acme, j.ID); got.State != StateQueued {
		t.Fatalf("job %s after node-a's lease ran out, want queued", got.State)
	}
	if n := countKind(p.jobEntries(t, j.ID), "job.requeued"); n != 1 {
		t.Fatalf("%d job.requeued entries, want 1", n)
	}
	// node-a was only paused: it wakes and tries to go on. It cannot.
	claimed.State = StateFailed
	if err := dead.save(ctx, &claimed); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("node-a saved the job it lost: %v", err)
	}

	if err := live.Start(ctx, 1); err != nil {
		t.Fatal(err)
	}
	done := p.wait(t, acme, j.ID)
	if done.State != StateReleased {
		t.Fatalf("job %s (%s), want released", done.State, done.Error)
	}
	es := p.jobEntries(t, j.ID)
	if n := countKind(es, "result.released"); n != 1 {
		t.Fatalf("%d result.released entries, want 1: %v", n, kinds(es))
	}
	if n := countKind(es, "job.started"); n != 2 {
		t.Fatalf("%d job.started entries, want 2 (node-a, then node-b): %v", n, kinds(es))
	}
	live.Stop()

	// The second attempt is the last.
	j2 := p.submit(t, acme, totalsSQL)
	for _, name := range []string{"node-c", "node-d"} {
		n := p.node(t, name, &clock)
		if c, ok, err := n.claim(ctx); err != nil || !ok || c.ID != j2.ID {
			t.Fatalf("%s claimed %d %v %v, want job %d", name, c.ID, ok, err, j2.ID)
		}
		clock.Add(int64(LeaseTime + time.Second))
		if err := p.node(t, "node-e", &clock).ReclaimExpired(ctx); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := p.svc.Get(ctx, acme, j2.ID)
	if got.State != StateFailed || countKind(p.jobEntries(t, j2.ID), "job.requeued") != 1 {
		t.Fatalf("after two lost nodes: %s (%s), %v; want failed after one requeue", got.State, got.Error, kinds(p.jobEntries(t, j2.ID)))
	}
}

// TestNodesClaimEachJobOnce: nodes claiming from one queue at once never
// claim the same job.
func TestNodesClaimEachJobOnce(t *testing.T) {
	ctx := context.Background()
	p := newPlatform(t)
	var clock atomic.Int64
	clock.Store(testNow.UnixNano())
	acme := p.principal(t, "acme")
	const jobs = 12
	for range jobs {
		p.submit(t, acme, totalsSQL)
	}
	claimed := make(chan int64, jobs)
	errs := make(chan error, 4)
	for i := range 4 {
		n := p.node(t, "node-"+string(rune('a'+i)), &clock)
		go func() {
			for {
				j, ok, err := n.claim(ctx)
				if err != nil || !ok {
					errs <- err
					return
				}
				claimed <- j.ID
			}
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	close(claimed)
	seen := map[int64]bool{}
	for id := range claimed {
		if seen[id] {
			t.Fatalf("job %d claimed twice", id)
		}
		seen[id] = true
	}
	if len(seen) != jobs {
		t.Fatalf("%d jobs claimed, want %d", len(seen), jobs)
	}
}

// TestRecordForChecksTheLease: the server records a node's step only for a
// job running under that node's lease, and only the steps nodes take.
func TestRecordForChecksTheLease(t *testing.T) {
	ctx := context.Background()
	p := newPlatform(t)
	var clock atomic.Int64
	clock.Store(testNow.UnixNano())
	acme := p.principal(t, "acme")
	j := p.submit(t, acme, totalsSQL)
	owner := p.node(t, "node-a", &clock)
	if _, ok, err := owner.claim(ctx); !ok || err != nil {
		t.Fatalf("claim: %v %v", ok, err)
	}
	subject := "job/" + strconv.FormatInt(j.ID, 10)
	size := p.log.Size()
	e, err := p.svc.RecordFor(ctx, "node-a", NodeEvent{Kind: "job.ran", Principal: "acme", Subject: subject, Data: json.RawMessage(`{"rows":3}`)})
	if err != nil || e.Kind != "job.ran" || e.Seq != size {
		t.Fatalf("the owner's step: %+v %v", e, err)
	}
	var conflict *operators.ConflictError
	var input *InputError
	for _, c := range []struct {
		node string
		ev   NodeEvent
		want any
	}{
		{"node-b", NodeEvent{Kind: "result.released", Principal: "acme", Subject: subject}, &conflict},
		{"node-a", NodeEvent{Kind: "job.submitted", Principal: "acme", Subject: subject}, &input},
		{"node-a", NodeEvent{Kind: "review.approved", Principal: "acme", Subject: subject}, &input},
		{"node-a", NodeEvent{Kind: "job.ran", Principal: "acme", Subject: "dataset/people"}, &input},
		{"node-a", NodeEvent{Kind: "job.ran", Principal: "acme", Subject: "job/999999"}, &ErrNotFound},
		{"node-a", NodeEvent{Kind: "job.ran", Principal: "acme", Subject: subject, Data: json.RawMessage(`[1,2]`)}, &input},
	} {
		_, err := p.svc.RecordFor(ctx, c.node, c.ev)
		ok := false
		if target, isErr := c.want.(*error); isErr {
			ok = errors.Is(err, *target)
		} else {
			ok = errors.As(err, c.want)
		}
		if !ok {
			t.Errorf("%s records %s about %s: %v", c.node, c.ev.Kind, c.ev.Subject, err)
		}
	}
	if p.log.Size() != size+1 {
		t.Fatalf("the log grew by %d, want 1 (refused steps leave no entry)", p.log.Size()-size)
	}
	// Once the lease ran out and another node took the job over, the
	// first node's release is refused.
	clock.Add(int64(LeaseTime + time.Second))
	if err := p.node(t, "node-b", &clock).ReclaimExpired(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := p.svc.RecordFor(ctx, "node-a", NodeEvent{Kind: "result.released", Principal: "acme", Subject: subject}); !errors.As(err, &conflict) {
		t.Fatalf("a node that lost its lease recorded a release: %v", err)
	}
}

// flakyLog refuses the first append of one kind, as a server that does not
// answer would.
type flakyLog struct {
	AuditLog
	kind    string
	refused atomic.Bool
}

func (l *flakyLog) Append(ctx context.Context, e audit.Event) (audit.Entry, error) {
	if e.Kind == l.kind && l.refused.CompareAndSwap(false, true) {
		return audit.Entry{}, errors.New("the server did not answer")
	}
	return l.AuditLog.Append(ctx, e)
}

// TestNodeLetsGoOfAJobItCannotRecord: a node that cannot record a step of
// its job gives the job up, instead of holding it running under a lease it
// keeps extending; the job is queued again and released once.
func TestNodeLetsGoOfAJobItCannotRecord(t *testing.T) {
	defer func(d time.Duration) { LeaseTime = d }(LeaseTime)
	LeaseTime = 3 * time.Second
	ctx := context.Background()
	p := newPlatform(t)
	acme := p.principal(t, "acme")
	began := time.Now()
	node := New(p.db, p.quarantine(), testSecret, p.catalog, p.dir, p.policy, &flakyLog{AuditLog: p.log, kind: "job.ran"})
	node.JoinAsNode("node-a")
	node.SetClock(func() time.Time { return testNow.Add(time.Since(began)) })
	j := p.submit(t, acme, totalsSQL)
	if err := node.Start(ctx, 1); err != nil {
		t.Fatal(err)
	}
	defer node.Stop()
	done := p.wait(t, acme, j.ID)
	if done.State != StateReleased {
		t.Fatalf("job %s (%s), want released", done.State, done.Error)
	}
	es := p.jobEntries(t, j.ID)
	if countKind(es, "job.requeued") != 1 || countKind(es, "job.started") != 2 || countKind(es, "result.released") != 1 {
		t.Fatalf("entries %v; want two starts, one requeue, one release", kinds(es))
	}
}

// TestNodeLeavesTheServersDirectoryAlone: a node starting does not clean
// the quarantine it shares with the server, where the server may be
// replaying a job or releasing a held one right now; the server's own start
// does.
func TestNodeLeavesTheServersDirectoryAlone(t *testing.T) {
	ctx := context.Background()
	p := newPlatform(t)
	var clock atomic.Int64
	clock.Store(testNow.UnixNano())
	j := p.submit(t, p.principal(t, "acme"), totalsSQL)
	scratch := []string{
		filepath.Join(p.quarantine(), "replay-7-123"),                       // a replay in progress
		filepath.Join(p.quarantine(), strconv.FormatInt(j.ID, 10), "input"), // a queued job's directory
	}
	for _, d := range scratch {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	node := p.node(t, "node-a", &clock)
	if err := node.Start(ctx, 0); err != nil {
		t.Fatal(err)
	}
	node.Stop()
	for _, d := range scratch {
		if _, err := os.Stat(d); err != nil {
			t.Fatalf("a node's start removed %s: %v", d, err)
		}
	}
	if err := p.svc.Start(ctx, 0); err != nil {
		t.Fatal(err)
	}
	for _, d := range scratch {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("the server's start left %s (%v); the test's directories are not what it cleans", d, err)
		}
	}
}
