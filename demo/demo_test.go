package demo

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// The demo is the README's first command: it must show the three outcomes
// and a verified log.
func TestDemoShowsEveryOutcome(t *testing.T) {
	var out bytes.Buffer
	if err := Run(context.Background(), &out, Options{Keep: t.TempDir()}); err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out.String())
	}
	for _, want := range []string{"approved → agreement", "→ RELEASED", "would deny: field_not_granted", "→ DENIED", "field_not_granted: field name", "→ HELD", "fetch refused",
		"agreement_unusable: agreement", "is revoked", "→ REJECTED", "matches the record", "job.submitted → job.decided", "was revoked: the operator's licence was withdrawn", "signed checkpoint verified", "altered fails"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}
