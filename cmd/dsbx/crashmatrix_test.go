package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/datasandbox/dsbx/audit"
	"github.com/datasandbox/dsbx/client"
	"github.com/datasandbox/dsbx/failpoint"
	"github.com/datasandbox/dsbx/jobs"
	"github.com/datasandbox/dsbx/server"
)

// served is a `dsbx serve` child process.
type served struct {
	cmd    *exec.Cmd
	base   string
	exited chan struct{} // closed once the process is gone
	err    error         // its exit status, once exited is closed
	admin  *client.Client
	token  string // the admin's
}

// startServe starts `dsbx serve --data data args...` with env added to the
// test's environment. It returns once the server answers, or, if the
// process dies first (a failpoint hit during start-up), once it is gone
// (then base is "").
func startServe(t *testing.T, data string, env []string, args ...string) *served {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s := &served{cmd: exec.Command(os.Args[0]), exited: make(chan struct{})}
	s.cmd.Env = append(append(os.Environ(), env...), mainEnv+"="+strings.Join(append([]string{"serve", "--data", data, "--addr", addr}, args...), "\x1f"))
	s.cmd.Stdout, s.cmd.Stderr = os.Stderr, os.Stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.err = s.cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() { s.cmd.Process.Kill(); <-s.exited })
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-s.exited:
			return s
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			s.base = "http://" + addr
			tok, err := os.ReadFile(filepath.Join(data, server.AdminTokenFile))
			if err != nil {
				t.Fatal(err)
			}
			s.token = strings.TrimSpace(string(tok))
			s.admin = client.New(s.base, s.token)
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("dsbx serve did not listen on %s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// terminate sends SIGTERM and waits for a clean exit within limit.
func (s *served) terminate(t *testing.T, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(limit):
		t.Fatalf("dsbx serve did not exit within %s of SIGTERM", limit)
	}
	if s.err != nil {
		t.Fatalf("dsbx serve exited with %v after SIGTERM, want status 0", s.err)
	}
	return time.Since(start)
}

// crashFixture is a data directory with the register imported and an
// operator holding an agreement on it, ready to be copied per case.
type crashFixture struct {
	data, opToken, csv, fields string
	acked                      [][]byte // the log's records, as served
}

const crashSQL = "SELECT district, count(*) AS n, avg(income) AS mean_income FROM people WHERE district <> '" + rareDistrict + "' GROUP BY district ORDER BY district"

