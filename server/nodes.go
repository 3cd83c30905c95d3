package server

import (
	"net/http"

	"github.com/datasandbox/dsbx/jobs"
	"github.com/datasandbox/dsbx/operators"
)

// recordNodeEvent answers POST /v1/nodes/events: a job node (dsbx worker)
// records a step of a job it runs. The server holds the one audit log;
// nodes record through it, so the log stays a single sequence however many
// nodes run jobs, and jobs.RecordFor refuses a step of a job that is not
// running under the calling node's lease.
func (s *Server) recordNodeEvent(w http.ResponseWriter, r *http.Request, p operators.Principal) {
	var e jobs.NodeEvent
	if !decode(w, r, &e) {
		return
	}
	entry, err := s.jobs.RecordFor(r.Context(), p.Name, e)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, entry)
}
