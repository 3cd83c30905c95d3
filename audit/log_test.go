package audit

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// treeHashOf recomputes the RFC 6962 tree hash of records from scratch.
func treeHashOf(t *testing.T, records [][]byte) tlog.Hash {
	t.Helper()
	var hashes memHashes
	for i, rec := range records {
		hs, err := tlog.StoredHashes(int64(i), rec, hashes)
		if err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, hs...)
	}
	h, err := tlog.TreeHash(int64(len(records)), hashes)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestAppendReopen(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	appendN(t, l, 0, 5)
	vkey := l.VerifierKey()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l = openLog(t, dir)
	defer l.Close()
	if got := l.Size(); got != 5 {
		t.Fatalf("Size after reopen = %d, want 5", got)
	}
	if l.VerifierKey() != vkey {
		t.Fatalf("verifier key changed across reopen")
	}
	appendN(t, l, 5, 3)
	if got := l.Size(); got != 8 {
		t.Fatalf("Size = %d, want 8", got)
	}

	records, err := l.Records(0, 8)
	if err != nil {
		t.Fatal(err)
	}
	for i := range records {
		e, err := l.Entry(int64(i))
		if err != nil {
			t.Fatal(err)
		}
		if e.Seq != int64(i) {
			t.Errorf("entry %d has Seq %d", i, e.Seq)
		}
		want := base64.StdEncoding.EncodeToString(func() []byte { h := treeHashOf(t, records[:i]); return h[:] }())
		if e.Prev != want {
			t.Errorf("entry %d: Prev = %s, want %s", i, e.Prev, want)
		}
		if e.Time.Location().String() != "UTC" {
			t.Errorf("entry %d: time %v is not UTC", i, e.Time)
		}
	}

	cp, err := l.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseCheckpoint(cp, l.VerifierKey())
	if err != nil {
		t.Fatalf("ParseCheckpoint: %v", err)
	}
	if c.Origin != testOrigin || c.Size != 8 {
		t.Errorf("checkpoint = %q/%d, want %q/8", c.Origin, c.Size, testOrigin)
	}
	if want := treeHashOf(t, records); c.Root != want {
		t.Errorf("checkpoint root = %v, want %v", c.Root, want)
	}
}

func TestFirstOpenCreatesKeysAndDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "audit")
	l := openLog(t, dir)
	defer l.Close()
	for name, mode := range map[string]os.FileMode{".": 0o700, signingKeyFile: 0o600, verifierKeyFile: 0o644} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm(); got != mode {
			t.Errorf("%s mode = %v, want %v", name, got, mode)
		}
	}
	vk, err := os.ReadFile(filepath.Join(dir, verifierKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if string(bytes.TrimSpace(vk)) != l.VerifierKey() {
		t.Errorf("verifier.key = %q, VerifierKey() = %q", vk, l.VerifierKey())
	}
	// The empty log's checkpoint has the empty tree's hash.
	cp, err := l.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseCheckpoint(cp, l.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	empty, _ := tlog.TreeHash(0, memHashes(nil))
	if c.Size != 0 || c.Root != empty {
		t.Errorf("empty checkpoint = %d/%v, want 0/%v", c.Size, c.Root, empty)
	}
}

func TestAppendReturnsStoredEntry(t *testing.T) {
	l := openLog(t, t.TempDir())
	defer l.Close()
	events := []Event{
		{Kind: "job.submitted", Principal: "operator/7", Subject: "job/1", Data: map[string]any{"sql": "SELECT 1 < 2 & 3"}},
		{Kind: "system.started"},
		{Kind: "result.released", Data: json.RawMessage(" { \"hash\" : \"abc\" } ")},
		{Kind: "x", Data: struct {
			A int `json:"a"`
		}{1}},
	}
	for i, ev := range events {
		got, err := l.Append(context.Background(), ev)
		if err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
		stored, err := l.Entry(int64(i))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, stored) {
			t.Errorf("Append returned %+v, Entry(%d) = %+v", got, i, stored)
		}
		rec, err := l.Record(int64(i))
		if err != nil {
			t.Fatal(err)
		}
		if again, _ := json.Marshal(stored); !bytes.Equal(again, rec) {
			t.Errorf("record %d = %s, re-marshalled entry = %s", i, rec, again)
		}
		if got.Kind != ev.Kind || got.Principal != ev.Principal || got.Subject != ev.Subject {
			t.Errorf("entry %d = %+v, does not carry event %+v", i, got, ev)
		}
	}
	if e, _ := l.Entry(1); e.Data != nil {
		t.Errorf("nil data stored as %s, want omitted", e.Data)
	}
	if e, _ := l.Entry(2); string(e.Data) != `{"hash":"abc"}` {
		t.Errorf("raw data stored as %s, want compacted", e.Data)
	}
}

func TestAppendRejectsBadEvent(t *testing.T) {
	l := openLog(t, t.TempDir())
	defer l.Close()
	appendN(t, l, 0, 3)
	ctx := context.Background()
	canceled, cancel := context.WithCancel(ctx)
	cancel()

	bad := []struct {
		name string
		ctx  context.Context
		ev   Event
		want string
	}{
		{"empty kind", ctx, Event{Data: map[string]int{"a": 1}}, "kind is empty"},
		{"array data", ctx, Event{Kind: "k", Data: []int{1, 2}}, "JSON object or null, not a JSON array"},
		{"string data", ctx, Event{Kind: "k", Data: "hello"}, "not a JSON string"},
		{"number data", ctx, Event{Kind: "k", Data: 42}, "not a JSON number"},
		{"bool data", ctx, Event{Kind: "k", Data: true}, "not a JSON boolean"},
		{"raw array", ctx, Event{Kind: "k", Data: json.RawMessage(`[1]`)}, "not a JSON array"},
		{"unmarshalable", ctx, Event{Kind: "k", Data: map[string]any{"c": make(chan int)}}, "unsupported type"},
		{"invalid raw", ctx, Event{Kind: "k", Data: json.RawMessage(`{"a":`)}, "append k"},
		{"canceled context", canceled, Event{Kind: "k"}, "context canceled"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := l.Append(tc.ctx, tc.ev)
			if err == nil {
				t.Fatal("Append succeeded, want error")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "audit: append ") {
				t.Errorf("error = %q, want it to start with \"audit: append \" and contain %q", err, tc.want)
			}
			if got := l.Size(); got != 3 {
				t.Errorf("Size = %d after rejected append, want 3", got)
			}
		})
	}
	appendN(t, l, 3, 1)
	records, cp, vkey, _ := exportLog(t, l)
	if r := mustVerify(t, records, cp, vkey); r.Size != 4 {
		t.Errorf("verified size = %d, want 4", r.Size)
	}
}

