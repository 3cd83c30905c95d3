package server

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/datasandbox/dsbx/audit"
	"github.com/datasandbox/dsbx/audit/alerts"
	"github.com/datasandbox/dsbx/audit/index"
	"github.com/datasandbox/dsbx/operators"
)

// auditEvents answers GET /v1/audit/events: the entries a regulator's
// filter selects, as JSON, oldest first, at most index.MaxLimit at a time
// (X-Audit-Next names the cursor for the next page).
func (s *Server) auditEvents(w http.ResponseWriter, r *http.Request, p operators.Principal) {
	f, err := auditFilter(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	es, err := s.index.Query(r.Context(), f)
	if err != nil {
		writeErr(w, err)
		return
	}
	if n := len(es); n > 0 && (f.Limit == 0 || n == f.Limit || n == index.MaxLimit) {
		w.Header().Set("X-Audit-Next", strconv.FormatInt(es[n-1].Seq, 10))
	}
	writeJSON(w, http.StatusOK, nonNil(es))
}

// auditFilter reads a filter from the query string.
func auditFilter(r *http.Request) (index.Filter, error) {
	q := r.URL.Query()
	f := index.Filter{Operator: q.Get("operator"), Dataset: q.Get("dataset"), Kind: q.Get("kind"), Decision: q.Get("decision")}
	switch f.Decision {
	case "", index.Denied, index.Held, index.Released, index.Rejected, index.Failed, index.Stopped, index.Refused:
	default:
		return f, fmt.Errorf("decision %q is not one of denied, held, released, rejected, failed, stopped, refused", f.Decision)
	}
	var after int64 = -1
	for _, n := range []struct {
		name string
		to   *int64
	}{{"job", &f.Job}, {"after", &after}} {
		if v := q.Get(n.name); v != "" {
			x, err := strconv.ParseInt(v, 10, 64)
			if err != nil || x < 0 {
				return f, fmt.Errorf("%s %q is not a number", n.name, v)
			}
			*n.to = x
		}
	}
	f.Since = after + 1
	if v := q.Get("limit"); v != "" {
		x, err := strconv.Atoi(v)
		if err != nil || x <= 0 || x > index.MaxLimit {
			return f, fmt.Errorf("limit %q is not a number from 1 to %d", v, index.MaxLimit)
		}
		f.Limit = x
	}
	for _, t := range []struct {
		name string
		to   *time.Time
	}{{"from", &f.From}, {"to", &f.To}} {
		if v := q.Get(t.name); v != "" {
			x, err := parseInstant(v)
			if err != nil {
				return f, fmt.Errorf("%s %q is not a date (2006-01-02) or RFC 3339 time", t.name, v)
			}
			*t.to = x
		}
	}
	return f, nil
}

// parseInstant reads an RFC 3339 time or a date (midnight, China Standard
// Time, the platform's zone).
func parseInstant(v string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	return time.ParseInLocation("2006-01-02", v, operators.Zone)
}

// replayJob answers POST /v1/audit/replay/{id}: the job re-run from its
// record, and whether its hashes match.
func (s *Server) replayJob(w http.ResponseWriter, r *http.Request, p operators.Principal) {
	id, ok := pathID(w, r, "job")
	if !ok {
		return
	}
	rep, err := s.jobs.Replay(r.Context(), p, id)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// auditAlerts answers GET /v1/audit/alerts: the alerts raised so far (after
// a scan of what was appended since the last), filtered like events.
func (s *Server) auditAlerts(w http.ResponseWriter, r *http.Request, p operators.Principal) {
	f, err := auditFilter(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	if _, err := s.monitor.Scan(r.Context()); err != nil {
		writeErr(w, err)
		return
	}
	f.Kind = alerts.Kind
	es, err := s.index.Query(r.Context(), f)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, nonNil(es))
}

// queryInt reads query parameter name as a number of at least 0.
func queryInt(r *http.Request, name string) (int64, error) {
	v := r.URL.Query().Get(name)
	x, err := strconv.ParseInt(v, 10, 64)
	if err != nil || x < 0 {
		return 0, fmt.Errorf("%s %q is not a number", name, v)
	}
	return x, nil
}

// inclusionProof answers GET /v1/audit/proof/inclusion?seq=&size=.
func (s *Server) inclusionProof(w http.ResponseWriter, r *http.Request, p operators.Principal) {
	seq, err := queryInt(r, "seq")
	size, err2 := queryInt(r, "size")
	if err = errors.Join(err, err2); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	proof, err := s.log.InclusionProof(seq, size)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	rec, err := s.log.Record(seq)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, audit.WireProof{Seq: seq, Size: size, Record: string(rec), Hashes: audit.EncodeHashes(proof)})
}

// consistencyProof answers GET /v1/audit/proof/consistency?old=&new=.
func (s *Server) consistencyProof(w http.ResponseWriter, r *http.Request, p operators.Principal) {
	old, err := queryInt(r, "old")
	size, err2 := queryInt(r, "new")
	if err = errors.Join(err, err2); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	proof, err := s.log.ConsistencyProof(old, size)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, audit.WireProof{Old: old, Size: size, Hashes: audit.EncodeHashes(proof)})
}

// publishedCheckpoints answers GET /v1/audit/checkpoints: every checkpoint
// the log published, oldest first, each a signed note.
func (s *Server) publishedCheckpoints(w http.ResponseWriter, r *http.Request, p operators.Principal) {
	cps, err := s.log.Published()
	if err != nil {
		writeErr(w, err)
		return
	}
	out := make([]string, len(cps))
	for i, c := range cps {
		out[i] = string(c)
	}
	writeJSON(w, http.StatusOK, out)
}

// publishCheckpoint answers POST /v1/audit/checkpoints: publish one now,
// covering the entry that records who asked.
func (s *Server) publishCheckpoint(w http.ResponseWriter, r *http.Request, p operators.Principal) {
	if _, err := s.log.Append(r.Context(), audit.Event{Kind: "audit.publish_requested", Principal: p.Name, Subject: "audit/checkpoints"}); err != nil {
		writeErr(w, err)
		return
	}
	cp, err := s.log.Publish()
	if err != nil {
		writeErr(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write(cp)
}