func prepareCrashFixture(t *testing.T) crashFixture {
	t.Helper()
	work := t.TempDir()
	f := crashFixture{data: filepath.Join(work, "data")}
	f.csv, f.fields, _, _ = register(t, work)
	s := startServe(t, f.data, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tok, _ := os.ReadFile(filepath.Join(f.data, server.AdminTokenFile))
	e := &e2e{base: s.base, admin: strings.TrimSpace(string(tok)), ctx: ctx}
	admin := []string{"--token", e.admin}
	e.must(t, append(admin, "dataset", "import", "people", f.csv, "--spec", f.fields, "--progress", "never")...)
	provider := []string{"--token", strings.TrimSpace(e.must(t, append(admin, "principal", "add", "hz-civil", "--role", "provider", "--org", "Civil Affairs Bureau")...))}
	f.opToken = strings.TrimSpace(e.must(t, append(admin, "principal", "add", "acme", "--role", "operator")...))
	until := time.Now().UTC().AddDate(1, 0, 0).Format("2006-01-02")
	out := e.must(t, "--token", f.opToken, "application", "submit", "--dataset", "people:district,income", "--purpose", purpose, "--until", until)
	e.must(t, append(provider, "application", "approve", strings.Fields(out)[1])...)
	f.acked = logState(ctx, t, s.admin)
	s.terminate(t, 20*time.Second)
	return f
}

// copyDir copies the fixture's data directory to a fresh one.
func copyDir(t *testing.T, from string) string {
	t.Helper()
	to := filepath.Join(t.TempDir(), "data")
	if out, err := exec.Command("cp", "-a", from, to).CombinedOutput(); err != nil {
		t.Fatalf("copy data directory: %v\n%s", err, out)
	}
	return to
}

// logState reads the server's log, verifies it, and returns its records.
func logState(ctx context.Context, t *testing.T, admin *client.Client) [][]byte {
	t.Helper()
	records, checkpoint, key, err := fetchLog(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := audit.Verify(records, checkpoint, key); err != nil {
		t.Fatalf("the log does not verify: %v", err)
	}
	return records
}

// workerAlive reports a sandbox worker started by this test binary (the
// servers it runs are this binary) that is still alive.
func workerAlive() string {
	self, _ := os.Executable()
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		exe, err := os.Readlink(filepath.Join(p, "exe"))
		if err != nil || exe != self {
			continue
		}
		env, _ := os.ReadFile(filepath.Join(p, "environ"))
		if bytes.Contains(env, []byte("DSBX_SANDBOX_WORKER=")) {
			stat, _ := os.ReadFile(filepath.Join(p, "stat"))
			if f := strings.Fields(string(stat)); len(f) > 2 && f[2] == "Z" {
				continue // a zombie is dead
			}
			return filepath.Base(p)
		}
	}
	return ""
}

// orphans lists what a restarted server should have cleaned from data:
// uploads of imports (data/tmp/*), sandbox temp directories and files,
// staging directories of imports,
// replay directories, quarantine directories of jobs that are queued,
// running or unknown (their result is gone and will be made again, or
// never will be), and snapshots no version names.
func orphans(t *testing.T, data string, js map[int64]jobs.Job, versions map[string]bool) []string {
	t.Helper()
	var found []string
	filepath.WalkDir(data, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(data, path)
		name := d.Name()
		switch {
		case rel == "tmp": // the uploads directory: its files are orphans
		case filepath.Dir(rel) == "tmp":
			found = append(found, rel)
		case name == "tmp" || name == "tmp-release" || strings.Contains(name, ".tmp") || strings.HasPrefix(name, "replay-"):
			found = append(found, rel)
		case filepath.Dir(rel) == filepath.Join("datasets", ".staging"):
			found = append(found, rel)
		case filepath.Dir(rel) == "quarantine" && d.IsDir():
			if id, err := strconv.ParseInt(name, 10, 64); err == nil {
				if j, ok := js[id]; !ok || j.State == jobs.StateQueued || j.State == jobs.StateRunning {
					found = append(found, rel)
				}
			}
		case strings.HasPrefix(rel, "datasets"+string(filepath.Separator)) && strings.HasSuffix(name, ".parquet"):
			if !versions[filepath.Base(filepath.Dir(rel))+"@"+strings.TrimSuffix(name, ".parquet")] {
				found = append(found, rel)
			}
		}
		return nil
	})
	return found
}

