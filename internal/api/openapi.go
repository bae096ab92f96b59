package api

import (
	_ "embed"
	"net/http"

	"github.com/muster-run/muster"
)

// openAPI is the API's OpenAPI 3.1 description. The tests check that it
// lists exactly the routes of routeTable.
//
//go:embed openapi.json
var openAPI []byte

// OpenAPI returns the API's OpenAPI 3.1 document.
func OpenAPI() []byte { return append([]byte(nil), openAPI...) }

func (s *Server) handleOpenAPI(w http.ResponseWriter, _ *http.Request, _ muster.Token) error {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(openAPI)
	return nil
}
