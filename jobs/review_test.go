package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/datasandbox/dsbx/audit"
	"time"

	"github.com/datasandbox/dsbx/operators"
	"github.com/datasandbox/dsbx/policies"
)

// smallCells groups people by district and whether they earn exactly
// incomeOf(0): that group has one person, so the result is held.
const smallCells = `SELECT district, income = 1000 AS first, count(*) AS n FROM people GROUP BY ALL ORDER BY ALL`

// gradeAs is the platform policy deciding releases as if the dataset had
// the given grade.
type gradeAs struct {
	Policy
	grade string
}

func (p gradeAs) Release(ctx context.Context, in policies.ReleaseInput) (policies.ReleaseDecision, error) {
	in.Dataset.Grade = p.grade
	return p.Policy.Release(ctx, in)
}

// addReviewers adds output checkers to p's directory.
func (p *platform) addReviewers(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, _, err := p.dir.Add(context.Background(), "admin", operators.NewPrincipal{Name: n, Roles: []string{operators.RoleReviewer}}); err != nil {
			t.Fatal(err)
		}
	}
}

// held submits smallCells as acme and waits for it to be held.
func (p *platform) held(t *testing.T) Job {
	t.Helper()
	acme := p.principal(t, "acme")
	j := p.wait(t, acme, p.submit(t, acme, smallCells).ID)
	if j.State != StateHeld || j.Review == nil || j.Review.Required == 0 {
		t.Fatalf("small cells: state %s review %+v, want held for review", j.State, j.Review)
	}
	return j
}

func TestReviewApprovesAHeldResult(t *testing.T) {
	p := newPlatform(t)
	p.start(t)
	p.addReviewers(t, "check")
	ctx := context.Background()
	acme, check := p.principal(t, "acme"), p.principal(t, "check")
	j := p.held(t)
	if j.Review.Required != 1 {
		t.Fatalf("general data: %d reviewers required, want 1", j.Review.Required)
	}
	var nr *NotReleasedError
	if err := p.svc.Deliver(ctx, acme, j.ID, FormatCSV, &bytes.Buffer{}); !errors.As(err, &nr) {
		t.Fatalf("a held result was delivered: %v", err)
	}

	// The submitter argues for an exception; only it may.
	if _, err := p.svc.Justify(ctx, p.principal(t, "beta"), j.ID, "mine"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another operator justified acme's job: %v", err)
	}
	if _, err := p.svc.Justify(ctx, acme, j.ID, "  "); err == nil {
		t.Fatal("an empty justification was accepted")
	}
	if _, err := p.svc.Justify(ctx, acme, j.ID, "the single high earner is the survey's control case"); err != nil {
		t.Fatal(err)
	}

	queue, err := p.svc.ReviewQueue(ctx, check)
	if err != nil || len(queue) != 1 || queue[0].ID != j.ID || queue[0].Review.Justification == "" {
		t.Fatalf("review queue %+v, %v; want job %d with its justification", queue, err, j.ID)
	}
	var forbidden *operators.ForbiddenError
	if _, err := p.svc.ReviewQueue(ctx, acme); !errors.As(err, &forbidden) {
		t.Fatalf("an operator has a review queue: %v", err)
	}
	if _, err := p.svc.Review(ctx, acme, j.ID, ReviewRequest{Approve: true, Reason: "looks fine to me"}); !errors.As(err, &forbidden) {
		t.Fatalf("the submitter approved its own result: %v", err)
	}
	if _, err := p.svc.Review(ctx, check, j.ID, ReviewRequest{Approve: true}); err == nil || !strings.Contains(err.Error(), "reason is required") {
		t.Fatalf("an approval without a reason: %v", err)
	}

	j, err = p.svc.Review(ctx, check, j.ID, ReviewRequest{Approve: true, Reason: "one cell of 1 is acceptable for this control case"})
	if err != nil {
		t.Fatal(err)
	}
	if j.State != StateReleased || j.Result.ReleaseSeq == 0 {
		t.Fatalf("after one approval on general data: %s", j.State)
	}
	var out bytes.Buffer
	if err := p.svc.Deliver(ctx, acme, j.ID, FormatCSV, &out); err != nil || !strings.Contains(out.String(), "district") {
		t.Fatalf("deliver the approved result: %v %q", err, out.String())
	}

	// The record tells who did what, and the release names the reviewer.
	got := kinds(p.jobEntries(t, j.ID))
	want := []string{"job.held", "review.justified", "review.approved", "result.released", "result.downloaded"}
	if i := slices.Index(got, "job.held"); i < 0 || !slices.Equal(got[i:], want) {
		t.Fatalf("audit %v, want it to end %v", got, want)
	}
	for _, e := range p.jobEntries(t, j.ID) {
		switch e.Kind {
		case "review.approved":
			if e.Principal != "check" {
				t.Errorf("approval recorded for %q, want check", e.Principal)
			}
		case "result.released":
			var rel releaseEvent
			if err := json.Unmarshal(e.Data, &rel); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(rel.Reviewers, []string{"check"}) || len(rel.Files) != 1 || rel.Files[0].SHA256 != j.Result.Released.SHA256 ||
				rel.Bundle != p.policy.BundleHash() || len(rel.Report) == 0 {
				t.Errorf("release event %+v", rel)
			}
		}
	}
	if _, err := p.svc.Review(ctx, check, j.ID, ReviewRequest{Approve: false, Reason: "changed my mind"}); err == nil {
		t.Fatal("a released result was reviewed again")
	}
}

