package jobs

import (
	"context"
	"testing"
)

// TestOpenJobs counts queued and running jobs per principal, and not held
// or finished ones. The workers are not started, so submitted jobs stay
// queued.
func TestOpenJobs(t *testing.T) {
	p := newPlatform(t)
	ctx := context.Background()
	acme := p.principal(t, "acme")
	count := func(who string) int {
		t.Helper()
		n, err := p.svc.OpenJobs(ctx, who)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	var ids []int64
	for i := 0; i < 4; i++ {
		ids = append(ids, p.submit(t, acme, "SELECT district, count(*) AS n FROM people GROUP BY district").ID)
	}
	if n := count("acme"); n != 4 {
		t.Fatalf("acme has %d open jobs, want 4 queued", n)
	}
	if n := count("beta"); n != 0 {
		t.Fatalf("beta has %d open jobs, want 0", n)
	}
	for state, id := range map[string]int64{StateRunning: ids[0], StateHeld: ids[1], StateReleased: ids[2]} {
		if _, err := p.db.ExecContext(ctx, `UPDATE jobs SET state = ? WHERE id = ?`, state, id); err != nil {
			t.Fatal(err)
		}
	}
	if n := count("acme"); n != 2 {
		t.Fatalf("acme has %d open jobs, want 2 (one running, one queued)", n)
	}
}
