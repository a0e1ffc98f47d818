package sfmapi

// SFM's error answers are {"detail": message}; these messages are the ones
// more than one server of the contract gives.
const (
	MsgUnauthorized       = "Unauthorized"                 // Ninja's answer to a failed bearer check
	MsgMissingAuthHeader  = "Missing Authorization header" // GET /health without a bearer token
	MsgInvalidAPIToken    = "Invalid API token"            // GET /health with a wrong token
	MsgNotFound           = "Not Found"                    // no such route
	MsgMethodNotAllowed   = "Method not allowed"           // a route without the request's method
	MsgCannotParseBody    = "Cannot parse request body"    // a body that is not JSON (400)
	MsgCoordinateEmpty    = "Coordinate cannot be empty"   // a coord with no number (400)
	MsgInvalidCoordPrefix = "Invalid coordinate format: "  // followed by the coord as sent (400)
)
