package streams

import (
	"errors"
	"fmt"
	"strings"

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
	Tenant string // raw tenant id
	Token  string // tenant encoded as one subject token
	Mode   Mode
	Op     Op
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
	return Address{Tenant: tenant, Token: token, Mode: mode, Op: op}, nil
}

// Subject is the outbox subject of the address.
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

func (e *SubjectError) Error() string { return fmt.Sprintf("subject %q: %v", e.Subject, e.Err) }
func (e *SubjectError) Unwrap() []error {
	return []error{ErrBadSubject, e.Err}
}

// ParseSubject decodes memory.<token>.<mode>.<op>.
func ParseSubject(subject string) (Address, error) {
	parts := strings.Split(subject, ".")
	if len(parts) != 4 || parts[0] != SubjectPrefix {
		return Address{}, &SubjectError{Subject: subject, Err: errors.New("want memory.<tenant>.<mode>.<op>")}
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
	return Address{Tenant: tenant, Token: parts[1], Mode: mode, Op: op}, nil
}

// DLQSubjectFor maps any outbox subject, valid or not, to its dead-letter
// subject by swapping the first token.
func DLQSubjectFor(subject string) string {
	return DLQSubjectPrefix + strings.TrimPrefix(subject, SubjectPrefix)
}

// ModeFilter is the subject filter of one mode's consumer group.
func ModeFilter(mode Mode) string { return SubjectPrefix + ".*." + string(mode) + ".>" }

// TenantDLQFilter selects one tenant's dead letters.
func TenantDLQFilter(tenant string) (string, error) {
	token, err := tenancy.Encode(tenant)
	if err != nil {
		return "", err
	}
	return DLQSubjectPrefix + "." + token + ".>", nil
}
