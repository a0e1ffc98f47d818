package memapi

import "errors"

// ErrInvalidCoord reports a coordinate SFM would refuse: empty, or with a
// part Python's float() cannot read. Get returns it wrapped; the HTTP API
// answers 400.
var ErrInvalidCoord = errors.New("invalid coord")

// SFM's error messages, answered as {"detail": message}.
const (
	msgUnauthorized        = "Unauthorized"                                  // Ninja's answer to a failed bearer check
	msgMissingAuthHeader   = "Missing Authorization header"                  // GET /health without a bearer token
	msgInvalidAPIToken     = "Invalid API token"                             // GET /health with a wrong token
	msgInternal            = "An unexpected error occurred in FractalMemory" // any unexpected failure
	msgCannotParseBody     = "Cannot parse request body"                     // a body that is not JSON
	msgMemoryNotFound      = "Memory not found"
	msgBackendUnhealthy    = "System backend is unhealthy"
	msgNeighborsFailed     = "Failed to retrieve neighbors"
	msgGraphLinkFailed     = "Failed to create graph link"
	msgNotFound            = "Not Found"
	msgMethodNotAllowed    = "Method not allowed"
	msgTenantUnavailable   = "memory API unavailable for this tenant" // Options.Fail, a jetbox test aid
	msgRequestEndedInDelay = "request ended during the configured delay"
)
