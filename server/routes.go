package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/datasandbox/dsbx/jobs"
	"github.com/datasandbox/dsbx/operators"
	"github.com/datasandbox/dsbx/server/console"
)

// MaxUpload bounds a dataset upload.
const MaxUpload = 64 << 30

// patternMux is a ServeMux that remembers the patterns registered on it,
// so that the API description can be checked against the real routes.
type patternMux struct {
	*http.ServeMux
	patterns []string
}

func (m *patternMux) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	m.patterns = append(m.patterns, pattern)
	m.ServeMux.HandleFunc(pattern, capBody(bodyLimit(pattern), h))
}

// Routes lists the API's route patterns ("METHOD /path/{param}"), in the
// order they are registered; the catch-all "/" is not among them.
func (s *Server) Routes() []string { return slices.Clone(s.patterns) }

func (s *Server) routes() http.Handler {
	mux := &patternMux{ServeMux: http.NewServeMux()}
	mux.HandleFunc("GET /v1/health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "audit_size": s.log.Size(), "policy_bundle": s.policy.Engine().BundleHash()})
	})
	mux.HandleFunc("GET /v1/openapi.json", s.openAPI)
	mux.HandleFunc("GET /v1/whoami", s.auth(signedIn, func(w http.ResponseWriter, r *http.Request, p operators.Principal) {
		writeJSON(w, http.StatusOK, p)
	}))

	mux.HandleFunc("POST /v1/datasets", s.auth(stewards, s.createDataset))
	mux.HandleFunc("GET /v1/datasets", s.auth(anyone, s.listDatasets))
	mux.HandleFunc("GET /v1/datasets/{name}", s.auth(anyone, s.getDataset))
	mux.HandleFunc("POST /v1/datasets/{name}/versions", s.auth(stewards, s.stewarded(s.importVersion)))
	mux.HandleFunc("POST /v1/datasets/{name}/versions/{version}/seal", s.auth(stewards, s.stewarded(s.changeVersion)))
	mux.HandleFunc("POST /v1/datasets/{name}/versions/{version}/destroy", s.auth(stewards, s.stewarded(s.changeVersion)))
	mux.HandleFunc("POST /v1/datasets/{name}/reinstate", s.auth(stewards, s.stewarded(s.reinstate)))
	mux.HandleFunc("GET /v1/datasets/{name}/download", s.auth(anyone, s.downloadDataset))
	mux.HandleFunc("GET /v1/datasets/{name}/profile", s.auth(anyone, s.datasetProfile))
	mux.HandleFunc("GET /v1/datasets/{name}/dummy", s.auth(anyone, s.dummyData))

	mux.HandleFunc("POST /v1/objections", s.auth(actors, s.fileObjection))
	mux.HandleFunc("GET /v1/objections", s.auth(anyone, s.listObjections))
	mux.HandleFunc("GET /v1/objections/{id}", s.auth(anyone, s.getObjection))
	mux.HandleFunc("POST /v1/objections/{id}/decision", s.auth(stewards, s.decideObjection))
	mux.HandleFunc("GET /v1/objections/{id}/released", s.auth(overseersAndStewards, s.releasedBeforeObjection))

	mux.HandleFunc("POST /v1/principals", s.auth(admins, s.addPrincipal))
	mux.HandleFunc("GET /v1/principals", s.auth(overseers, s.listPrincipals))
	mux.HandleFunc("GET /v1/principals/{name}", s.auth(anyone, s.getPrincipal))
	mux.HandleFunc("PUT /v1/principals/{name}/roles", s.auth(admins, s.setRoles))
	mux.HandleFunc("POST /v1/principals/{name}/disable", s.auth(admins, s.disablePrincipal))
	mux.HandleFunc("POST /v1/principals/{name}/enable", s.auth(admins, s.enablePrincipal))

	mux.HandleFunc("GET /v1/tokens", s.auth(anyone, s.listTokens))
	mux.HandleFunc("POST /v1/tokens", s.auth(anyone, s.issueToken))
	mux.HandleFunc("POST /v1/tokens/{id}/revoke", s.auth(anyone, s.revokeToken))
	mux.HandleFunc("POST /v1/tokens/{id}/rotate", s.auth(anyone, s.rotateToken))

	mux.HandleFunc("POST /v1/applications", s.auth(requesters, s.apply))
	mux.HandleFunc("GET /v1/applications", s.auth(anyone, s.listApplications))
	mux.HandleFunc("GET /v1/applications/{id}", s.auth(anyone, s.getApplication))
	mux.HandleFunc("POST /v1/applications/{id}/approve", s.auth(providers, s.approve))
	mux.HandleFunc("POST /v1/applications/{id}/refuse", s.auth(providers, s.refuse))
	mux.HandleFunc("POST /v1/applications/{id}/withdraw", s.auth(requesters, s.withdraw))

	mux.HandleFunc("GET /v1/agreements", s.auth(anyone, s.listAgreements))
	mux.HandleFunc("GET /v1/agreements/{id}", s.auth(anyone, s.getAgreement))
	mux.HandleFunc("POST /v1/agreements/{id}/suspend", s.auth(stewards, s.changeAgreement(operators.StatusSuspended)))
	mux.HandleFunc("POST /v1/agreements/{id}/resume", s.auth(stewards, s.changeAgreement(operators.StatusActive)))
	mux.HandleFunc("POST /v1/agreements/{id}/revoke", s.auth(stewards, s.changeAgreement(operators.StatusRevoked)))

	mux.HandleFunc("GET /v1/policy", s.auth(anyone, s.currentBundle))
	mux.HandleFunc("GET /v1/policy/bundles/{hash}", s.auth(anyone, s.getBundle))
	mux.HandleFunc("POST /v1/policy/reload", s.auth(admins, s.reloadPolicies))
	mux.HandleFunc("POST /v1/policy/explain", s.auth(requesters, s.explain))

	mux.HandleFunc("POST /v1/jobs", s.auth(requesters, s.submitJob))
	mux.HandleFunc("GET /v1/jobs", s.auth(anyone, s.listJobs))
	mux.HandleFunc("GET /v1/jobs/{id}", s.auth(anyone, s.getJob))
	mux.HandleFunc("GET /v1/jobs/{id}/result", s.auth(requesters, s.fetchResult))
	mux.HandleFunc("POST /v1/jobs/{id}/justification", s.auth(requesters, s.justify))
	mux.HandleFunc("POST /v1/jobs/{id}/review", s.auth(reviewers, s.review))
	mux.HandleFunc("GET /v1/jobs/{id}/candidate", s.auth(reviewers, s.inspectResult))
	mux.HandleFunc("GET /v1/jobs/{id}/guest-log", s.auth(inspectors, s.guestLog))
	mux.HandleFunc("GET /v1/reviews", s.auth(reviewers, s.reviewQueue))
	mux.HandleFunc("GET /v1/privacy/budgets", s.auth(anyone, s.budgets))

	mux.HandleFunc("POST /v1/nodes/events", s.auth(nodes, s.recordNodeEvent))

	mux.HandleFunc("GET /v1/audit/key", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"key": s.log.VerifierKey()})
	})
	mux.HandleFunc("GET /v1/audit/checkpoint", s.auth(anyone, s.checkpoint))
	mux.HandleFunc("GET /v1/audit/entries", s.auth(overseers, s.auditEntries))
	mux.HandleFunc("GET /v1/audit/events", s.auth(overseers, s.auditEvents))
	mux.HandleFunc("GET /v1/audit/alerts", s.auth(overseers, s.auditAlerts))
	mux.HandleFunc("GET /v1/audit/proof/inclusion", s.auth(overseers, s.inclusionProof))
	mux.HandleFunc("GET /v1/audit/proof/consistency", s.auth(anyone, s.consistencyProof))
	mux.HandleFunc("GET /v1/audit/checkpoints", s.auth(anyone, s.publishedCheckpoints))
	mux.HandleFunc("POST /v1/audit/checkpoints", s.auth(overseers, s.publishCheckpoint))
	mux.HandleFunc("POST /v1/audit/replay/{id}", s.auth(overseers, s.replayJob))
	s.patterns = slices.Clone(mux.patterns)
	// The web console (not an API route).
	mux.ServeMux.Handle("GET /console/", http.StripPrefix("/console", console.Handler()))
	mux.ServeMux.Handle("GET /{$}", http.RedirectHandler("/console/", http.StatusFound))
	mux.ServeMux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no_route", fmt.Sprintf("no API route %s %s; see /v1/health", r.Method, r.URL.Path))
	})
	return mux
}

