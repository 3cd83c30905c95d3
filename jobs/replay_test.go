package jobs

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/datasandbox/dsbx/operators"
)

func (p *platform) regulator(t *testing.T) operators.Principal {
	t.Helper()
	if _, _, err := p.dir.Add(context.Background(), "admin", operators.NewPrincipal{Name: "regulator", Roles: []string{operators.RoleRegulator}}); err != nil {
		t.Fatal(err)
	}
	return p.principal(t, "regulator")
}

// A regulator re-runs jobs from their record and gets the recorded hashes:
// a plain release, one derived by suppression, and one with noise.
func TestReplayMatches(t *testing.T) {
	p := newPlatform(t)
	p.start(t)
	reg := p.regulator(t)
	ctx := context.Background()
	plain := p.run(t, "acme", totalsSQL)
	suppressed := p.run(t, "acme", `SELECT district, income < 1100 AS low, count(*) AS n FROM people GROUP BY ALL ORDER BY ALL`)
	if suppressed.Result.Released == nil || suppressed.Result.Released.Name != releasedFile {
		t.Fatalf("setup: the suppressed job released %+v", suppressed.Result.Released)
	}
	for _, j := range []Job{plain, suppressed} {
		r, err := p.svc.Replay(ctx, reg, j.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !r.ResultMatches || !r.ReleasedMatches || r.ResultSHA256 != j.Result.SHA256 || r.Seq == 0 {
			t.Fatalf("replay of job %d: %+v", j.ID, r)
		}
		if n := countKind(p.jobEntries(t, j.ID), "audit.replayed"); n != 1 {
			t.Fatalf("%d audit.replayed entries for job %d", n, j.ID)
		}
	}
	var forbidden *operators.ForbiddenError
	if _, err := p.svc.Replay(ctx, p.principal(t, "acme"), plain.ID); !errors.As(err, &forbidden) {
		t.Fatalf("an operator replayed: %v", err)
	}
	// A record altered after the fact no longer matches what the code gives.
	var text string
	if err := p.db.QueryRowContext(ctx, `SELECT record FROM jobs WHERE id = ?`, plain.ID).Scan(&text); err != nil {
		t.Fatal(err)
	}
	altered := strings.Replace(text, `"sha256":"`+plain.Result.SHA256+`"`, `"sha256":"`+strings.Repeat("0", 64)+`"`, 1)
	if altered == text {
		t.Fatalf("the record does not hold the result's hash %s: %s", plain.Result.SHA256, text)
	}
	if _, err := p.db.ExecContext(ctx, `UPDATE jobs SET record = ? WHERE id = ?`, altered, plain.ID); err != nil {
		t.Fatal(err)
	}
	if r, err := p.svc.Replay(ctx, reg, plain.ID); err != nil || r.ResultMatches {
		t.Fatalf("replay against an altered record: %+v %v", r, err)
	}
}

func TestReplayPrivate(t *testing.T) {
	p := dpPlatform(t)
	p.start(t)
	j := p.run(t, "acme", dpCount)
	r, err := p.svc.Replay(context.Background(), p.regulator(t), j.ID)
	if err != nil || !r.ResultMatches || !r.ReleasedMatches || r.ReleasedSHA256 != j.Result.Released.SHA256 {
		t.Fatalf("replay of a DP job: %+v %v", r, err)
	}
}
