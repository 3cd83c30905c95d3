package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/datasandbox/dsbx/datasets"
	"github.com/datasandbox/dsbx/datasets/synthetic"
	"github.com/datasandbox/dsbx/jobs"
	"github.com/datasandbox/dsbx/operators"
)

// ProgressType is the media type of a streamed import: one JSON object per
// line, {"progress": Step} while it runs and {"result": Imported} or
// {"error": Error} last. Clients ask for it with Accept.
const ProgressType = "application/x-ndjson"

func (s *Server) createDataset(w http.ResponseWriter, r *http.Request, p operators.Principal) {
	var spec datasets.Spec
	if !decode(w, r, &spec) {
		return
	}
	if !p.Has(operators.RoleAdmin) {
		// A provider catalogues its own agency's data only.
		if spec.Agency == "" {
			spec.Agency = p.Organization
		}
		if !p.Owns(spec.Agency) {
			writeErr(w, &operators.ForbiddenError{Msg: fmt.Sprintf("%s speaks for %q and cannot catalogue data of %q", p.Name, p.Organization, spec.Agency)})
			return
		}
	}
	e, err := s.catalog.Create(r.Context(), p.Name, spec)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, e)
}

// seesData reports whether p may see values derived from the data itself
// (column extremes, examples of bad values).
func seesData(p operators.Principal) bool { return p.Has(operators.RoleAdmin) }

func (s *Server) listDatasets(w http.ResponseWriter, r *http.Request, p operators.Principal) {
	list, err := s.catalog.List(r.Context())
	if err != nil {
		writeErr(w, err)
		return
	}
	if !seesData(p) {
		for i := range list {
			list[i] = list[i].Redacted()
		}
	}
	writeJSON(w, http.StatusOK, nonNil(list))
}

func (s *Server) getDataset(w http.ResponseWriter, r *http.Request, p operators.Principal) {
	e, err := s.catalog.Get(r.Context(), r.PathValue("name"))
	if err != nil {
		writeErr(w, err)
		return
	}
	if !seesData(p) {
		e = e.Redacted()
	}
	writeJSON(w, http.StatusOK, e)
}

// importVersion takes the request body as the file of a new version. Query
// parameters: source (the file's name), format, encoding, schema
// (FIELD=TYPE, repeatable) and nullify_violations.
func (s *Server) importVersion(w http.ResponseWriter, r *http.Request, p operators.Principal) {
	q := r.URL.Query()
	src := datasets.Source{Name: q.Get("source"), Format: q.Get("format"), Encoding: q.Get("encoding")}
	if src.Name == "" {
		writeError(w, http.StatusBadRequest, "bad_request", "give the file's name as ?source=NAME (its extension tells the format)")
		return
	}
	for _, kv := range q["schema"] {
		field, typ, ok := strings.Cut(kv, "=")
		if !ok {
			writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("schema %q is not FIELD=TYPE", kv))
			return
		}
		if src.Schema == nil {
			src.Schema = map[string]string{}
		}
		src.Schema[field] = typ
	}
	if v := q.Get("nullify_violations"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", "nullify_violations is not true or false")
			return
		}
		src.NullifyViolations = b
	}
	r.Body = http.MaxBytesReader(w, r.Body, MaxUpload)
	upload, err := s.receive(r.Body, src.Name)
	if err != nil {
		writeErr(w, fmt.Errorf("receive %s: %w", src.Name, err))
		return
	}
	defer os.Remove(upload)

	if !strings.Contains(r.Header.Get("Accept"), ProgressType) {
		got, err := s.catalog.Import(r.Context(), p.Name, r.PathValue("name"), src, upload, nil)
		if err != nil {
			writeErr(w, err)
			return
		}
		writeJSON(w, importStatus(got), got)
		return
	}
	w.Header().Set("Content-Type", ProgressType)
	w.WriteHeader(http.StatusOK)
	stream := &lineWriter{w: w}
	got, err := s.catalog.Import(r.Context(), p.Name, r.PathValue("name"), src, upload, func(st datasets.Step) {
		stream.progress(st)
	})
	if err != nil {
		status, body := errorBody(err)
		stream.write(map[string]any{"error": body, "status": status})
		return
	}
	stream.write(map[string]any{"result": got, "status": importStatus(got)})
}

func importStatus(got datasets.Imported) int {
	if got.Existing {
		return http.StatusOK
	}
	return http.StatusCreated
}

// lineWriter writes JSON lines and flushes each; progress lines about bytes
// go out at most a few times a second.
type lineWriter struct {
	mu    sync.Mutex
	w     http.ResponseWriter
	phase string
	last  time.Time
}

