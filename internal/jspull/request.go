package jspull

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// pullRequest is the body of a $JS.API.CONSUMER.MSG.NEXT request, as
// nats.go's pullRequest encodes it.
type pullRequest struct {
	Expires   time.Duration `json:"expires,omitempty"`
	Batch     int           `json:"batch,omitempty"`
	MaxBytes  int           `json:"max_bytes,omitempty"`
	Heartbeat time.Duration `json:"idle_heartbeat,omitempty"`
	PinID     string        `json:"id,omitempty"`
	Group     string        `json:"group,omitempty"`
}

// publish sends the request; the server delivers to inbox.
func (r pullRequest) publish(nc *nats.Conn, subject, inbox string) error {
	body, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return nc.PublishRequest(subject, inbox, body)
}

// validName checks a stream or consumer name is one subject token.
func validName(what, name string) error {
	if name == "" || strings.ContainsAny(name, ". \t\r\n*>") {
		return fmt.Errorf("%w: %s %q is not a subject token", ErrInvalidOption, what, name)
	}
	return nil
}
