package relay

import "errors"

// Why a row is marked failed. The row's last_error says which, and why;
// test with errors.Is.
var (
	// ErrUnknownTopic: the row's topic is not one jetbox carries
	// (CarriedTopics). Such rows are left pending unless
	// Config.FailUnknown is set.
	ErrUnknownTopic = errors.New("topic not carried by jetbox")
	// ErrUnmappable: the row's payload cannot become a write the workers
	// accept (not an object, a missing or bad coord, a bad tenant, ...).
	ErrUnmappable = errors.New("row cannot be mapped to a jetbox write")
	// ErrTooLarge: a write of the row exceeds the NATS server's max
	// payload, or the outbox refused it as too large.
	ErrTooLarge = errors.New("write too large for the outbox")
)