func (l *lineWriter) progress(st datasets.Step) {
	if st.Phase == l.phase && time.Since(l.last) < 200*time.Millisecond && st.Done < st.Total {
		return
	}
	l.phase, l.last = st.Phase, time.Now()
	l.write(map[string]any{"progress": st})
}

func (l *lineWriter) write(v any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	json.NewEncoder(l.w).Encode(v)
	if f, ok := l.w.(http.Flusher); ok {
		f.Flush()
	}
}

// receive stores an uploaded file in the data directory's tmp folder.
func (s *Server) receive(r io.Reader, name string) (string, error) {
	dir := filepath.Join(s.cfg.Data, "tmp")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	f, err := os.CreateTemp(dir, "upload-*"+strings.ToLower(filepath.Ext(name)))
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), f.Close()
}

type reasonBody struct {
	Reason string `json:"reason"`
	Field  string `json:"field,omitempty"`
}

func (s *Server) changeVersion(w http.ResponseWriter, r *http.Request, p operators.Principal) {
	var body reasonBody
	if !decode(w, r, &body) {
		return
	}
	ref := r.PathValue("name") + "@" + r.PathValue("version")
	change := s.catalog.Seal
	if strings.HasSuffix(r.URL.Path, "/destroy") {
		change = s.catalog.Destroy
	}
	v, err := change(r.Context(), p.Name, ref, body.Reason)
	if err != nil {
		writeErr(w, err)
		return
	}
	stopped, err := s.jobs.StopWithdrawn(r.Context(), p.Name, r.PathValue("name"))
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"version": v, "stopped_jobs": jobIDs(stopped)})
}

func (s *Server) reinstate(w http.ResponseWriter, r *http.Request, p operators.Principal) {
	var body reasonBody
	if !decode(w, r, &body) {
		return
	}
	e, err := s.catalog.Reinstate(r.Context(), p.Name, r.PathValue("name"), body.Field, body.Reason)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, e)
}

func (s *Server) downloadDataset(w http.ResponseWriter, r *http.Request, p operators.Principal) {
	ref := r.PathValue("name")
	if v := r.URL.Query().Get("version"); v != "" {
		ref += "@" + v
	}
	format := r.URL.Query().Get("format")
	if format == "" {
		format = datasets.FormatParquet
	}
	hw := &attachment{w: w, name: r.PathValue("name") + "." + format, contentType: contentTypes[format]}
	if err := s.catalog.Download(r.Context(), p.Name, ref, format, hw); err != nil {
		if hw.wrote {
			panic(http.ErrAbortHandler)
		}
		writeErr(w, err)
	}
}

var contentTypes = map[string]string{
	jobs.FormatCSV:     "text/csv; charset=utf-8",
	jobs.FormatParquet: "application/vnd.apache.parquet",
	jobs.FormatArrow:   "application/vnd.apache.arrow.stream",
}

// attachment sets the headers of a file download just before its first
// byte, so that errors found before it are still answered as JSON.
type attachment struct {
	w           http.ResponseWriter
	name        string
	contentType string
	wrote       bool
}

