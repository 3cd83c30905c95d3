package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/datasandbox/dsbx/datasets"
	"github.com/datasandbox/dsbx/operators"
)

// reply writes v with status, or err if it is not nil.
func reply(w http.ResponseWriter, status int, v any, err error) {
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, status, v)
}

func (s *Server) addPrincipal(w http.ResponseWriter, r *http.Request, p operators.Principal) {
	var np operators.NewPrincipal
	if !decode(w, r, &np) {
		return
	}
	added, issued, err := s.directory.Add(r.Context(), p.Name, np)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"principal": added, "token": issued.Token, "credential": issued.Credential})
}

func (s *Server) listPrincipals(w http.ResponseWriter, r *http.Request, p operators.Principal) {
	list, err := s.directory.List(r.Context())
	reply(w, http.StatusOK, list, err)
}

// seesPrincipal: a principal is seen by itself, the admin and regulators.
func seesPrincipal(viewer operators.Principal, name string) bool {
	return viewer.Name == name || viewer.Has(operators.RoleAdmin) || viewer.Has(operators.RoleRegulator)
}

func (s *Server) getPrincipal(w http.ResponseWriter, r *http.Request, p operators.Principal) {
	name := r.PathValue("name")
	if !seesPrincipal(p, name) {
		writeErr(w, fmt.Errorf("principal %q: %w", name, operators.ErrNotFound))
		return
	}
	got, err := s.directory.Get(r.Context(), name)
	reply(w, http.StatusOK, got, err)
}

func (s *Server) setRoles(w http.ResponseWriter, r *http.Request, p operators.Principal) {
	var body struct {
		Roles        []string `json:"roles"`
		Organization string   `json:"organization"`
	}
	if !decode(w, r, &body) {
		return
	}
	got, err := s.directory.SetRoles(r.Context(), p.Name, r.PathValue("name"), body.Roles, body.Organization)
	reply(w, http.StatusOK, got, err)
}

func (s *Server) disablePrincipal(w http.ResponseWriter, r *http.Request, p operators.Principal) {
	var body reasonBody
	if !decode(w, r, &body) {
		return
	}
	got, err := s.directory.Disable(r.Context(), p.Name, r.PathValue("name"), body.Reason)
	if err != nil {
		writeErr(w, err)
		return
	}
	stopped, err := s.jobs.StopHolder(r.Context(), p.Name, got.Name, fmt.Sprintf("%s was disabled: %s", got.Name, got.DisabledReason))
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"principal": got, "stopped_jobs": jobIDs(stopped)})
}

func (s *Server) enablePrincipal(w http.ResponseWriter, r *http.Request, p operators.Principal) {
	got, err := s.directory.Enable(r.Context(), p.Name, r.PathValue("name"))
	reply(w, http.StatusOK, got, err)
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request, p operators.Principal) {
	name := r.URL.Query().Get("principal")
	if name == "" {
		name = p.Name
	}
	if !seesPrincipal(p, name) {
		writeErr(w, fmt.Errorf("principal %q: %w", name, operators.ErrNotFound))
		return
	}
	list, err := s.directory.Credentials(r.Context(), name)
	reply(w, http.StatusOK, list, err)
}

func (s *Server) issueToken(w http.ResponseWriter, r *http.Request, p operators.Principal) {
	var body struct {
		Principal string `json:"principal,omitempty"` // default: the caller
		Label     string `json:"label,omitempty"`
		Expires   string `json:"expires,omitempty"` // 90d, 12h, a date or an RFC 3339 time
	}
	if !decode(w, r, &body) {
		return
	}
	if body.Principal == "" {
		body.Principal = p.Name
	}
	if body.Principal != p.Name && !p.Has(operators.RoleAdmin) {
		writeErr(w, &operators.ForbiddenError{Msg: fmt.Sprintf("%s may issue tokens for itself only; the admin issues them for others", p.Name)})
		return
	}
	expires, err := operators.ParseExpiry(s.now(), body.Expires)
	if err != nil {
		writeErr(w, err)
		return
	}
	issued, err := s.directory.Issue(r.Context(), p.Name, body.Principal, body.Label, expires)
	reply(w, http.StatusCreated, issued, err)
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request, p operators.Principal) {
	c, err := s.directory.Revoke(r.Context(), p, r.PathValue("id"))
	reply(w, http.StatusOK, c, err)
}

func (s *Server) rotateToken(w http.ResponseWriter, r *http.Request, p operators.Principal) {
	var body struct {
		Expires string `json:"expires,omitempty"`
	}
	if !decode(w, r, &body) {
		return
	}
	expires, err := operators.ParseExpiry(s.now(), body.Expires)
	if err != nil {
		writeErr(w, err)
		return
	}
	issued, err := s.directory.Rotate(r.Context(), p, r.PathValue("id"), expires)
	reply(w, http.StatusCreated, issued, err)
}

