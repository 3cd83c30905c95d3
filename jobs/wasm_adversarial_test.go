package jobs

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/datasandbox/dsbx/policies"
	"github.com/datasandbox/dsbx/sandbox/wasm"
	"github.com/datasandbox/dsbx/sandbox/wasmjob"
)

// tightLimits is the platform policy with a short time limit and small
// memory, so hostile guests hit them quickly.
type tightLimits struct{ Policy }

func (p tightLimits) Admit(ctx context.Context, in policies.AdmissionInput) (policies.Decision, error) {
	d, err := p.Policy.Admit(ctx, in)
	d.Limits.TimeoutSeconds, d.Limits.Memory, d.Limits.MaxBytes = 2, "16MB", 1<<20
	return d, err
}

// hostileGuests builds the sandbox/wasm test guests that attack the host.
func hostileGuests(t *testing.T, names ...string) map[string][]byte {
	t.Helper()
	dir := t.TempDir()
	args := []string{"build", "-o", dir + string(os.PathSeparator)}
	for _, n := range names {
		args = append(args, "./sandbox/wasm/testdata/"+n)
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build guests: %v\n%s", err, out)
	}
	out := map[string][]byte{}
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		if out[n], err = wasm.DeclareFields(b, []string{"district"}); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// Every hostile guest is contained: the job fails with the platform's
// reason, the failure is audited, no result is left, and the platform runs
// the next job.
func TestWasmAdversarialJobs(t *testing.T) {
	if testing.Short() {
		t.Skip("builds guests and waits for limits")
	}
	defer func(g time.Duration) { wasmjob.KillGrace = g }(wasmjob.KillGrace)
	wasmjob.KillGrace = 3 * time.Second
	p := newPlatform(t)
	p.svc = New(p.db, p.quarantine(), testSecret, p.catalog, p.dir, tightLimits{p.policy}, p.log)
	p.svc.SetClock(func() time.Time { return testNow })
	p.start(t)
	guests := hostileGuests(t, "loop", "membomb", "bigout", "panicky", "trapmid", "escape")
	p.addReviewers(t, "check")
	want := map[string]string{
		"loop":    "time limit",
		"membomb": "memory",
		"bigout":  "output limit",
		"panicky": "exited with code",
		"trapmid": "exited with code",
		"escape":  "not a valid Arrow IPC stream",
	}
	for name, module := range guests {
		t.Run(name, func(t *testing.T) {
			j, err := p.submitWasm(t, "acme", module)
			if err != nil {
				t.Fatal(err)
			}
			j = p.wait(t, p.principal(t, "acme"), j.ID)
			if j.State != StateFailed || !strings.Contains(j.Error, want[name]) {
				t.Fatalf("state %s error %q, want failed with %q", j.State, j.Error, want[name])
			}
			if _, err := os.Stat(p.svc.resultPath(j.ID)); !os.IsNotExist(err) {
				t.Fatal("a result was left in quarantine")
			}
			var audited bool
			for _, e := range p.jobEntries(t, j.ID) {
				raw, _ := json.Marshal(e.Data)
				if e.Kind == "job.failed" && strings.Contains(string(raw), want[name]) {
					audited = true
				}
			}
			if !audited {
				t.Fatal("the failure and its reason are not in the audit log")
			}
			if strings.Contains(j.Error, "passwd") || strings.Contains(j.Error, "goroutine") {
				t.Fatalf("the submitter sees what the guest wrote: %q", j.Error)
			}
			// What the guest wrote stays in quarantine, for output checkers.
			if name == "panicky" {
				log, err := p.svc.GuestLog(context.Background(), p.principal(t, "check"), j.ID)
				if err != nil || !strings.Contains(string(log), "panic") {
					t.Fatalf("the reviewer reads the guest's log: %v %q", err, log)
				}
				if _, err := p.svc.GuestLog(context.Background(), p.principal(t, "acme"), j.ID); err == nil {
					t.Fatal("the submitter read its guest's log")
				}
			}
		})
	}
	next := p.submit(t, p.principal(t, "acme"), "SELECT district, count(*) AS n FROM people GROUP BY district")
	if next = p.wait(t, p.principal(t, "acme"), next.ID); next.State != StateReleased {
		t.Fatalf("after the hostile guests, an ordinary job: %s %s", next.State, next.Error)
	}
}
