package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Event is what a caller appends to the log.
type Event struct {
	Kind      string // what happened, e.g. "job.submitted", "result.released"; required
	Principal string // who caused it; "" for the system itself
	Subject   string // what it is about, e.g. "job/42", "dataset/population"
	Data      any    // details, marshalled with encoding/json; must marshal to a JSON object or null
	// Credential is the ID of the token that authorized the request causing
	// the event; when empty, Append takes it from the context (WithCredential).
	Credential string
}

type credentialKey struct{}

// WithCredential returns a context under which appended events name the
// credential (token ID) that authorized the request.
func WithCredential(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, credentialKey{}, id)
}

// credentialOf returns the credential set by WithCredential, or "".
func credentialOf(ctx context.Context) string {
	id, _ := ctx.Value(credentialKey{}).(string)
	return id
}

// Entry is one record of the log as stored and exported.
type Entry struct {
	Seq       int64     `json:"seq"`                 // position in the log, from 0
	Time      time.Time `json:"time"`                // when it was appended, in UTC
	Prev      string    `json:"prev"`                // standard base64 of the RFC 6962 tree hash of entries [0, Seq); for Seq 0 the empty tree's hash
	Kind      string    `json:"kind"`                // the event's kind
	Principal string    `json:"principal,omitempty"` // who caused it; "" for the system itself
	Subject   string    `json:"subject,omitempty"`   // what it is about
	// Credential is the token ID that authorized the causing request.
	Credential string          `json:"credential,omitempty"`
	Data       json.RawMessage `json:"data,omitempty"` // the event's data, a JSON object, or absent
}

// marshalData encodes an event's data and checks that it is a JSON object or
// null; null comes back as nil so that the entry omits its data field.
func marshalData(v any) (json.RawMessage, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	switch {
	case bytes.Equal(b, []byte("null")):
		return nil, nil
	case len(b) > 0 && b[0] == '{':
		return b, nil
	}
	var kind string
	switch b[0] {
	case '[':
		kind = "array"
	case '"':
		kind = "string"
	case 't', 'f':
		kind = "boolean"
	default:
		kind = "number"
	}
	return nil, fmt.Errorf("data must marshal to a JSON object or null, not a JSON %s", kind)
}

// decodeEntry parses one stored record.
func decodeEntry(rec []byte) (Entry, error) {
	var e Entry
	if err := json.Unmarshal(rec, &e); err != nil {
		return Entry{}, err
	}
	return e, nil
}