// TestCrashMatrix kills `dsbx serve` with SIGKILL at each failpoint of a
// job's life and of an import, restarts it, and checks that the job ends
// consistently, no acknowledged audit entry is lost, the log verifies, and
// nothing orphaned is left in the data directory.
func TestCrashMatrix(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("SIGKILL of a child process, /proc")
	}
	start := time.Now()
	fx := prepareCrashFixture(t)
	t.Logf("fixture prepared in %s", time.Since(start).Round(time.Millisecond))

	cases := []struct {
		point string
		// want is the job's final state after the restart ("" when no
		// job may exist); import cases drive an import instead.
		want    string
		imports bool
	}{
		{point: failpoint.Admitted, want: ""},
		{point: failpoint.Decided, want: jobs.StateFailed},
		{point: failpoint.Submitted, want: jobs.StateReleased},
		{point: failpoint.Query, want: jobs.StateReleased},
		{point: failpoint.ResultWritten, want: jobs.StateReleased},
		{point: failpoint.Check, want: jobs.StateReleased},
		{point: failpoint.Release, want: jobs.StateReleased},
		{point: failpoint.Released, want: jobs.StateReleased},
		{point: failpoint.AuditWrite, want: ""},
		{point: failpoint.ImportStaged, imports: true},
		{point: failpoint.ImportStore, imports: true},
	}
	for _, c := range cases {
		t.Run(c.point, func(t *testing.T) {
			caseStart := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			data := copyDir(t, fx.data)

			arm := c.point
			if c.point == failpoint.AuditWrite {
				arm += "#2" // the first append records the start; the second is the job's
			}
			s := startServe(t, data, []string{failpoint.Env + "=" + arm})
			if s.base == "" {
				t.Fatalf("the server died at start-up at failpoint %s", c.point)
			}
			// Reading the log appends (the read is recorded), so what was
			// acknowledged is read from the fixture, not from this server.
			acked := fx.acked
			op := client.New(s.base, fx.opToken)

			// Drive the job (or the import) until the failpoint kills the
			// server; what the server answered is acknowledged.
			var submitted *jobs.Job
			var ackedStates []string
			driven := make(chan struct{})
			go func() {
				defer close(driven)
				if c.imports {
					other := filepath.Join(t.TempDir(), "people.csv")
					raw, _ := os.ReadFile(fx.csv)
					os.WriteFile(other, append(raw, []byte("330185198001010003,新居民,上城区,4000\n")...), 0o600)
					e := &e2e{base: s.base, admin: s.token, ctx: ctx}
					e.dsbx(t, "--token", e.admin, "dataset", "import", "people", other, "--progress", "never")
					return
				}
				j, err := op.Submit(ctx, jobs.Request{Dataset: "people", SQL: crashSQL, Purpose: purpose})
				if err != nil {
					return
				}
				submitted = &j
				for {
					j, err := op.Job(ctx, j.ID)
					if err != nil {
						return
					}
					ackedStates = append(ackedStates, j.State)
					time.Sleep(20 * time.Millisecond)
				}
			}()
			select {
			case <-s.exited:
			case <-time.After(60 * time.Second):
				t.Fatalf("failpoint %s was never hit", c.point)
			}
			<-driven
			if ws, ok := s.err.(*exec.ExitError); !ok || ws.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("the server ended with %v, not killed at failpoint %s", s.err, c.point)
			}
			crashed := time.Since(caseStart)
			// The worker must not outlive the server it ran for.
			deadline := time.Now().Add(3 * time.Second)
			for pid := workerAlive(); pid != ""; pid = workerAlive() {
				if time.Now().After(deadline) {
					t.Fatalf("sandbox worker %s outlived the killed server", pid)
				}
				time.Sleep(20 * time.Millisecond)
			}

			s2 := startServe(t, data, nil)
			if s2.base == "" {
				t.Fatalf("the server does not restart after a kill at %s: %v", c.point, s2.err)
			}
			op = client.New(s2.base, fx.opToken)

			// Every job ends in a final state, released only with its entry.
			list, err := op.Jobs(ctx)
			if err != nil {
				t.Fatal(err)
			}
			final := map[int64]jobs.Job{}
			for _, j := range list {
				if j, err = op.Wait(ctx, j.ID); err != nil {
					t.Fatalf("job %d after the restart: %v", j.ID, err)
				}
				final[j.ID] = j
			}
			records := logState(ctx, t, s2.admin)
			checkJobs(t, data, records, final)
			if submitted != nil {
				if _, ok := final[submitted.ID]; !ok {
					t.Errorf("job %d was acknowledged (%v) but is gone after the restart", submitted.ID, ackedStates)
				}
			}
			switch {
			case c.imports:
			case c.want == "" && c.point == failpoint.Admitted:
				if len(final) != 0 {
					t.Errorf("a job cut off before it was recorded exists after the restart: %+v", list)
				}
			case c.want != "":
				if len(final) != 1 {
					t.Fatalf("%d jobs after the restart, want 1", len(final))
				}
				for _, j := range final {
					if j.State != c.want {
						t.Errorf("job %d is %s after the restart (error %q), want %s", j.ID, j.State, j.Error, c.want)
					}
				}
			}

			// No acknowledged entry is lost: the log before the job is
			// unchanged, and the acknowledged submission is in it.
			if len(records) < len(acked) {
				t.Fatalf("the log has %d entries after the restart, %d were acknowledged before the kill", len(records), len(acked))
			}
			for i, rec := range acked {
				if !bytes.Equal(records[i], rec) {
					t.Fatalf("acknowledged entry %d changed across the kill:\n%s\n%s", i, rec, records[i])
				}
			}
			if submitted != nil {
				var e audit.Entry
				if json.Unmarshal(records[submitted.ID], &e); e.Kind != "job.submitted" {
					t.Errorf("acknowledged submission %d is %q in the log after the restart", submitted.ID, e.Kind)
				}
			}

			// The catalog: an interrupted import left nothing, and importing
			// again works.
			entry, err := s2.admin.Dataset(ctx, "people")
			if err != nil {
				t.Fatal(err)
			}
			versions := map[string]bool{}
			for _, v := range entry.Versions {
				versions["people@"+v.ID] = true
			}
			if c.imports && len(entry.Versions) != 1 {
				t.Errorf("%d versions after an interrupted import, want the first one only", len(entry.Versions))
			}
			if o := orphans(t, data, final, versions); len(o) > 0 {
				t.Errorf("orphans left after the restart: %q", o)
			}
			e := &e2e{base: s2.base, admin: s2.token, ctx: ctx} // `dsbx audit verify` through the CLI as well
			if out, err := e.dsbx(t, "--token", e.admin, "audit", "verify"); err != nil {
				t.Errorf("dsbx audit verify after the restart: %v\n%s", err, out)
			}
			s2.terminate(t, 20*time.Second)
			t.Logf("%s: killed after %s; %d jobs %v; %d log entries; case took %s", c.point, crashed.Round(time.Millisecond),
				len(final), states(final), len(records), time.Since(caseStart).Round(time.Millisecond))
		})
	}
	t.Logf("crash matrix took %s", time.Since(start).Round(time.Millisecond))
}

