package jspull

import (
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

var (
	// ErrIteratorClosed is returned by [Iterator.Next] once the iterator is
	// stopped, or drained and empty.
	ErrIteratorClosed = errors.New("jspull: iterator closed")

	// ErrBadAckSubject is returned by [Msg.Metadata] for a reply subject that
	// is not a well-formed JetStream ack subject. It matches
	// jetstream.ErrNotJSMessage.
	ErrBadAckSubject = fmt.Errorf("%w: malformed ack subject", jetstream.ErrNotJSMessage)

	// ErrInvalidOption is returned for an option value out of range.
	ErrInvalidOption = errors.New("jspull: invalid option")
)

// StatusError is a status the server sent in answer to a pull request that
// the caller has to know about: the consumer is gone, the request was
// refused, a write is larger than the byte bound.
//
// It matches the nats.go sentinel of the same meaning with errors.Is:
// jetstream.ErrConsumerDeleted, jetstream.ErrBadRequest,
// jetstream.ErrMaxBytesExceeded, nats.ErrNoResponders.
type StatusError struct {
	Code        string // "409"
	Description string // "Consumer Deleted"
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("jspull: server status %s %s", e.Code, e.Description)
}

// Is reports whether the status is the one a nats.go sentinel stands for.
func (e *StatusError) Is(target error) bool {
	switch target {
	case jetstream.ErrConsumerDeleted:
		return e.Code == "409" && hasDescription(e.Description, "consumer deleted")
	case jetstream.ErrMaxBytesExceeded:
		return e.Code == "409" && hasDescription(e.Description, "exceeds maxbytes")
	case jetstream.ErrBadRequest:
		return e.Code == "400"
	case nats.ErrNoResponders:
		return e.Code == "503"
	}
	return false
}

func hasDescription(description, want string) bool {
	return strings.Contains(strings.ToLower(description), want)
}
