package server

import (
	_ "embed"
	"net/http"
)

// openAPIDocument is the OpenAPI 3 description of the whole HTTP API.
// openapi_test.go checks it against the registered routes, the access
// rules and the Go types it describes.
//
//go:embed openapi.json
var openAPIDocument []byte

// openAPI answers GET /v1/openapi.json: public, like /v1/health.
func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(openAPIDocument)
}