func (s *Server) submitJob(w http.ResponseWriter, r *http.Request, p operators.Principal) {
	var req jobs.Request
	if !decodeUpTo(w, r, &req, jobBody) || !jobSizeOK(w, req) {
		return
	}
	done, ok := s.openJobsGate(w, r, p)
	if !ok {
		return
	}
	j, err := s.jobs.Submit(r.Context(), p, req)
	done()
	if err != nil {
		writeErr(w, err)
		return
	}
	if j.State == jobs.StateDenied {
		// The job is recorded, and the denial is the answer.
		writeJSON(w, http.StatusForbidden, j)
		return
	}
	writeJSON(w, http.StatusAccepted, j)
}

func (s *Server) listJobs(w http.ResponseWriter, r *http.Request, p operators.Principal) {
	list, err := s.jobs.List(r.Context(), p)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, nonNil(list))
}

// pathID reads the {id} path value, answering 400 if it is not a number;
// what names the kind of thing for the message.
func pathID(w http.ResponseWriter, r *http.Request, what string) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 0 {
		writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("%s id %q is not a number", what, r.PathValue("id")))
		return 0, false
	}
	return id, true
}

// MaxWait bounds the long poll of GET /v1/jobs/{id}?wait=.
const MaxWait = time.Minute

func (s *Server) getJob(w http.ResponseWriter, r *http.Request, p operators.Principal) {
	id, ok := pathID(w, r, "job")
	if !ok {
		return
	}
	var wait time.Duration
	if v := r.URL.Query().Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("wait %q is not a duration like 30s", v))
			return
		}
		wait = min(d, MaxWait)
	}
	j, err := s.jobs.Await(r.Context(), p, id, wait)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, j)
}

