package memapi

import "errors"

// ErrInvalidCoord reports a coord that is not three comma-separated finite
// numbers. Get returns it wrapped; the HTTP API answers 422.
var ErrInvalidCoord = errors.New("invalid coord")

// errIdempotencyConflict is the answer to a key reused for a different request.
var errIdempotencyConflict = errors.New("idempotency key reused with a different request")

// errUnauthorized is the answer to a missing or wrong bearer token; it never
// says which, nor echoes what was sent.
var errUnauthorized = errors.New("missing or invalid bearer token")

// errTenantUnavailable is the answer to a data request of a tenant that
// Options.Fail makes fail.
var errTenantUnavailable = errors.New("memory API unavailable for this tenant")