func TestReviewRejects(t *testing.T) {
	p := newPlatform(t)
	p.start(t)
	p.addReviewers(t, "check", "check2")
	ctx := context.Background()
	j := p.held(t)
	// The checker sees what would be released, after suppression; the
	// submitter does not, and the look is recorded.
	var seen bytes.Buffer
	if err := p.svc.Inspect(ctx, p.principal(t, "check"), j.ID, FormatCSV, &seen); err != nil || !strings.HasPrefix(seen.String(), "district,first,n\n") {
		t.Fatalf("inspect: %v %q", err, seen.String())
	}
	if !strings.Contains(seen.String(), "east,true,\n") {
		t.Errorf("the one-person cell is not blank in what would be released:\n%s", seen.String())
	}
	var forbidden *operators.ForbiddenError
	if err := p.svc.Inspect(ctx, p.principal(t, "acme"), j.ID, FormatCSV, &bytes.Buffer{}); !errors.As(err, &forbidden) {
		t.Fatalf("the submitter inspected its held result: %v", err)
	}
	if n := countKind(p.jobEntries(t, j.ID), "review.inspected"); n != 1 {
		t.Fatalf("%d review.inspected entries, want 1", n)
	}
	j, err := p.svc.Review(ctx, p.principal(t, "check"), j.ID, ReviewRequest{Approve: false, Reason: "the cell of one reveals that person's income band"})
	if err != nil {
		t.Fatal(err)
	}
	if j.State != StateRejected || !strings.Contains(j.Error, "reveals that person's income band") {
		t.Fatalf("rejected job: %s %q", j.State, j.Error)
	}
	var nr *NotReleasedError
	if err := p.svc.Deliver(ctx, p.principal(t, "acme"), j.ID, FormatCSV, &bytes.Buffer{}); !errors.As(err, &nr) || !strings.Contains(err.Error(), "rejected") {
		t.Fatalf("deliver a rejected result: %v", err)
	}
	var conflict *operators.ConflictError
	if err := p.svc.Inspect(ctx, p.principal(t, "check2"), j.ID, FormatCSV, &bytes.Buffer{}); !errors.As(err, &conflict) {
		t.Fatalf("inspect a rejected result: %v", err)
	}
	if _, err := p.svc.Review(ctx, p.principal(t, "check2"), j.ID, ReviewRequest{Approve: true, Reason: "overrule"}); !errors.As(err, &conflict) {
		t.Fatalf("a rejected result approved: %v", err)
	}
	if q, _ := p.svc.ReviewQueue(ctx, p.principal(t, "check2")); len(q) != 0 {
		t.Fatalf("a rejected job in the queue: %+v", q)
	}
}