func states(js map[int64]jobs.Job) []string {
	var out []string
	for id, j := range js {
		out = append(out, fmt.Sprintf("%d:%s", id, j.State))
	}
	return out
}

// checkJobs checks every job in js against the log and its files: final,
// failed only with a reason, released exactly once with an entry whose
// hash is the released file's, and never with a release entry otherwise.
func checkJobs(t *testing.T, data string, records [][]byte, js map[int64]jobs.Job) {
	t.Helper()
	releases := map[string][]audit.Entry{}
	for _, rec := range records {
		var e audit.Entry
		if err := json.Unmarshal(rec, &e); err != nil {
			t.Fatal(err)
		}
		if e.Kind == "result.released" {
			releases[e.Subject] = append(releases[e.Subject], e)
		}
	}
	for id, j := range js {
		rels := releases[fmt.Sprintf("job/%d", id)]
		switch {
		case !jobs.Final(j.State):
			t.Errorf("job %d is still %s after the restart", id, j.State)
		case j.State == jobs.StateFailed && j.Error == "":
			t.Errorf("job %d failed without a reason", id)
		case j.State != jobs.StateReleased && len(rels) > 0:
			t.Errorf("job %d is %s but the log records %d releases of it", id, j.State, len(rels))
		case j.State == jobs.StateReleased:
			if len(rels) != 1 {
				t.Errorf("job %d is released and the log records %d releases of it, want 1", id, len(rels))
				continue
			}
			var ev struct{ SHA256 string }
			json.Unmarshal(rels[0].Data, &ev)
			if j.Result == nil || j.Result.Released == nil || j.Result.ReleaseSeq != rels[0].Seq || ev.SHA256 != j.Result.Released.SHA256 {
				t.Errorf("job %d is released but its record does not match release entry %d: %+v", id, rels[0].Seq, j.Result)
				continue
			}
			raw, err := os.ReadFile(filepath.Join(data, "quarantine", fmt.Sprint(id), j.Result.Released.Name))
			sum := sha256.Sum256(raw)
			if err != nil || hex.EncodeToString(sum[:]) != ev.SHA256 {
				t.Errorf("job %d: released file %v does not have the hash its release entry records", id, err)
			}
		}
	}
	if len(js) == 0 && len(releases) > 0 {
		t.Errorf("no job, yet the log records releases: %v", releases)
	}
}