func (a *attachment) Write(b []byte) (int, error) {
	if !a.wrote {
		a.wrote = true
		a.w.Header().Set("Content-Type", a.contentType)
		a.w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename=%q`, a.name))
		a.w.WriteHeader(http.StatusOK)
	}
	return a.w.Write(b)
}

func (s *Server) datasetProfile(w http.ResponseWriter, r *http.Request, p operators.Principal) {
	prof, ok := s.profile(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, prof)
}

func (s *Server) profile(w http.ResponseWriter, r *http.Request) (synthetic.Profile, bool) {
	ref := r.PathValue("name")
	if v := r.URL.Query().Get("version"); v != "" {
		ref += "@" + v
	}
	prof, err := s.catalog.Profile(r.Context(), ref)
	if err != nil {
		writeErr(w, err)
		return synthetic.Profile{}, false
	}
	return prof, true
}

// dummyData serves synthetic rows drawn from a version's profile: sandbox
// mode's data, with the real schema and no real row.
func (s *Server) dummyData(w http.ResponseWriter, r *http.Request, p operators.Principal) {
	q := r.URL.Query()
	rows, err := strconv.ParseInt(q.Get("rows"), 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "give the number of rows as ?rows=N")
		return
	}
	var seed uint64
	if v := q.Get("seed"); v != "" {
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", "seed is not a non-negative number")
			return
		}
	}
	format := q.Get("format")
	if format == "" {
		format = datasets.FormatCSV
	}
	prof, ok := s.profile(w, r)
	if !ok {
		return
	}
	hw := &attachment{w: w, name: r.PathValue("name") + ".dummy." + format, contentType: contentTypes[format]}
	if err := synthetic.Generate(r.Context(), prof, rows, seed, format, hw); err != nil {
		if hw.wrote {
			panic(http.ErrAbortHandler)
		}
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
	}
}

func (s *Server) fileObjection(w http.ResponseWriter, r *http.Request, p operators.Principal) {
	var body struct {
		Dataset string `json:"dataset"`
		Field   string `json:"field,omitempty"`
		Reason  string `json:"reason"`
	}
	if !decode(w, r, &body) {
		return
	}
	o, err := s.catalog.Object(r.Context(), p.Name, body.Dataset, body.Field, body.Reason)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, o)
}

func (s *Server) listObjections(w http.ResponseWriter, r *http.Request, p operators.Principal) {
	list, err := s.catalog.Objections(r.Context(), r.URL.Query().Get("dataset"), r.URL.Query().Get("status"))
	if err != nil {
		writeErr(w, err)
		return
	}
	out := []datasets.Objection{}
	for _, o := range list {
		if s.seesObjection(r.Context(), p, o) {
			out = append(out, o)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// seesObjection: an objection is seen by its filer, the admin, regulators
// and the providers of the dataset it is about.
func (s *Server) seesObjection(ctx context.Context, p operators.Principal, o datasets.Objection) bool {
	if o.Filer == p.Name || p.Has(operators.RoleAdmin) || p.Has(operators.RoleRegulator) {
		return true
	}
	return p.Has(operators.RoleProvider) && s.manages(ctx, p, o.Dataset) == nil
}

func (s *Server) getObjection(w http.ResponseWriter, r *http.Request, p operators.Principal) {
	id, ok := pathID(w, r, "objection")
	if !ok {
		return
	}
	o, err := s.catalog.Objection(r.Context(), id)
	if err == nil && !s.seesObjection(r.Context(), p, o) {
		err = fmt.Errorf("objection %d: %w", id, datasets.ErrNotFound)
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, o)
}

// Decision is the answer to an objection decision: the objection, the entry
// as it now stands, the queued jobs it stopped and the results released
// before it that used what was suspended.
type Decision struct {
	Objection datasets.Objection `json:"objection"`
	Dataset   datasets.Entry     `json:"dataset"`
	Stopped   []int64            `json:"stopped_jobs"`
	Released  []int64            `json:"released_jobs"`
}

func (s *Server) decideObjection(w http.ResponseWriter, r *http.Request, p operators.Principal) {
	id, ok := pathID(w, r, "objection")
	if !ok {
		return
	}
	var body struct {
		Uphold *bool  `json:"uphold"`
		Reason string `json:"reason"`
	}
	if !decode(w, r, &body) {
		return
	}
	if body.Uphold == nil {
		writeError(w, http.StatusBadRequest, "bad_request", `say "uphold": true or false`)
		return
	}
	if o, err := s.catalog.Objection(r.Context(), id); err != nil {
		writeErr(w, err)
		return
	} else if err := s.manages(r.Context(), p, o.Dataset); err != nil {
		writeErr(w, err)
		return
	}
	o, e, err := s.catalog.Decide(r.Context(), p.Name, id, *body.Uphold, body.Reason)
	if err != nil {
		writeErr(w, err)
		return
	}
	d := Decision{Objection: o, Dataset: e, Stopped: []int64{}, Released: []int64{}}
	if o.Status == datasets.ObjectionUpheld {
		stopped, err := s.jobs.StopWithdrawn(r.Context(), p.Name, o.Dataset)
		if err != nil {
			writeErr(w, err)
			return
		}
		released, err := s.jobs.Released(r.Context(), o.Dataset, o.Field)
		if err != nil {
			writeErr(w, err)
			return
		}
		d.Stopped, d.Released = jobIDs(stopped), jobIDs(released)
	}
	writeJSON(w, http.StatusOK, d)
}

func (s *Server) releasedBeforeObjection(w http.ResponseWriter, r *http.Request, p operators.Principal) {
	id, ok := pathID(w, r, "objection")
	if !ok {
		return
	}
	o, err := s.catalog.Objection(r.Context(), id)
	if err == nil && p.Has(operators.RoleProvider) && !p.Has(operators.RoleAdmin) && !p.Has(operators.RoleRegulator) {
		err = s.manages(r.Context(), p, o.Dataset)
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	if o.Status != datasets.ObjectionUpheld {
		writeErr(w, &datasets.InputError{Msg: fmt.Sprintf("objection %d is %s; only an upheld objection withdraws released results", id, o.Status)})
		return
	}
	list, err := s.jobs.Released(r.Context(), o.Dataset, o.Field)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, list)
}

func jobIDs(list []jobs.Job) []int64 {
	out := []int64{}
	for _, j := range list {
		out = append(out, j.ID)
	}
	return out
}
