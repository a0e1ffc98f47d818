package jspull

import (
	"fmt"
	"strings"
	"time"
)

// Defaults of [Messages]; they are those of nats.go's Messages.
const (
	DefaultMaxMessages = 500
	DefaultExpiry      = 30 * time.Second
)

// retryWait is how long the iterator waits before pulling again after the
// server refused or dropped its requests (leadership change, shutdown, an
// error reported to the caller), so that a missing consumer is not hammered.
const retryWait = 250 * time.Millisecond

// Option adjusts a pull. [Fetch] uses the priority group, the byte bound
// and the API prefix; the other options only shape an [Iterator].
type Option func(*options) error

type options struct {
	maxMessages int
	maxBytes    int
	expiry      time.Duration
	heartbeat   time.Duration
	group       string
	pinned      bool
	apiPrefix   string
	hold        func() (limit, holding int)
	probe       *fetchProbe // tests only
}

// fetchProbe lets a test watch a Fetch: took is told each stored message as
// Fetch takes it, left how many delivered messages it left untaken as it
// ended.
type fetchProbe struct {
	took func(n int)
	left func(n int)
}

func newOptions(opts []Option) (options, error) {
	o := options{maxMessages: DefaultMaxMessages, expiry: DefaultExpiry, apiPrefix: "$JS.API."}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return o, err
		}
	}
	if o.heartbeat == 0 {
		o.heartbeat = o.expiry / 2
	}
	if o.heartbeat > o.expiry/2 {
		return o, fmt.Errorf("%w: Heartbeat %v must be at most half of Expiry %v", ErrInvalidOption, o.heartbeat, o.expiry)
	}
	return o, nil
}

// MaxMessages is how many writes the iterator asks for ahead of the caller:
// it pulls again once fewer than half of them are buffered or on their way.
// Default [DefaultMaxMessages].
func MaxMessages(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("%w: MaxMessages %d must be at least 1", ErrInvalidOption, n)
		}
		o.maxMessages = n
		return nil
	}
}

// MaxBytes bounds what the caller holds: the bytes of the writes buffered in
// the iterator plus those handed out by Next and not yet acked, naked or
// terminated (InProgress keeps a write held). A write's bytes are counted as
// nats-server counts them for a pull request's max_bytes: subject, reply
// subject, stored headers and body. 0, the default, sets no bound.
func MaxBytes(n int) Option {
	return func(o *options) error {
		if n < 0 {
			return fmt.Errorf("%w: MaxBytes %d must not be negative", ErrInvalidOption, n)
		}
		o.maxBytes = n
		return nil
	}
}

// Expiry is how long each pull request lives on the server. Default
// [DefaultExpiry].
func Expiry(d time.Duration) Option {
	return func(o *options) error {
		if d < time.Millisecond {
			return fmt.Errorf("%w: Expiry %v must be at least 1ms", ErrInvalidOption, d)
		}
		o.expiry = d
		return nil
	}
}

// Heartbeat is the idle heartbeat the server sends while a pull request
// waits; with nothing heard for twice as long, the iterator takes its
// requests for lost and pulls again. Default half the expiry; at most half
// the expiry.
func Heartbeat(d time.Duration) Option {
	return func(o *options) error {
		if d < time.Millisecond {
			return fmt.Errorf("%w: Heartbeat %v must be at least 1ms", ErrInvalidOption, d)
		}
		o.heartbeat = d
		return nil
	}
}

// Hold bounds what the caller takes while it cannot use it: bound returns
// a limit and how many messages the caller holds against it (taken and
// not yet got going, by its own count). The iterator pulls only while
// those, the buffered ones and those on their way leave at least half of
// the limit free, and asks for no more than is free. Call
// [Iterator.Poke] when the caller's count falls or its limit rises, so
// that pulling resumes; a Poke while the iterator is not held back costs
// an atomic load.
//
// While held back, an iterator of a pinned group still sends a pull
// request for one message every Expiry, so that the server keeps the pin
// (it unpins a client that sends no request for the consumer's pinned
// TTL, which must be longer than Expiry).
func Hold(bound func() (limit, holding int)) Option {
	return func(o *options) error {
		if bound == nil {
			return fmt.Errorf("%w: Hold needs a bound", ErrInvalidOption)
		}
		o.hold = bound
		return nil
	}
}

// PinnedGroup pulls as a member of a priority group of a consumer with the
// pinned client policy. The iterator keeps the pin id the server gives it
// and sends it with every request.
func PinnedGroup(group string) Option {
	return func(o *options) error {
		o.group, o.pinned = group, true
		return validGroup(group)
	}
}

// PriorityGroup pulls as a member of a priority group of a consumer with
// the overflow or prioritized policy. No pin id is kept or sent: a
// "Nats-Pin-Id" header on a write is the publisher's data.
func PriorityGroup(group string) Option {
	return func(o *options) error {
		o.group, o.pinned = group, false
		return validGroup(group)
	}
}

func validGroup(group string) error {
	if group == "" {
		return fmt.Errorf("%w: priority group must not be empty", ErrInvalidOption)
	}
	return nil
}

// APIPrefix sends pull requests under another JetStream API prefix, as
// nats.go's jetstream.NewWithAPIPrefix does. Default "$JS.API".
func APIPrefix(prefix string) Option {
	return func(o *options) error {
		if prefix == "" || strings.ContainsAny(prefix, " \t\r\n*>") {
			return fmt.Errorf("%w: APIPrefix %q is not a subject prefix", ErrInvalidOption, prefix)
		}
		if !strings.HasSuffix(prefix, ".") {
			prefix += "."
		}
		o.apiPrefix = prefix
		return nil
	}
}

// Domain sends pull requests to a JetStream domain ("$JS.<domain>.API"), as
// nats.go's jetstream.NewWithDomain does.
func Domain(domain string) Option {
	return func(o *options) error {
		if domain == "" || strings.ContainsAny(domain, ". \t\r\n*>") {
			return fmt.Errorf("%w: Domain %q is not a subject token", ErrInvalidOption, domain)
		}
		o.apiPrefix = "$JS." + domain + ".API."
		return nil
	}
}

// nextSubject is where pull requests for a consumer go.
func (o options) nextSubject(stream, consumer string) string {
	return o.apiPrefix + "CONSUMER.MSG.NEXT." + stream + "." + consumer
}