// Justification is the body of POST /v1/jobs/{id}/justification.
type Justification struct {
	Justification string `json:"justification"`
}

func (s *Server) justify(w http.ResponseWriter, r *http.Request, p operators.Principal) {
	id, ok := pathID(w, r, "job")
	if !ok {
		return
	}
	var body Justification
	if !decode(w, r, &body) {
		return
	}
	j, err := s.jobs.Justify(r.Context(), p, id, body.Justification)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, j)
}

func (s *Server) review(w http.ResponseWriter, r *http.Request, p operators.Principal) {
	id, ok := pathID(w, r, "job")
	if !ok {
		return
	}
	var body jobs.ReviewRequest
	if !decode(w, r, &body) {
		return
	}
	j, err := s.jobs.Review(r.Context(), p, id, body)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, j)
}

func (s *Server) reviewQueue(w http.ResponseWriter, r *http.Request, p operators.Principal) {
	list, err := s.jobs.ReviewQueue(r.Context(), p)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, nonNil(list))
}

func (s *Server) budgets(w http.ResponseWriter, r *http.Request, p operators.Principal) {
	list, err := s.jobs.Budgets(r.Context(), p)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, nonNil(list))
}

// guestLog answers with what a Wasm job's guest wrote to its log.
func (s *Server) guestLog(w http.ResponseWriter, r *http.Request, p operators.Principal) {
	id, ok := pathID(w, r, "job")
	if !ok {
		return
	}
	b, err := s.jobs.GuestLog(r.Context(), p, id)
	if err != nil {
		writeErr(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write(b)
}

func (s *Server) fetchResult(w http.ResponseWriter, r *http.Request, p operators.Principal) {
	s.streamResult(w, r, p, s.jobs.Deliver)
}

func (s *Server) inspectResult(w http.ResponseWriter, r *http.Request, p operators.Principal) {
	s.streamResult(w, r, p, s.jobs.Inspect)
}

// streamResult answers with a job's result file as send writes it.
func (s *Server) streamResult(w http.ResponseWriter, r *http.Request, p operators.Principal,
	send func(ctx context.Context, p operators.Principal, id int64, format string, w io.Writer) error) {
	id, ok := pathID(w, r, "job")
	if !ok {
		return
	}
	format := r.URL.Query().Get("format")
	if format == "" {
		format = jobs.FormatCSV
	}
	// Buffer nothing: headers go out with the first byte, after every
	// check and the download record.
	hw := &attachment{w: w, name: fmt.Sprintf("job-%d.%s", id, format), contentType: contentTypes[format]}
	if err := send(r.Context(), p, id, format, hw); err != nil {
		if hw.wrote {
			// The stream broke mid-way: reset the connection so the client
			// sees an error, never a short file that looks complete.
			panic(http.ErrAbortHandler)
		}
		writeErr(w, err)
	}
}

func (s *Server) checkpoint(w http.ResponseWriter, r *http.Request, p operators.Principal) {
	cp, err := s.log.Checkpoint()
	if err != nil {
		writeErr(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write(cp)
}

// auditEntries streams records [from, to) as JSON lines, exactly as stored.
func (s *Server) auditEntries(w http.ResponseWriter, r *http.Request, p operators.Principal) {
	size := s.log.Size()
	from, to := int64(0), size
	var err error
	if v := r.URL.Query().Get("from"); v != "" {
		if from, err = strconv.ParseInt(v, 10, 64); err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", "from is not a number")
			return
		}
	}
	if v := r.URL.Query().Get("to"); v != "" {
		if to, err = strconv.ParseInt(v, 10, 64); err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", "to is not a number")
			return
		}
	}
	if from < 0 || to > size || from > to {
		writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("range [%d, %d) is outside the log's %d entries", from, to, size))
		return
	}
	recs, err := s.log.Records(from, to)
	if err != nil {
		writeErr(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/jsonl")
	w.Header().Set("X-Audit-Size", strconv.FormatInt(size, 10))
	for _, rec := range recs {
		w.Write(rec)
		w.Write([]byte{'\n'})
	}
}
