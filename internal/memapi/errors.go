package memapi

import "errors"

// ErrInvalidCoord reports a coordinate SFM would refuse: empty, or with a
// part Python's float() cannot read. Get returns it wrapped; the HTTP API
// answers 400.
var ErrInvalidCoord = errors.New("invalid coord")

// SFM's error messages, answered as {"detail": message}, besides those the
// front door gives too (sfmapi.Msg*).
const (
	msgInternal            = "An unexpected error occurred in FractalMemory" // any unexpected failure
	msgMemoryNotFound      = "Memory not found"
	msgBackendUnhealthy    = "System backend is unhealthy"
	msgNeighborsFailed     = "Failed to retrieve neighbors"
	msgGraphLinkFailed     = "Failed to create graph link"
	msgTenantUnavailable   = "memory API unavailable for this tenant" // Options.Fail, a jetbox test aid
	msgRequestEndedInDelay = "request ended during the configured delay"
)
