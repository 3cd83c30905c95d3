package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/datasandbox/dsbx/audit"
	"github.com/datasandbox/dsbx/jobs"
)

// RecordJobStep has the server append e, a step of a job this node runs,
// to its audit log (a node's token only): the server holds the one log.
func (c *Client) RecordJobStep(ctx context.Context, e audit.Event) (audit.Entry, error) {
	ne := jobs.NodeEvent{Kind: e.Kind, Principal: e.Principal, Subject: e.Subject}
	if e.Data != nil {
		data, err := json.Marshal(e.Data)
		if err != nil {
			return audit.Entry{}, fmt.Errorf("record %s: %w", e.Kind, err)
		}
		ne.Data = data
	}
	var entry audit.Entry
	if _, err := c.call(ctx, http.MethodPost, "/v1/nodes/events", ne, &entry); err != nil {
		return audit.Entry{}, fmt.Errorf("record %s about %s: %w", e.Kind, e.Subject, err)
	}
	return entry, nil
}
