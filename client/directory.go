package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/datasandbox/dsbx/operators"
)

// AddPrincipal creates a principal and returns it with its first token.
func (c *Client) AddPrincipal(ctx context.Context, np operators.NewPrincipal) (operators.Principal, operators.Issued, error) {
	var out struct {
		Principal  operators.Principal  `json:"principal"`
		Token      string               `json:"token"`
		Credential operators.Credential `json:"credential"`
	}
	_, err := c.call(ctx, http.MethodPost, "/v1/principals", np, &out)
	return out.Principal, operators.Issued{Credential: out.Credential, Token: out.Token}, err
}

// Principals lists every principal (admin and regulators).
func (c *Client) Principals(ctx context.Context) ([]operators.Principal, error) {
	var out []operators.Principal
	_, err := c.call(ctx, http.MethodGet, "/v1/principals", nil, &out)
	return out, err
}

// Principal returns one principal: the caller itself, or anyone for the
// admin and regulators.
func (c *Client) Principal(ctx context.Context, name string) (operators.Principal, error) {
	var out operators.Principal
	_, err := c.call(ctx, http.MethodGet, "/v1/principals/"+url.PathEscape(name), nil, &out)
	return out, err
}

// SetRoles replaces a principal's roles and organization.
func (c *Client) SetRoles(ctx context.Context, name string, roles []string, organization string) (operators.Principal, error) {
	var out operators.Principal
	_, err := c.call(ctx, http.MethodPut, "/v1/principals/"+url.PathEscape(name)+"/roles",
		map[string]any{"roles": roles, "organization": organization}, &out)
	return out, err
}

// DisablePrincipal disables a principal, revoking its tokens; it returns
// the principal and the IDs of the queued jobs it stopped.
func (c *Client) DisablePrincipal(ctx context.Context, name, reason string) (operators.Principal, []int64, error) {
	var out struct {
		Principal operators.Principal `json:"principal"`
		Stopped   []int64             `json:"stopped_jobs"`
	}
	_, err := c.call(ctx, http.MethodPost, "/v1/principals/"+url.PathEscape(name)+"/disable", map[string]string{"reason": reason}, &out)
	return out.Principal, out.Stopped, err
}

// EnablePrincipal enables a disabled principal; it needs a new token.
func (c *Client) EnablePrincipal(ctx context.Context, name string) (operators.Principal, error) {
	var out operators.Principal
	_, err := c.call(ctx, http.MethodPost, "/v1/principals/"+url.PathEscape(name)+"/enable", nil, &out)
	return out, err
}

// Tokens lists a principal's tokens ("" for the caller's own).
func (c *Client) Tokens(ctx context.Context, principal string) ([]operators.Credential, error) {
	var out []operators.Credential
	_, err := c.call(ctx, http.MethodGet, "/v1/tokens?principal="+url.QueryEscape(principal), nil, &out)
	return out, err
}

// IssueToken issues a new token for principal ("" for the caller); expires
// is "" (never), a duration like 90d or 12h, a date or an RFC 3339 time.
func (c *Client) IssueToken(ctx context.Context, principal, label, expires string) (operators.Issued, error) {
	var out operators.Issued
	_, err := c.call(ctx, http.MethodPost, "/v1/tokens", map[string]string{"principal": principal, "label": label, "expires": expires}, &out)
	return out, err
}

// RevokeToken revokes a token by its ID.
func (c *Client) RevokeToken(ctx context.Context, id string) (operators.Credential, error) {
	var out operators.Credential
	_, err := c.call(ctx, http.MethodPost, "/v1/tokens/"+url.PathEscape(id)+"/revoke", nil, &out)
	return out, err
}

// RotateToken replaces a token with a new one and revokes the old one.
func (c *Client) RotateToken(ctx context.Context, id, expires string) (operators.Issued, error) {
	var out operators.Issued
	_, err := c.call(ctx, http.MethodPost, "/v1/tokens/"+url.PathEscape(id)+"/rotate", map[string]string{"expires": expires}, &out)
	return out, err
}