// catalogView lets the directory check applications against the catalog.
type catalogView struct{ c *datasets.Catalog }

func (v catalogView) Dataset(ctx context.Context, name string) (operators.Dataset, error) {
	e, err := v.c.Get(ctx, name)
	if errors.Is(err, datasets.ErrNotFound) {
		return operators.Dataset{}, &operators.InputError{Msg: fmt.Sprintf("dataset %q does not exist; see 'dsbx dataset list'", name)}
	}
	if err != nil {
		return operators.Dataset{}, err
	}
	d := operators.Dataset{Name: e.Name, Agency: e.Agency, Open: e.Open, Fields: e.FieldNames()}
	for _, ver := range e.Versions {
		d.Versions = append(d.Versions, ver.ID)
	}
	return d, nil
}

func (s *Server) apply(w http.ResponseWriter, r *http.Request, p operators.Principal) {
	var req operators.Request
	if !decode(w, r, &req) {
		return
	}
	a, err := s.directory.Apply(r.Context(), p, req, catalogView{s.catalog})
	reply(w, http.StatusCreated, a, err)
}

func (s *Server) listApplications(w http.ResponseWriter, r *http.Request, p operators.Principal) {
	q := r.URL.Query()
	f := operators.ApplicationFilter{Status: q.Get("status")}
	if v := q.Get("overdue"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", "overdue is not true or false")
			return
		}
		f.Overdue = b
	}
	list, err := s.directory.Applications(r.Context(), p, f)
	reply(w, http.StatusOK, list, err)
}

func (s *Server) getApplication(w http.ResponseWriter, r *http.Request, p operators.Principal) {
	id, ok := pathID(w, r, "application")
	if !ok {
		return
	}
	a, err := s.directory.Application(r.Context(), p, id)
	reply(w, http.StatusOK, a, err)
}

func (s *Server) approve(w http.ResponseWriter, r *http.Request, p operators.Principal) {
	id, ok := pathID(w, r, "application")
	if !ok {
		return
	}
	var ap operators.Approval
	if !decode(w, r, &ap) {
		return
	}
	app, a, err := s.directory.Approve(r.Context(), p, id, ap)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"application": app, "agreement": a})
}

func (s *Server) refuse(w http.ResponseWriter, r *http.Request, p operators.Principal) {
	id, ok := pathID(w, r, "application")
	if !ok {
		return
	}
	var body reasonBody
	if !decode(w, r, &body) {
		return
	}
	app, err := s.directory.Refuse(r.Context(), p, id, body.Reason)
	reply(w, http.StatusOK, app, err)
}

func (s *Server) withdraw(w http.ResponseWriter, r *http.Request, p operators.Principal) {
	id, ok := pathID(w, r, "application")
	if !ok {
		return
	}
	app, err := s.directory.Withdraw(r.Context(), p, id)
	reply(w, http.StatusOK, app, err)
}

func (s *Server) listAgreements(w http.ResponseWriter, r *http.Request, p operators.Principal) {
	q := r.URL.Query()
	list, err := s.directory.Agreements(r.Context(), p, operators.AgreementFilter{Holder: q.Get("holder"), Dataset: q.Get("dataset"), Status: q.Get("status")})
	reply(w, http.StatusOK, list, err)
}

func (s *Server) getAgreement(w http.ResponseWriter, r *http.Request, p operators.Principal) {
	id, ok := pathID(w, r, "agreement")
	if !ok {
		return
	}
	a, err := s.directory.Agreement(r.Context(), id)
	if err == nil && !a.MayRead(p) {
		err = fmt.Errorf("agreement %d: %w", id, operators.ErrNotFound)
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, a)
}

// changeAgreement suspends, resumes or revokes an agreement; suspension and
// revocation stop its queued jobs at once.
func (s *Server) changeAgreement(status string) handler {
	return func(w http.ResponseWriter, r *http.Request, p operators.Principal) {
		id, ok := pathID(w, r, "agreement")
		if !ok {
			return
		}
		var body reasonBody
		if !decode(w, r, &body) {
			return
		}
		a, err := s.directory.SetStatus(r.Context(), p, id, status, body.Reason)
		if err != nil {
			writeErr(w, err)
			return
		}
		stopped := []int64{}
		if status != operators.StatusActive {
			list, err := s.jobs.StopUnderAgreement(r.Context(), p.Name, id, fmt.Sprintf("agreement %d was %s: %s", id, status, body.Reason))
			if err != nil {
				writeErr(w, err)
				return
			}
			stopped = jobIDs(list)
		}
		writeJSON(w, http.StatusOK, map[string]any{"agreement": a, "stopped_jobs": stopped})
	}
}
