package client

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"github.com/datasandbox/dsbx/datasets"
	"github.com/datasandbox/dsbx/datasets/synthetic"
	"github.com/datasandbox/dsbx/jobs"
)

// CreateDataset adds a catalog entry.
func (c *Client) CreateDataset(ctx context.Context, spec datasets.Spec) (datasets.Entry, error) {
	var e datasets.Entry
	_, err := c.call(ctx, http.MethodPost, "/v1/datasets", spec, &e)
	return e, err
}

// ImportVersion uploads the file at path as a new version of dataset name.
// src.Name defaults to the file's base name. progress, if not nil, hears
// the upload ("upload", bytes sent of the file's size) and then the
// server's phases.
func (c *Client) ImportVersion(ctx context.Context, name string, src datasets.Source, path string, progress func(datasets.Step)) (datasets.Imported, error) {
	f, err := os.Open(path)
	if err != nil {
		return datasets.Imported{}, fmt.Errorf("import %s: %w", name, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return datasets.Imported{}, fmt.Errorf("import %s: %w", name, err)
	}
	if src.Name == "" {
		src.Name = filepath.Base(path)
	}
	if progress == nil {
		progress = func(datasets.Step) {}
	}
	q := url.Values{"source": {src.Name}}
	for k, v := range map[string]string{"format": src.Format, "encoding": src.Encoding} {
		if v != "" {
			q.Set(k, v)
		}
	}
	fields := make([]string, 0, len(src.Schema))
	for f := range src.Schema {
		fields = append(fields, f)
	}
	sort.Strings(fields)
	for _, f := range fields {
		q.Add("schema", f+"="+src.Schema[f])
	}
	if src.NullifyViolations {
		q.Set("nullify_violations", "true")
	}
	body := &uploadReader{r: f, total: st.Size(), progress: progress}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/v1/datasets/"+url.PathEscape(name)+"/versions?"+q.Encode(), body)
	if err != nil {
		return datasets.Imported{}, err
	}
	req.ContentLength = st.Size()
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Accept", "application/x-ndjson")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return datasets.Imported{}, fmt.Errorf("import %s: %w (is 'dsbx serve' running at %s?)", name, err, c.base)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return datasets.Imported{}, apiError(resp)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var line struct {
			Progress *datasets.Step     `json:"progress"`
			Result   *datasets.Imported `json:"result"`
			Error    *APIError          `json:"error"`
			Status   int                `json:"status"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return datasets.Imported{}, fmt.Errorf("import %s: bad progress line: %w", name, err)
		}
		switch {
		case line.Progress != nil:
			progress(*line.Progress)
		case line.Error != nil:
			line.Error.Status = line.Status
			return datasets.Imported{}, line.Error
		case line.Result != nil:
			return *line.Result, nil
		}
	}
	if err := sc.Err(); err != nil {
		return datasets.Imported{}, fmt.Errorf("import %s: %w", name, err)
	}
	return datasets.Imported{}, fmt.Errorf("import %s: the server closed the connection before answering; see its log", name)
}

// uploadReader reports the bytes of an upload as they are sent.
type uploadReader struct {
	r        io.Reader
	n, total int64
	progress func(datasets.Step)
}

func (u *uploadReader) Read(p []byte) (int, error) {
	n, err := u.r.Read(p)
	u.n += int64(n)
	u.progress(datasets.Step{Phase: "upload", Done: u.n, Total: u.total})
	return n, err
}

// Seal seals version (an ID prefix) of dataset name.
func (c *Client) Seal(ctx context.Context, name, version, reason string) (datasets.Version, error) {
	return c.changeVersion(ctx, name, version, "seal", reason)
}

// Destroy destroys version (an ID prefix) of dataset name.
func (c *Client) Destroy(ctx context.Context, name, version, reason string) (datasets.Version, error) {
	return c.changeVersion(ctx, name, version, "destroy", reason)
}

func (c *Client) changeVersion(ctx context.Context, name, version, action, reason string) (datasets.Version, error) {
	var out struct {
		Version datasets.Version `json:"version"`
	}
	_, err := c.call(ctx, http.MethodPost, "/v1/datasets/"+url.PathEscape(name)+"/versions/"+url.PathEscape(version)+"/"+action,
		map[string]string{"reason": reason}, &out)
	return out.Version, err
}

// Reinstate lifts the suspension of dataset name, or of one field of it.
func (c *Client) Reinstate(ctx context.Context, name, field, reason string) (datasets.Entry, error) {
	var e datasets.Entry
	_, err := c.call(ctx, http.MethodPost, "/v1/datasets/"+url.PathEscape(name)+"/reinstate",
		map[string]string{"field": field, "reason": reason}, &e)
	return e, err
}

// Download writes a whole unconditionally open dataset version (ref is NAME
// or NAME@VERSION) to w as parquet or csv.
func (c *Client) Download(ctx context.Context, name, version, format string, w io.Writer) error {
	q := url.Values{"format": {format}}
	if version != "" {
		q.Set("version", version)
	}
	return c.stream(ctx, "/v1/datasets/"+url.PathEscape(name)+"/download?"+q.Encode(), w)
}

// Profile returns the synthetic-data profile of dataset name (version may be
// empty for the latest active one).
func (c *Client) Profile(ctx context.Context, name, version string) (synthetic.Profile, error) {
	var p synthetic.Profile
	path := "/v1/datasets/" + url.PathEscape(name) + "/profile"
	if version != "" {
		path += "?version=" + url.QueryEscape(version)
	}
	_, err := c.call(ctx, http.MethodGet, path, nil, &p)
	return p, err
}

// Dummy writes rows synthetic rows of dataset name (version may be empty
// for the latest active one), drawn by the server from its profile with
// seed, to w as csv or parquet.
func (c *Client) Dummy(ctx context.Context, name, version string, rows int64, seed uint64, format string, w io.Writer) error {
	q := url.Values{"rows": {strconv.FormatInt(rows, 10)}, "seed": {strconv.FormatUint(seed, 10)}, "format": {format}}
	if version != "" {
		q.Set("version", version)
	}
	return c.stream(ctx, "/v1/datasets/"+url.PathEscape(name)+"/dummy?"+q.Encode(), w)
}

func (c *Client) stream(ctx context.Context, path string, w io.Writer) error {
	resp, err := c.request(ctx, http.MethodGet, path, nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return apiError(resp)
	}
	_, err = io.Copy(w, resp.Body)
	return err
}

// Object files an objection against dataset, or one field of it.
func (c *Client) Object(ctx context.Context, dataset, field, reason string) (datasets.Objection, error) {
	var o datasets.Objection
	_, err := c.call(ctx, http.MethodPost, "/v1/objections", map[string]string{"dataset": dataset, "field": field, "reason": reason}, &o)
	return o, err
}

// Objections lists the objections the caller may see, optionally filtered.
func (c *Client) Objections(ctx context.Context, dataset, status string) ([]datasets.Objection, error) {
	var out []datasets.Objection
	q := url.Values{}
	if dataset != "" {
		q.Set("dataset", dataset)
	}
	if status != "" {
		q.Set("status", status)
	}
	_, err := c.call(ctx, http.MethodGet, "/v1/objections?"+q.Encode(), nil, &out)
	return out, err
}

// ObjectionDecision is the server's answer to a decision on an objection.
type ObjectionDecision struct {
	Objection datasets.Objection `json:"objection"`
	Dataset   datasets.Entry     `json:"dataset"`
	Stopped   []int64            `json:"stopped_jobs"`
	Released  []int64            `json:"released_jobs"`
}

// Decide upholds or dismisses objection id.
func (c *Client) Decide(ctx context.Context, id int64, uphold bool, reason string) (ObjectionDecision, error) {
	var d ObjectionDecision
	_, err := c.call(ctx, http.MethodPost, fmt.Sprintf("/v1/objections/%d/decision", id), map[string]any{"uphold": uphold, "reason": reason}, &d)
	return d, err
}

// Released lists the results released before upheld objection id that used
// what it suspended.
func (c *Client) Released(ctx context.Context, id int64) ([]jobs.Job, error) {
	var out []jobs.Job
	_, err := c.call(ctx, http.MethodGet, fmt.Sprintf("/v1/objections/%d/released", id), nil, &out)
	return out, err
}
