package checkin

import _ "embed"

// OpenAPI is the protocol's OpenAPI 3.1 document, which the agent listener
// serves at PathOpenAPI.
//
//go:embed openapi.json
var OpenAPI []byte

// PathOpenAPI is where the agent listener serves OpenAPI (no client
// certificate needed).
const PathOpenAPI = "/agent/v1/openapi.json"