func TestConcurrentAppend(t *testing.T) {
	l := openLog(t, t.TempDir())
	defer l.Close()
	const workers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				if _, err := l.Append(context.Background(), Event{
					Kind: "test.concurrent", Subject: "worker", Data: map[string]int{"w": w, "i": i},
				}); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := l.Size(); got != workers*each {
		t.Fatalf("Size = %d, want %d", got, workers*each)
	}
	seen := map[[2]int]bool{}
	for i := range int64(workers * each) {
		e, err := l.Entry(i)
		if err != nil {
			t.Fatal(err)
		}
		if e.Seq != i {
			t.Fatalf("entry at %d has Seq %d", i, e.Seq)
		}
		var d struct{ W, I int }
		if err := json.Unmarshal(e.Data, &d); err != nil {
			t.Fatal(err)
		}
		seen[[2]int{d.W, d.I}] = true
	}
	if len(seen) != workers*each {
		t.Errorf("%d distinct events stored, want %d", len(seen), workers*each)
	}
	records, cp, vkey, _ := exportLog(t, l)
	mustVerify(t, records, cp, vkey)
}

func TestRecordsRange(t *testing.T) {
	l := openLog(t, t.TempDir())
	appendN(t, l, 0, 4)
	for _, r := range [][2]int64{{-1, 2}, {3, 2}, {0, 5}, {4, 5}} {
		if _, err := l.Records(r[0], r[1]); err == nil {
			t.Errorf("Records(%d, %d) succeeded on a log of 4", r[0], r[1])
		}
	}
	if _, err := l.Record(4); err == nil {
		t.Error("Record(4) succeeded on a log of 4")
	}
	if recs, err := l.Records(2, 2); err != nil || len(recs) != 0 {
		t.Errorf("Records(2, 2) = %d records, %v; want 0, nil", len(recs), err)
	}
	recs, err := l.Records(1, 3)
	if err != nil || len(recs) != 2 {
		t.Fatalf("Records(1, 3) = %d records, %v", len(recs), err)
	}
	for i, rec := range recs {
		if one, _ := l.Record(int64(i + 1)); !bytes.Equal(one, rec) {
			t.Errorf("Records(1,3)[%d] = %s, Record(%d) = %s", i, rec, i+1, one)
		}
		if bytes.HasSuffix(rec, []byte("\n")) {
			t.Errorf("record %d ends in a newline", i+1)
		}
	}

	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	if _, err := l.Append(context.Background(), Event{Kind: "k"}); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close = %v, want ErrClosed", err)
	}
	if _, err := l.Checkpoint(); !errors.Is(err, ErrClosed) {
		t.Errorf("Checkpoint after Close = %v, want ErrClosed", err)
	}
}

func TestOpenTwiceIsRefused(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	if _, err := Open(dir, testOrigin); err == nil {
		t.Fatal("second Open of the same directory succeeded")
	}
	l.Close()
	l2 := openLog(t, dir)
	l2.Close()
}

func TestOpenChecksOriginAndKeys(t *testing.T) {
	dir := t.TempDir()
	for _, bad := range []string{"", "has space", "a+b", "two\nlines"} {
		if _, err := Open(dir, bad); err == nil {
			t.Errorf("Open with origin %q succeeded", bad)
		}
	}
	l := openLog(t, dir)
	appendN(t, l, 0, 1)
	l.Close()

	if _, err := Open(dir, "other.example/audit"); err == nil {
		t.Error("reopen with a different origin succeeded")
	}

	// A log with entries but no signing key must not get a fresh key.
	if err := os.Rename(filepath.Join(dir, signingKeyFile), filepath.Join(dir, "saved")); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, testOrigin); err == nil {
		t.Error("Open without signing.key on a non-empty log succeeded")
	}
	if err := os.Rename(filepath.Join(dir, "saved"), filepath.Join(dir, signingKeyFile)); err != nil {
		t.Fatal(err)
	}

	// A verifier key that does not belong to the signing key is refused.
	other := openLog(t, t.TempDir())
	other.Close()
	if err := os.WriteFile(filepath.Join(dir, verifierKeyFile), []byte(other.VerifierKey()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, testOrigin); err == nil {
		t.Error("Open with a mismatched verifier.key succeeded")
	}
}
