package server

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/datasandbox/dsbx/datasets"
	"github.com/datasandbox/dsbx/jobs"
	"github.com/datasandbox/dsbx/operators"
	"github.com/datasandbox/dsbx/sandbox/wasm"
)

// Error is the body of every non-2xx answer.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]Error{"error": {Code: code, Message: msg}})
}

// writeErr maps the domain packages' errors to HTTP answers.
func writeErr(w http.ResponseWriter, err error) {
	status, body := errorBody(err)
	if sw, ok := w.(*statusWriter); ok && body.Code == "forbidden" {
		sw.forbidden = body.Message // auth records it as access.denied
	}
	writeJSON(w, status, map[string]Error{"error": body})
}

// errorBody maps an error to its HTTP status and body.
func errorBody(err error) (int, Error) {
	var (
		dsInput   *datasets.InputError
		opInput   *operators.InputError
		jobInput  *jobs.InputError
		held      *jobs.NotReleasedError
		withdrawn *jobs.WithdrawnError
		tooBig    *http.MaxBytesError
		forbidden *operators.ForbiddenError
		conflict  *operators.ConflictError
	)
	switch {
	case errors.As(err, &jobInput):
		return http.StatusBadRequest, Error{jobInput.Code, jobInput.Msg}
	case errors.As(err, &dsInput):
		return http.StatusBadRequest, Error{"bad_request", dsInput.Msg}
	case errors.As(err, &opInput):
		return http.StatusUnprocessableEntity, Error{"invalid", opInput.Msg}
	case errors.As(err, &forbidden):
		return http.StatusForbidden, Error{"forbidden", forbidden.Msg}
	case errors.As(err, &conflict):
		return http.StatusConflict, Error{"conflict", conflict.Msg}
	case errors.As(err, &held):
		return http.StatusConflict, Error{"not_released", held.Error()}
	case errors.As(err, &withdrawn):
		return http.StatusConflict, Error{"withdrawn", withdrawn.Error()}
	case errors.As(err, &tooBig):
		return http.StatusRequestEntityTooLarge, Error{"body_too_large", bodyTooLarge(tooBig.Limit)}
	case errors.Is(err, datasets.ErrNotOpen):
		return http.StatusForbidden, Error{"not_open", err.Error()}
	case errors.Is(err, datasets.ErrNotFound), errors.Is(err, operators.ErrNotFound), errors.Is(err, jobs.ErrNotFound):
		return http.StatusNotFound, Error{"not_found", err.Error()}
	case errors.Is(err, jobs.ErrShuttingDown):
		return http.StatusServiceUnavailable, Error{"shutting_down", err.Error()}
	case errors.Is(err, jobs.ErrIntegrity):
		slog.Error("integrity", "err", err)
		return http.StatusInternalServerError, Error{"integrity", err.Error()}
	default:
		slog.Error("request", "err", err)
		return http.StatusInternalServerError, Error{"internal", err.Error()}
	}
}

// decode reads a JSON request body of at most 1 MiB into v, answering 400
// on failure.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	return decodeUpTo(w, r, v, 1<<20)
}

// jobBody bounds a job submission: a Wasm module of the largest size the
// platform runs, base64-encoded, and the rest of the request.
const jobBody = wasm.MaxModuleSize/3*4 + 1<<20

// decodeUpTo reads a JSON request body of at most limit bytes into v,
// answering 413 naming the limit when it is larger, 400 on other failures.
func decodeUpTo(w http.ResponseWriter, r *http.Request, v any, limit int64) bool {
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "body_too_large", bodyTooLarge(limit))
			return false
		}
		writeError(w, http.StatusBadRequest, "bad_request", "request body is not the expected JSON: "+err.Error())
		return false
	}
	return true
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