// Important and core data need two different output checkers.
func TestSecondReviewer(t *testing.T) {
	p := newPlatform(t)
	p.svc = New(p.db, p.quarantine(), testSecret, p.catalog, p.dir, gradeAs{p.policy, "important"}, p.log)
	p.svc.SetClock(func() time.Time { return testNow })
	p.start(t)
	p.addReviewers(t, "check", "check2")
	ctx := context.Background()
	j := p.held(t)
	if j.Review.Required != 2 {
		t.Fatalf("important data: %d reviewers required, want 2", j.Review.Required)
	}
	check, check2 := p.principal(t, "check"), p.principal(t, "check2")
	j, err := p.svc.Review(ctx, check, j.ID, ReviewRequest{Approve: true, Reason: "acceptable"})
	if err != nil || j.State != StateHeld {
		t.Fatalf("after the first approval: %s %v, want still held", j.State, err)
	}
	var conflict *operators.ConflictError
	if _, err := p.svc.Review(ctx, check, j.ID, ReviewRequest{Approve: true, Reason: "really acceptable"}); !errors.As(err, &conflict) {
		t.Fatalf("the same checker approved twice: %v", err)
	}
	if q, _ := p.svc.ReviewQueue(ctx, check); len(q) != 0 {
		t.Fatalf("a job the checker decided is still in its queue: %+v", q)
	}
	if q, _ := p.svc.ReviewQueue(ctx, check2); len(q) != 1 {
		t.Fatalf("the second checker's queue: %+v", q)
	}
	j, err = p.svc.Review(ctx, check2, j.ID, ReviewRequest{Approve: true, Reason: "agree"})
	if err != nil || j.State != StateReleased {
		t.Fatalf("after the second approval: %s %v", j.State, err)
	}
	if got := j.Review.approvals(); !slices.Equal(got, []string{"check", "check2"}) {
		t.Fatalf("approvals %v", got)
	}
}

// An approval cut off by a crash between its result.released entry and the
// job's saved state is finished at the next start, not released twice: the
// job is released with that entry, and a second approval finds nothing held.
func TestApprovalCutOffIsFinishedOnce(t *testing.T) {
	p := newPlatform(t)
	p.start(t)
	p.addReviewers(t, "check", "check2")
	ctx := context.Background()
	acme := p.principal(t, "acme")
	j := p.held(t)
	e, err := p.log.Append(ctx, audit.Event{Kind: "result.released", Principal: "check", Subject: j.subject(),
		Data: map[string]any{"job": j.ID, "sha256": j.Result.Released.SHA256}})
	if err != nil {
		t.Fatal(err)
	}
	p.svc.Stop()
	if err := p.svc.Start(ctx, 1); err != nil {
		t.Fatal(err)
	}
	got, err := p.svc.Get(ctx, acme, j.ID)
	if err != nil || got.State != StateReleased || got.Result.ReleaseSeq != e.Seq {
		t.Fatalf("after the restart: %s (release seq %d, want %d) %v", got.State, got.Result.ReleaseSeq, e.Seq, err)
	}
	if _, err := p.svc.Review(ctx, p.principal(t, "check2"), j.ID, ReviewRequest{Approve: true, Reason: "fine"}); err == nil {
		t.Fatal("a released job was approved again")
	}
	// A held job without such an entry stays held.
	k := p.held(t)
	p.svc.Stop()
	if err := p.svc.Start(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if got, err := p.svc.Get(ctx, acme, k.ID); err != nil || got.State != StateHeld {
		t.Fatalf("a held job after a restart: %s %v", got.State, err)
	}
}
