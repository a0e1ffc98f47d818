package streams

import (
	"errors"
	"fmt"
	"strings"

	"github.com/jetbox-dev/jetbox/internal/text"
	"github.com/jetbox-dev/jetbox/tenancy"
)

// Mode is how a producer waits for a write, and which consumer group applies it.
type Mode string

// The write modes, in the order the workers serve them when capacity is short.
const (
	ModeSync       Mode = "sync"
	ModeFastAck    Mode = "fast_ack"
	ModeBackground Mode = "background"
)

// Modes lists every mode, highest priority first.
var Modes = []Mode{ModeSync, ModeFastAck, ModeBackground}

// Op is what a write does at the memory API.
type Op string

// The operations of the memory API.
const (
	OpStore  Op = "store"  // POST /memories
	OpDelete Op = "delete" // DELETE /memories/{coord}
	OpLink   Op = "link"   // POST /graph/link
)

// Ops lists every operation.
var Ops = []Op{OpStore, OpDelete, OpLink}

// Subject prefixes of the outbox and of the dead letters.
const (
	SubjectPrefix    = "memory"
	DLQSubjectPrefix = "memory_dlq"
)

// ErrBadSubject is the sentinel every subject parse error wraps.
var ErrBadSubject = errors.New("bad subject")

// ErrUnknownMode and ErrUnknownOp say which part of a write was not understood.
var (
	ErrUnknownMode = errors.New("unknown write mode")
	ErrUnknownOp   = errors.New("unknown op")
)

// ParseMode accepts "sync", "fast_ack" or "background".
func ParseMode(s string) (Mode, error) {
	for _, m := range Modes {
		if string(m) == s {
			return m, nil
		}
	}
	return "", fmt.Errorf("%w %q (allowed: sync, fast_ack, background)", ErrUnknownMode, s)
}

// ParseOp accepts "store", "delete" or "link".
func ParseOp(s string) (Op, error) {
	for _, o := range Ops {
		if string(o) == s {
			return o, nil
		}
	}
	return "", fmt.Errorf("%w %q (allowed: store, delete, link)", ErrUnknownOp, s)
}

// Address is where a write goes: memory.<token>.<mode>.<op>.
type Address struct {
	Tenant    string // raw tenant id
	Token     string // tenant encoded as one subject token
	Mode      Mode
	Op        Op
	Partition int // the outbox partition of a stored subject; -1 for a publish subject
}

// NewAddress validates and encodes the tenant.
func NewAddress(tenant string, mode Mode, op Op) (Address, error) {
	token, err := tenancy.Encode(tenant)
	if err != nil {
		return Address{}, err
	}
	if _, err := ParseMode(string(mode)); err != nil {
		return Address{}, err
	}
	if _, err := ParseOp(string(op)); err != nil {
		return Address{}, err
	}
	return Address{Tenant: tenant, Token: token, Mode: mode, Op: op, Partition: -1}, nil
}

// Subject is the subject a producer publishes the write to. The outbox
// stores it as memory.<mode>.<partition>.<token>.<op> (StoredSubject).
func (a Address) Subject() string {
	return SubjectPrefix + "." + a.Token + "." + string(a.Mode) + "." + string(a.Op)
}

// DLQSubject is the dead-letter subject of the address.
func (a Address) DLQSubject() string {
	return DLQSubjectPrefix + "." + a.Token + "." + string(a.Mode) + "." + string(a.Op)
}

// SubjectError says why a subject is not a valid write address.
type SubjectError struct {
	Subject string
	Err     error
}

// Error clips the subject: a hostile one can be as long as the server's max
// payload, and the dead letter's reason must still name the problem.
func (e *SubjectError) Error() string {
	return fmt.Sprintf("subject %q: %v", text.Clip(e.Subject, 128), e.Err)
}
func (e *SubjectError) Unwrap() []error {
	return []error{ErrBadSubject, e.Err}
}

