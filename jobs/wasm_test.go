package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/datasandbox/dsbx/sandbox/wasm/wasmtest"
)

// districtTotals is an Arrow IPC stream of (district, total) rows, as a
// guest computing an aggregate would write it.
func districtTotals(t *testing.T, keys []string, totals []int64) []byte {
	t.Helper()
	b, err := wasmtest.IPC([]arrow.Field{
		{Name: "district", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "total", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	}, keys, totals)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const wasmByDistrict = `{"kind":"aggregate","group_by":["district"]}`

func (p *platform) submitWasm(t *testing.T, who string, module []byte) (Job, error) {
	t.Helper()
	return p.svc.Submit(context.Background(), p.principal(t, who), Request{Dataset: "people", Wasm: module, Purpose: testPurpose})
}

// A Wasm aggregate goes through the same admission, checks, release and
// audit as SQL: the host counts the groups, the module's hash and the seed
// are recorded, the module's bytes are kept by hash.
func TestWasmJobReleased(t *testing.T) {
	p := newPlatform(t)
	p.start(t)
	module := wasmtest.Emit(districtTotals(t, []string{"east", "north", "south"}, []int64{1, 2, 3}), `["district","income"]`, wasmByDistrict)
	j, err := p.submitWasm(t, "acme", module)
	if err != nil {
		t.Fatal(err)
	}
	if j.Kind != KindWasm || j.State != StateQueued || j.Analysis.Module == nil || j.Analysis.Module.Output.Kind != "aggregate" {
		t.Fatalf("submitted %+v", j)
	}
	j = p.wait(t, p.principal(t, "acme"), j.ID)
	// The host counts the groups itself, but not what the guest's values
	// carry: an output checker looks at them.
	if j.State != StateHeld || j.Release.Reasons[0].Code != "wasm_values" {
		t.Fatalf("state %s (%s), checks %+v release %+v", j.State, j.Error, j.Checks, j.Release)
	}
	p.addReviewers(t, "check")
	if j, err = p.svc.Review(context.Background(), p.principal(t, "check"), j.ID, ReviewRequest{Approve: true, Reason: "totals by district"}); err != nil || j.State != StateReleased {
		t.Fatalf("approved: %s %v", j.State, err)
	}
	if r, err := p.svc.Replay(context.Background(), p.regulator(t), j.ID); err != nil || !r.ResultMatches || !r.ReleasedMatches {
		t.Fatalf("replay of the Wasm job with its recorded seed: %+v %v", r, err)
	}
	if j.Run == nil || j.Run.Guest == nil || j.Run.Guest.Seed == 0 || j.Run.Rows != 3 {
		t.Fatalf("run report %+v", j.Run)
	}
	kept, err := os.ReadFile(filepath.Join(p.quarantine(), "modules", j.CodeSHA256+".wasm"))
	if err != nil || !bytes.Equal(kept, module) {
		t.Fatalf("module not kept by its hash: %v", err)
	}
	var sawSeed, sawHash bool
	for _, e := range p.jobEntries(t, j.ID) {
		raw, _ := json.Marshal(e.Data)
		if e.Kind == "job.submitted" && strings.Contains(string(raw), j.CodeSHA256) && !strings.Contains(string(raw), `"sql"`) {
			sawHash = true
		}
		if e.Kind == "job.ran" && strings.Contains(string(raw), `"seed":`) {
			sawSeed = true
		}
	}
	if !sawHash || !sawSeed {
		t.Errorf("audit: module hash recorded %v, seed recorded %v", sawHash, sawSeed)
	}
	var out bytes.Buffer
	if err := p.svc.Deliver(context.Background(), p.principal(t, "acme"), j.ID, FormatCSV, &out); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "district,total\neast,1\nnorth,2\nsouth,3\n" {
		t.Errorf("delivered %q", got)
	}
}

// A group the data does not hold (or holds too few of) is held, whatever
// the guest claims.
func TestWasmSmallCellHeld(t *testing.T) {
	p := newPlatform(t)
	p.start(t)
	module := wasmtest.Emit(districtTotals(t, []string{"east", "nowhere"}, []int64{1, 2}), `["district","income"]`, wasmByDistrict)
	j, err := p.submitWasm(t, "acme", module)
	if err != nil {
		t.Fatal(err)
	}
	j = p.wait(t, p.principal(t, "acme"), j.ID)
	if j.State != StateHeld {
		t.Fatalf("state %s, want held; checks %+v", j.State, j.Checks)
	}
}

// Admission sees the declared fields: a module reading a field outside the
// agreement is denied, one reading a field the dataset lacks is refused.
func TestWasmAdmissionUsesDeclaredFields(t *testing.T) {
	p := newPlatform(t)
	j, err := p.submitWasm(t, "acme", wasmtest.Emit(nil, `["district","id_number"]`, ""))
	if err != nil || j.State != StateDenied {
		t.Fatalf("module reading id_number: %+v %v, want denied", j.State, err)
	}
	_, err = p.submitWasm(t, "acme", wasmtest.Emit(nil, `["salary"]`, ""))
	var ie *InputError
	if !errors.As(err, &ie) || ie.Code != "unknown_field" {
		t.Fatalf("module reading salary: %v, want unknown_field", err)
	}
}

func TestWasmSubmitRefusals(t *testing.T) {
	p := newPlatform(t)
	before := p.log.Size()
	for name, c := range map[string]struct {
		req  Request
		code string
	}{
		"malformed module":  {Request{Dataset: "people", Wasm: []byte("\x00asm garbage"), Purpose: testPurpose}, "wasm_malformed"},
		"no fields section": {Request{Dataset: "people", Wasm: wasmtest.Emit(nil, `["district"]`, "")[:0:0], Purpose: testPurpose}, "missing_code"},
		"sql and wasm":      {Request{Dataset: "people", SQL: "SELECT 1", Wasm: wasmtest.Emit(nil, `[]`, ""), Purpose: testPurpose}, "two_codes"},
		"bad output decl":   {Request{Dataset: "people", Wasm: wasmtest.Emit(nil, `["district"]`, `{"kind":"aggregate","group_by":["income"]}`), Purpose: testPurpose}, "wasm_output_malformed"},
	} {
		_, err := p.svc.Submit(context.Background(), p.principal(t, "acme"), c.req)
		var ie *InputError
		if !errors.As(err, &ie) || ie.Code != c.code {
			t.Errorf("%s: %v, want %s", name, err, c.code)
		}
	}
	jobs, _ := p.svc.List(context.Background(), p.principal(t, "acme"))
	if len(jobs) != 0 {
		t.Errorf("refused submissions stored %d jobs", len(jobs))
	}
	refused := 0
	for _, e := range p.entries(t)[before:] {
		if e.Kind == "job.refused" {
			refused++
		}
	}
	if refused != 2 { // the two modules the check refused; malformed requests are not attempts
		t.Errorf("%d job.refused entries, want 2", refused)
	}
}

// A guest that fails tells its submitter the platform's reason only: what
// it wrote before dying stays in quarantine. The platform runs the next job.
func TestWasmGuestFailureContained(t *testing.T) {
	p := newPlatform(t)
	p.start(t)
	secret := "east-income-is-1000"
	j, err := p.submitWasm(t, "acme", wasmtest.Trap([]byte(secret), `["district","income"]`))
	if err != nil {
		t.Fatal(err)
	}
	j = p.wait(t, p.principal(t, "acme"), j.ID)
	if j.State != StateFailed || !strings.Contains(j.Error, "trapped") {
		t.Fatalf("state %s error %q, want failed with the trap named", j.State, j.Error)
	}
	raw, _ := json.Marshal(j)
	if strings.Contains(string(raw), secret) {
		t.Fatalf("the job record carries what the guest wrote: %s", raw)
	}
	if _, err := os.Stat(p.svc.resultPath(j.ID)); !os.IsNotExist(err) {
		t.Fatal("a failed guest left a result")
	}
	failed := false
	for _, e := range p.jobEntries(t, j.ID) {
		if e.Kind == "job.failed" {
			failed = true
		}
	}
	if !failed {
		t.Error("the failure was not audited")
	}
	next := p.submit(t, p.principal(t, "acme"), "SELECT district, count(*) AS n FROM people GROUP BY district")
	if next = p.wait(t, p.principal(t, "acme"), next.ID); next.State != StateReleased {
		t.Fatalf("the next job: %s %s", next.State, next.Error)
	}
}

// A module importing a host function outside the ABI is refused before it
// is stored, and the attempt is audited.
func TestWasmUndocumentedImportRefused(t *testing.T) {
	p := newPlatform(t)
	_, err := p.submitWasm(t, "acme", wasmtest.Import("env", "read_host_file", `["district"]`))
	var ie *InputError
	if !errors.As(err, &ie) || ie.Code != "wasm_forbidden_import" || !strings.Contains(ie.Msg, "read_host_file") {
		t.Fatalf("%v, want wasm_forbidden_import naming the import", err)
	}
	last, _ := p.log.Entry(p.log.Size() - 1)
	if last.Kind != "job.refused" {
		t.Fatalf("last audit entry %s, want job.refused", last.Kind)
	}
}
