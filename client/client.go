// Package client is a Go client for the dsbx HTTP API; the CLI and the demo
// use it.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/datasandbox/dsbx/audit"
	"github.com/datasandbox/dsbx/datasets"
	"github.com/datasandbox/dsbx/jobs"
)

// Client talks to one dsbx server as one principal.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// New returns a client for the server at base (for example
// http://127.0.0.1:8686) using token.
func New(base, token string) *Client {
	return &Client{base: strings.TrimRight(base, "/"), token: token, http: &http.Client{}}
}

// APIError is a non-2xx answer from the server.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s (HTTP %d %s)", e.Message, e.Status, e.Code)
}

func (c *Client) request(ctx context.Context, method, path string, body io.Reader, contentType string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w (%s)", method, c.base+path, err, hint(err))
	}
	return resp, nil
}

// apiError decodes the error body of resp.
func apiError(resp *http.Response) error {
	var body struct{ Error APIError }
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err := json.Unmarshal(data, &body); err != nil || body.Error.Message == "" {
		return &APIError{Status: resp.StatusCode, Code: "http", Message: strings.TrimSpace(string(data))}
	}
	body.Error.Status = resp.StatusCode
	return &body.Error
}

// call sends in as JSON (if non-nil) and decodes a 2xx answer into out; the
// statuses in also are decoded into out as well, with err nil.
func (c *Client) call(ctx context.Context, method, path string, in, out any, also ...int) (int, error) {
	var body io.Reader
	ct := ""
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return 0, err
		}
		body, ct = bytes.NewReader(data), "application/json"
	}
	resp, err := c.request(ctx, method, path, body, ct)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	ok := resp.StatusCode/100 == 2
	for _, s := range also {
		ok = ok || resp.StatusCode == s
	}
	if !ok {
		return resp.StatusCode, apiError(resp)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

// Datasets lists the catalog.
func (c *Client) Datasets(ctx context.Context) ([]datasets.Entry, error) {
	var out []datasets.Entry
	_, err := c.call(ctx, http.MethodGet, "/v1/datasets", nil, &out)
	return out, err
}

// Dataset returns one catalog entry with its versions.
func (c *Client) Dataset(ctx context.Context, name string) (datasets.Entry, error) {
	var out datasets.Entry
	_, err := c.call(ctx, http.MethodGet, "/v1/datasets/"+url.PathEscape(name), nil, &out)
	return out, err
}

// Submit submits a job. A job the policy denies comes back in state denied
// with its reasons, and a nil error.
func (c *Client) Submit(ctx context.Context, req jobs.Request) (jobs.Job, error) {
	var out json.RawMessage
	status, err := c.call(ctx, http.MethodPost, "/v1/jobs", req, &out, http.StatusForbidden)
	if err != nil {
		return jobs.Job{}, err
	}
	var probe struct {
		Error *APIError
	}
	if json.Unmarshal(out, &probe) == nil && probe.Error != nil {
		// A 403 about the caller, not a denied job.
		probe.Error.Status = status
		return jobs.Job{}, probe.Error
	}
	var j jobs.Job
	if err := json.Unmarshal(out, &j); err != nil {
		return jobs.Job{}, fmt.Errorf("submit: decode answer: %w", err)
	}
	return j, nil
}

// Job returns one job.
func (c *Client) Job(ctx context.Context, id int64) (jobs.Job, error) {
	var out jobs.Job
	_, err := c.call(ctx, http.MethodGet, fmt.Sprintf("/v1/jobs/%d", id), nil, &out)
	return out, err
}

// Jobs lists the jobs the caller may see.
func (c *Client) Jobs(ctx context.Context) ([]jobs.Job, error) {
	var out []jobs.Job
	_, err := c.call(ctx, http.MethodGet, "/v1/jobs", nil, &out)
	return out, err
}

// Wait polls job id until it reaches a final state or ctx ends.
func (c *Client) Wait(ctx context.Context, id int64) (jobs.Job, error) {
	for {
		// A long poll: the server answers as soon as the job is final, or
		// after 30 s with its state so far.
		var j jobs.Job
		_, err := c.call(ctx, http.MethodGet, fmt.Sprintf("/v1/jobs/%d?wait=30s", id), nil, &j)
		if err != nil || jobs.Final(j.State) {
			if err != nil && ctx.Err() != nil {
				return j, fmt.Errorf("job %d: %w", id, ctx.Err())
			}
			return j, err
		}
		if ctx.Err() != nil {
			return j, fmt.Errorf("job %d still %s: %w", id, j.State, ctx.Err())
		}
	}
}

// Justify attaches a justification for an exception to held job id.
func (c *Client) Justify(ctx context.Context, id int64, text string) (jobs.Job, error) {
	var j jobs.Job
	_, err := c.call(ctx, http.MethodPost, fmt.Sprintf("/v1/jobs/%d/justification", id), map[string]string{"justification": text}, &j)
	return j, err
}

// Review approves or rejects held job id, with a reason.
func (c *Client) Review(ctx context.Context, id int64, req jobs.ReviewRequest) (jobs.Job, error) {
	var j jobs.Job
	_, err := c.call(ctx, http.MethodPost, fmt.Sprintf("/v1/jobs/%d/review", id), req, &j)
	return j, err
}

// ReviewQueue lists the held results the caller may review, oldest first.
func (c *Client) ReviewQueue(ctx context.Context) ([]jobs.Job, error) {
	var list []jobs.Job
	_, err := c.call(ctx, http.MethodGet, "/v1/reviews", nil, &list)
	return list, err
}

// Inspect writes the file held job id would release to w in format, for
// an output checker.
func (c *Client) Inspect(ctx context.Context, id int64, format string, w io.Writer) error {
	return c.stream(ctx, fmt.Sprintf("/v1/jobs/%d/candidate?format=%s", id, url.QueryEscape(format)), w)
}

// GuestLog returns what Wasm job id's guest wrote to its log (output
// checkers, regulators, the admin).
func (c *Client) GuestLog(ctx context.Context, id int64) ([]byte, error) {
	return c.raw(ctx, fmt.Sprintf("/v1/jobs/%d/guest-log", id))
}

// Budgets lists the differential-privacy budgets the caller may see.
func (c *Client) Budgets(ctx context.Context) ([]jobs.Budget, error) {
	var list []jobs.Budget
	_, err := c.call(ctx, http.MethodGet, "/v1/privacy/budgets", nil, &list)
	return list, err
}

// FetchResult writes job id's released result to w in format (csv,
// parquet or arrow).
func (c *Client) FetchResult(ctx context.Context, id int64, format string, w io.Writer) error {
	return c.stream(ctx, fmt.Sprintf("/v1/jobs/%d/result?format=%s", id, url.QueryEscape(format)), w)
}

// AuditEvents returns the audit entries a regulator's filter selects
// (query parameters of GET /v1/audit/events: operator, dataset, kind,
// decision, job, from, to, after, limit), oldest first.
func (c *Client) AuditEvents(ctx context.Context, filter url.Values) ([]audit.Entry, error) {
	var out []audit.Entry
	_, err := c.call(ctx, http.MethodGet, "/v1/audit/events?"+filter.Encode(), nil, &out)
	return out, err
}

// AuditAlerts returns the alerts raised so far, filtered like AuditEvents.
func (c *Client) AuditAlerts(ctx context.Context, filter url.Values) ([]audit.Entry, error) {
	var out []audit.Entry
	_, err := c.call(ctx, http.MethodGet, "/v1/audit/alerts?"+filter.Encode(), nil, &out)
	return out, err
}

// Replay re-runs job id from its record and reports whether its hashes
// match (admin, regulator).
func (c *Client) Replay(ctx context.Context, id int64) (jobs.Replay, error) {
	var out jobs.Replay
	_, err := c.call(ctx, http.MethodPost, fmt.Sprintf("/v1/audit/replay/%d", id), nil, &out)
	return out, err
}

// AuditInclusion returns entry seq with the proof that it is in the tree
// of the first size entries (admin, regulator).
func (c *Client) AuditInclusion(ctx context.Context, seq, size int64) (audit.WireProof, error) {
	var out audit.WireProof
	_, err := c.call(ctx, http.MethodGet, fmt.Sprintf("/v1/audit/proof/inclusion?seq=%d&size=%d", seq, size), nil, &out)
	return out, err
}

// AuditConsistency returns the proof that the log of old entries is a
// prefix of the log of size entries.
func (c *Client) AuditConsistency(ctx context.Context, old, size int64) (audit.WireProof, error) {
	var out audit.WireProof
	_, err := c.call(ctx, http.MethodGet, fmt.Sprintf("/v1/audit/proof/consistency?old=%d&new=%d", old, size), nil, &out)
	return out, err
}

// AuditPublished returns the checkpoints the log published, oldest first.
func (c *Client) AuditPublished(ctx context.Context) ([][]byte, error) {
	var out []string
	if _, err := c.call(ctx, http.MethodGet, "/v1/audit/checkpoints", nil, &out); err != nil {
		return nil, err
	}
	cps := make([][]byte, len(out))
	for i, s := range out {
		cps[i] = []byte(s)
	}
	return cps, nil
}

// AuditKey returns the audit log's verifier key.
func (c *Client) AuditKey(ctx context.Context) (string, error) {
	var out struct{ Key string }
	_, err := c.call(ctx, http.MethodGet, "/v1/audit/key", nil, &out)
	return out.Key, err
}

// AuditCheckpoint returns the current signed checkpoint.
func (c *Client) AuditCheckpoint(ctx context.Context) ([]byte, error) {
	return c.raw(ctx, "/v1/audit/checkpoint")
}

// AuditRecords returns the log's records [0, size) exactly as stored.
func (c *Client) AuditRecords(ctx context.Context, size int64) ([][]byte, error) {
	data, err := c.raw(ctx, fmt.Sprintf("/v1/audit/entries?from=0&to=%d", size))
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for _, line := range bytes.Split(data, []byte{'\n'}) {
		if len(line) > 0 {
			out = append(out, line)
		}
	}
	if int64(len(out)) != size {
		return nil, fmt.Errorf("audit entries: asked for %d, got %d", size, len(out))
	}
	return out, nil
}

func (c *Client) raw(ctx context.Context, path string) ([]byte, error) {
	resp, err := c.request(ctx, http.MethodGet, path, nil, "")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, apiError(resp)
	}
	return io.ReadAll(resp.Body)
}

// IsStatus reports whether err is an API error with HTTP status code.
func IsStatus(err error, code int) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == code
}