// TestSIGTERMDrains: on SIGTERM `dsbx serve` refuses submissions with 503
// shutting_down, lets the running job finish within --grace (or, with a
// tiny grace, cuts it off to be queued again at the next start), flushes the
// log and exits 0.
func TestSIGTERMDrains(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("signals to a child process")
	}
	fx := prepareCrashFixture(t)
	for _, c := range []struct {
		grace    string
		requeued bool // the job is cut off and runs again after the restart
	}{
		{grace: "30s"},
		{grace: "1ms", requeued: true},
	} {
		t.Run("grace="+c.grace, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			data := copyDir(t, fx.data)
			s := startServe(t, data, nil, "--grace", c.grace)
			op := client.New(s.base, fx.opToken)
			j, err := op.Submit(ctx, jobs.Request{Dataset: "people", SQL: crashSQL, Purpose: purpose})
			if err != nil {
				t.Fatal(err)
			}
			for {
				got, err := op.Job(ctx, j.ID)
				if err != nil {
					t.Fatal(err)
				}
				if got.State == jobs.StateRunning {
					break
				}
				if jobs.Final(got.State) {
					t.Fatalf("job %d was %s before it was seen running", j.ID, got.State)
				}
				time.Sleep(5 * time.Millisecond)
			}
			sent := time.Now()
			s.cmd.Process.Signal(syscall.SIGTERM)
			// A submission while draining is refused with 503 shutting_down
			// (one that got in before the signal was handled stays queued).
			refused := false
			for !refused && !c.requeued {
				_, err := op.Submit(ctx, jobs.Request{Dataset: "people", SQL: crashSQL, Purpose: purpose})
				var ae *client.APIError
				switch {
				case errors.As(err, &ae) && ae.Status == 503 && ae.Code == "shutting_down":
					refused = true
				case err != nil:
					t.Fatalf("submission while draining: %v, want 503 shutting_down", err)
				}
			}
			select {
			case <-s.exited:
			case <-time.After(15 * time.Second):
				t.Fatalf("dsbx serve did not exit within 15s of SIGTERM (grace %s)", c.grace)
			}
			if s.err != nil {
				t.Fatalf("dsbx serve exited with %v after SIGTERM, want status 0", s.err)
			}
			t.Logf("exited %s after SIGTERM", time.Since(sent).Round(time.Millisecond))

			// The log as the drained server left it: no requeue yet.
			s2 := startServe(t, data, nil)
			op = client.New(s2.base, fx.opToken)
			got, err := op.Wait(ctx, j.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.State != jobs.StateReleased {
				t.Fatalf("job %d is %s (%q) after the drain and restart, want released", j.ID, got.State, got.Error)
			}
			// Every job settles first (one submitted as the signal came stays
			// queued and runs now), then the log is read.
			list, _ := op.Jobs(ctx)
			final := map[int64]jobs.Job{}
			for _, l := range list {
				if l, err = op.Wait(ctx, l.ID); err == nil {
					final[l.ID] = l
				}
			}
			records := logState(ctx, t, s2.admin)
			requeued := 0
			for _, rec := range records {
				var e audit.Entry
				json.Unmarshal(rec, &e)
				if e.Kind == "job.requeued" && e.Subject == fmt.Sprintf("job/%d", j.ID) {
					requeued++
				}
			}
			if c.requeued != (requeued == 1) || requeued > 1 {
				t.Errorf("job %d was requeued %d times; grace %s wants requeued=%v", j.ID, requeued, c.grace, c.requeued)
			}
			checkJobs(t, data, records, final)
			s2.terminate(t, 20*time.Second)
		})
	}
}