// ParseSubject decodes a publish subject, memory.<token>.<mode>.<op>, or
// the subject the outbox stored it under, which leads with the mode and
// the partition number: memory.<mode>.<partition>.<token>.<op>.
func ParseSubject(subject string) (Address, error) {
	parts, n := splitTokens(subject)
	partition := -1
	if n == 5 && parts[0] == SubjectPrefix {
		p, ok := parsePartition(parts[2])
		if !ok {
			return Address{}, &SubjectError{Subject: subject, Err: errors.New("the third token of a stored subject is not a partition number")}
		}
		// Back to the publish subject's order.
		partition, n = p, 4
		parts[1], parts[2], parts[3] = parts[3], parts[1], parts[4]
	}
	if n != 4 || parts[0] != SubjectPrefix {
		return Address{}, &SubjectError{Subject: subject, Err: errors.New("want memory.<tenant>.<mode>.<op>, or a stored memory.<mode>.<partition>.<tenant>.<op>")}
	}
	tenant, err := tenancy.Decode(parts[1])
	if err != nil {
		return Address{}, &SubjectError{Subject: subject, Err: err}
	}
	mode, err := ParseMode(parts[2])
	if err != nil {
		return Address{}, &SubjectError{Subject: subject, Err: err}
	}
	op, err := ParseOp(parts[3])
	if err != nil {
		return Address{}, &SubjectError{Subject: subject, Err: err}
	}
	return Address{Tenant: tenant, Token: parts[1], Mode: mode, Op: op, Partition: partition}, nil
}

// splitTokens splits a subject of up to five tokens into tokens without
// allocating; n is the number of tokens, 6 for any more than five.
func splitTokens(subject string) (tokens [5]string, n int) {
	for {
		token, rest, more := strings.Cut(subject, ".")
		if n == len(tokens) {
			return tokens, n + 1
		}
		tokens[n] = token
		n++
		if !more {
			return tokens, n
		}
		subject = rest
	}
}

// PublishSubject is the subject a stored write was published to: a stored
// subject (memory.<mode>.<partition>.<token>.<op>, the third token a
// partition number) in the publish subject's order and without its
// partition. A subject an earlier jetbox stored, with the partition last
// (memory.<token>.<mode>.<op>.<partition>), as dead letters made by it
// name, loses its last token. The two never mix up: in the earlier layout
// the third token is a mode, in this one a number. Any other subject,
// valid or not, is returned as is.
func PublishSubject(subject string) string {
	parts, n := splitTokens(subject)
	if n != 5 || parts[0] != SubjectPrefix {
		return subject
	}
	if _, ok := parsePartition(parts[2]); ok {
		return SubjectPrefix + "." + parts[3] + "." + parts[1] + "." + parts[4]
	}
	if _, ok := parsePartition(parts[4]); ok {
		return subject[:strings.LastIndexByte(subject, '.')]
	}
	return subject
}

// DLQSubjectFor maps any outbox subject, valid or not, to its dead-letter
// subject: the publish subject (PublishSubject) with the first token
// swapped, so a dead letter is filed under the four tokens of the contract
// whatever partition the write was stored in.
func DLQSubjectFor(subject string) string {
	return DLQSubjectPrefix + strings.TrimPrefix(PublishSubject(subject), SubjectPrefix)
}

// StrayToken stands in a dead letter's subject for a wildcard token of the
// stored subject. No tenant encodes to it (Encode writes '~' only before
// two hex digits), so a tenant confined to memory_dlq.<its token>.> never
// sees another's stray write.
const StrayToken = "~"

// DeadLetterSubject is the subject a stored write is dead-lettered under:
// DLQSubjectFor, with every wildcard token ('*' or '>', which a raw client
// can publish) and every token longer than tenancy.MaxTokenLen replaced by
// StrayToken, so the dead letter is stored under a literal subject a
// filter can select, short enough to publish.
func DeadLetterSubject(stored string) string {
	tokens := strings.Split(DLQSubjectFor(stored), ".")
	for i, t := range tokens {
		// A token longer than any tenant's could make the subject pass the
		// server's 4 KiB control line, and the server would close the
		// worker's connection for it.
		if t == "*" || t == ">" || len(t) > tenancy.MaxTokenLen {
			tokens[i] = StrayToken
		}
	}
	return strings.Join(tokens, ".")
}

// OpSubject is one of the outbox's stream subjects: the writes of one
// mode and op, for any tenant. The op token is literal, not a wildcard, so
// a raw client's publish to memory.<tenant>.<mode>.> matches no stream
// subject and is refused (no responders) instead of being stored.
func OpSubject(mode Mode, op Op) string {
	return SubjectPrefix + ".*." + string(mode) + "." + string(op)
}

// ModeSubject selects the writes of one mode as a producer publishes them:
// exactly four tokens. The stream's subjects (OpSubject) have four tokens
// too, so a producer cannot publish a five-token subject and choose its own
// partition.
func ModeSubject(mode Mode) string { return SubjectPrefix + ".*." + string(mode) + ".*" }

// TenantDLQFilter selects one tenant's dead letters.
func TenantDLQFilter(tenant string) (string, error) {
	token, err := tenancy.Encode(tenant)
	if err != nil {
		return "", err
	}
	return DLQSubjectPrefix + "." + token + ".>", nil
}
