package httpapi

import (
	"context"
	_ "embed"
	"net/http"
)

// openAPI is the API's OpenAPI 3.1 document; TestOpenAPIMatchesRoutes
// keeps its paths and methods those of routes.
//
//go:embed openapi.json
var openAPI []byte

// OpenAPI returns the OpenAPI 3.1 document the server serves.
func OpenAPI() []byte { return append([]byte(nil), openAPI...) }

func serveOpenAPI(_ context.Context, c *call) error {
	c.w.Header().Set("Content-Type", "application/json")
	c.w.Header().Set("Cache-Control", "public, max-age=300")
	c.w.WriteHeader(http.StatusOK)
	_, _ = c.w.Write(openAPI)
	return nil
}
