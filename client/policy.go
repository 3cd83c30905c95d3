package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/datasandbox/dsbx/jobs"
)

// Bundle is a policy bundle as the server keeps it.
type Bundle struct {
	Hash    string            `json:"hash"`
	InForce bool              `json:"in_force"`
	Files   map[string]string `json:"files"`
}

// Policy returns the bundle with hash ("" for the one in force).
func (c *Client) Policy(ctx context.Context, hash string) (Bundle, error) {
	path := "/v1/policy"
	if hash != "" {
		path = "/v1/policy/bundles/" + url.PathEscape(hash)
	}
	var out Bundle
	_, err := c.call(ctx, http.MethodGet, path, nil, &out)
	return out, err
}

// ReloadPolicy has the server read its policy bundle again; it returns the
// hash in force.
func (c *Client) ReloadPolicy(ctx context.Context) (string, error) {
	var out struct {
		Bundle string `json:"bundle"`
	}
	_, err := c.call(ctx, http.MethodPost, "/v1/policy/reload", nil, &out)
	return out.Bundle, err
}

// Explain returns what admission would decide for req, without submitting it.
func (c *Client) Explain(ctx context.Context, req jobs.Request) (jobs.Explanation, error) {
	var out jobs.Explanation
	_, err := c.call(ctx, http.MethodPost, "/v1/policy/explain", req, &out)
	return out, err
}
