package sfmapi

import "strings"

// Request headers, in canonical form (http.CanonicalHeaderKey), so that a
// client may store them in an http.Header as given and a server's
// Header.Get finds them. SFM reads Authorization and X-Soma-Tenant only;
// SomaBrain sends the others, and jetbox's workers send them on.
const (
	HeaderAuthorization  = "Authorization"     // "Bearer <token>"
	HeaderTenant         = "X-Soma-Tenant"     // the raw tenant id
	HeaderNamespace      = "X-Soma-Namespace"  // SomaBrain's namespace
	HeaderIdempotencyKey = "X-Idempotency-Key" // jetbox's key of the write; SFM ignores it
	HeaderRequestID      = "X-Request-Id"      // X-Request-ID
	HeaderTraceparent    = "Traceparent"       // W3C trace context
	HeaderTracestate     = "Tracestate"
	HeaderContentType    = "Content-Type"
	HeaderRetryAfter     = "Retry-After" // in an answer: when to come back
)

// ContentTypeJSON is the content type of the JSON bodies of requests and
// answers.
const ContentTypeJSON = "application/json"

// Bearer is the Authorization value that carries token; "" for no token,
// so that no header is sent.
func Bearer(token string) string {
	if token == "" {
		return ""
	}
	return "Bearer " + token
}

// BearerToken reads an Authorization value as Django Ninja's HttpBearer
// does, which SFM's data routes use: the scheme "bearer" in any case, the
// token everything after the first space. ok is false when there is no
// such token.
func BearerToken(authorization string) (token string, ok bool) {
	scheme, token, _ := strings.Cut(authorization, " ")
	if !strings.EqualFold(scheme, "bearer") || token == "" {
		return "", false
	}
	return token, true
}