// Apply submits an application for data.
func (c *Client) Apply(ctx context.Context, r operators.Request) (operators.Application, error) {
	var out operators.Application
	_, err := c.call(ctx, http.MethodPost, "/v1/applications", r, &out)
	return out, err
}

// Applications lists the applications the caller may see, optionally only
// those with status, or only overdue ones.
func (c *Client) Applications(ctx context.Context, status string, overdue bool) ([]operators.Application, error) {
	var out []operators.Application
	q := url.Values{}
	if status != "" {
		q.Set("status", status)
	}
	if overdue {
		q.Set("overdue", "true")
	}
	_, err := c.call(ctx, http.MethodGet, "/v1/applications?"+q.Encode(), nil, &out)
	return out, err
}

// Application returns one application.
func (c *Client) Application(ctx context.Context, id int64) (operators.Application, error) {
	var out operators.Application
	_, err := c.call(ctx, http.MethodGet, fmt.Sprintf("/v1/applications/%d", id), nil, &out)
	return out, err
}

// Approve approves an application and returns it with the new agreement.
func (c *Client) Approve(ctx context.Context, id int64, ap operators.Approval) (operators.Application, operators.Agreement, error) {
	var out struct {
		Application operators.Application `json:"application"`
		Agreement   operators.Agreement   `json:"agreement"`
	}
	_, err := c.call(ctx, http.MethodPost, fmt.Sprintf("/v1/applications/%d/approve", id), ap, &out)
	return out.Application, out.Agreement, err
}

// Refuse refuses an application with a reason.
func (c *Client) Refuse(ctx context.Context, id int64, reason string) (operators.Application, error) {
	var out operators.Application
	_, err := c.call(ctx, http.MethodPost, fmt.Sprintf("/v1/applications/%d/refuse", id), map[string]string{"reason": reason}, &out)
	return out, err
}

// Withdraw withdraws the caller's pending application.
func (c *Client) Withdraw(ctx context.Context, id int64) (operators.Application, error) {
	var out operators.Application
	_, err := c.call(ctx, http.MethodPost, fmt.Sprintf("/v1/applications/%d/withdraw", id), nil, &out)
	return out, err
}

// Agreements lists the agreements the caller may see that match f.
func (c *Client) Agreements(ctx context.Context, f operators.AgreementFilter) ([]operators.Agreement, error) {
	var out []operators.Agreement
	q := url.Values{}
	for k, v := range map[string]string{"holder": f.Holder, "dataset": f.Dataset, "status": f.Status} {
		if v != "" {
			q.Set(k, v)
		}
	}
	_, err := c.call(ctx, http.MethodGet, "/v1/agreements?"+q.Encode(), nil, &out)
	return out, err
}

// Agreement returns one agreement with its history.
func (c *Client) Agreement(ctx context.Context, id int64) (operators.Agreement, error) {
	var out operators.Agreement
	_, err := c.call(ctx, http.MethodGet, fmt.Sprintf("/v1/agreements/%d", id), nil, &out)
	return out, err
}

// ChangeAgreement suspends, resumes or revokes an agreement (action is
// "suspend", "resume" or "revoke"); it returns the agreement and the IDs of
// the queued jobs it stopped.
func (c *Client) ChangeAgreement(ctx context.Context, id int64, action, reason string) (operators.Agreement, []int64, error) {
	var out struct {
		Agreement operators.Agreement `json:"agreement"`
		Stopped   []int64             `json:"stopped_jobs"`
	}
	_, err := c.call(ctx, http.MethodPost, fmt.Sprintf("/v1/agreements/%d/%s", id, url.PathEscape(action)), map[string]string{"reason": reason}, &out)
	return out.Agreement, out.Stopped, err
}

// Whoami returns the principal the client's token belongs to.
func (c *Client) Whoami(ctx context.Context) (operators.Principal, error) {
	var p operators.Principal
	_, err := c.call(ctx, http.MethodGet, "/v1/whoami", nil, &p)
	return p, err
}
