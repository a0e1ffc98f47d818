package streams

import (
	"strings"

	"github.com/jetbox-dev/jetbox/tenancy"
)

// Headers a producer sets on a write.
const (
	HeaderMsgID          = "Nats-Msg-Id"
	HeaderIdempotencyKey = "Soma-Idempotency-Key"
	HeaderTenant         = "Soma-Tenant"
	HeaderNamespace      = "Soma-Namespace"
	HeaderRequestID      = "X-Request-ID"
	HeaderReplyTo        = "Soma-Reply-To"
	HeaderTraceparent    = "traceparent"
	HeaderTracestate     = "tracestate"
)

// Headers a worker sets on a sync outcome published to Soma-Reply-To.
const (
	HeaderOutcome    = "Soma-Outcome"
	HeaderHTTPStatus = "Soma-HTTP-Status"
	HeaderStreamSeq  = "Soma-Stream-Seq"
	HeaderError      = "Soma-Error"
)

// Outcome is what became of a write.
type Outcome string

// Sync outcomes.
const (
	OutcomeApplied  Outcome = "applied"  // the memory API answered 2xx
	OutcomeRejected Outcome = "rejected" // the memory API answered a permanent 4xx; dead-lettered
	OutcomeDead     Outcome = "dead"     // not applicable (undecodable, retries exhausted); dead-lettered
)

// Headers a worker adds to a dead letter. The original headers stay.
const (
	HeaderDLQSubject    = "Soma-Dlq-Subject"
	HeaderDLQStreamSeq  = "Soma-Dlq-Stream-Seq"
	HeaderDLQMsgID      = "Soma-Dlq-Msg-Id"
	HeaderDLQDeliveries = "Soma-Dlq-Deliveries"
	HeaderDLQClass      = "Soma-Dlq-Class"
	HeaderDLQError      = "Soma-Dlq-Error"
	HeaderDLQHTTPStatus = "Soma-Dlq-Http-Status"
	HeaderDLQAnswer     = "Soma-Dlq-Answer"
	HeaderDLQTime       = "Soma-Dlq-Time"
	HeaderDLQGroup      = "Soma-Dlq-Group"
	HeaderDLQShortened  = "Soma-Dlq-Shortened" // headers cut to fit the server's 64 KiB header limit
	HeaderDLQDropped    = "Soma-Dlq-Dropped"   // headers left out for the same reason
)

// DLQClass is why a write was dead-lettered.
type DLQClass string

// Dead-letter classes.
const (
	ClassPermanent DLQClass = "permanent" // the memory API refused it (4xx)
	ClassBadInput  DLQClass = "bad_input" // the message could not be decoded or validated
	ClassExhausted DLQClass = "exhausted" // transient failures used up the retry budget
)

// Bounds on reply subjects (Soma-Reply-To, and a PubAck's through the
// ingest gateway). The worker publishes a sync outcome to one with its own
// connection, and the nats-server closes a connection whose control line
// (subject, reply and sizes) passes 4 KiB: an unbounded reply subject
// would let one write cut the worker off from NATS. 1 KiB leaves room for
// an inbox under the longest tenant token (_INBOX.<384 bytes>.<id>).
const (
	MaxReplyToLen    = 1024
	MaxReplyToTokens = 16
)

// MsgIDTenantToken returns the tenant token a Nats-Msg-Id claims: the part
// before its first ':' when that part is a valid tenant token. The Go
// producer makes every id "<tenant token>:<key>"; the worker refuses a
// write whose id claims a token other than its subject's.
func MsgIDTenantToken(id string) (string, bool) {
	token, _, ok := strings.Cut(id, ":")
	if !ok || len(token) > tenancy.MaxTokenLen {
		return "", false
	}
	if _, err := tenancy.Decode(token); err != nil {
		return "", false
	}
	return token, true
}
