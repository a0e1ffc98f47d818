package dlq

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jetbox-dev/jetbox/streams"
)

// Filter selects dead letters. Zero fields select everything; the fields
// given must all match.
type Filter struct {
	Tenant  string             // raw tenant id
	Subject string             // original outbox subject, wildcards allowed (memory.*.sync.store); a stored subject's partition token is ignored
	Mode    streams.Mode       // write mode of the original subject
	Op      streams.Op         // op of the original subject
	Classes []streams.DLQClass // any of these classes
	Seqs    SeqRanges          // dead-letter stream sequences
	Since   time.Time          // dead-lettered at or after
	Until   time.Time          // dead-lettered before
	Limit   int                // at most this many; 0 = no limit
}

// ErrBadFilter says a filter cannot select anything meaningful.
var ErrBadFilter = errors.New("bad dead-letter filter")

// subject is the dead-letter stream subject filter that selects what
// the tenant, subject, mode and op of f select.
func (f Filter) subject() (string, error) {
	if f.Subject != "" && f.Subject != streams.SubjectPrefix+".>" && !strings.HasPrefix(f.Subject, streams.SubjectPrefix+".") {
		return "", fmt.Errorf("%w: subject %q is not an outbox subject (memory.<tenant>.<mode>.<op>)", ErrBadFilter, f.Subject)
	}
	subject := streams.DLQSubjectPrefix + ".>"
	if f.Subject != "" {
		subject = streams.DLQSubjectFor(f.Subject)
	}
	var token string
	if f.Tenant != "" {
		tenantFilter, err := streams.TenantDLQFilter(f.Tenant)
		if err != nil {
			return "", fmt.Errorf("%w: %v", ErrBadFilter, err)
		}
		token = strings.Split(tenantFilter, ".")[1]
	}
	parts := strings.Split(subject, ".")
	// A trailing > stands for the tokens a filter narrows: with a mode or
	// an op it becomes the four tokens of a dead letter's subject.
	if last := len(parts) - 1; parts[last] == ">" && (f.Mode != "" || f.Op != "" || (token != "" && last == 1)) {
		if f.Mode == "" && f.Op == "" {
			parts = []string{parts[0], "*", ">"}
		} else {
			parts = append(parts[:last], slices.Repeat([]string{"*"}, 4-last)...)
		}
	}
	for i, want := range []struct{ what, value string }{{"tenant", token}, {"mode", string(f.Mode)}, {"op", string(f.Op)}} {
		if want.value == "" {
			continue
		}
		if i+1 >= len(parts) {
			return "", fmt.Errorf("%w: subject %q has no %s token", ErrBadFilter, f.Subject, want.what)
		}
		// The value fills its token: a literal must match it, a wildcard
		// is narrowed to it.
		switch parts[i+1] {
		case want.value:
		case "*":
			parts[i+1] = want.value
		default:
			return "", fmt.Errorf("%w: subject %q is not of %s %q", ErrBadFilter, f.Subject, want.what, want.value)
		}
	}
	return strings.Join(parts, "."), nil
}

// matches says whether d, already selected by the subject filter, passes
// the rest of f.
func (f Filter) matches(d DeadLetter) bool {
	if len(f.Classes) > 0 && !slices.Contains(f.Classes, streams.DLQClass(d.Class)) {
		return false
	}
	if len(f.Seqs) > 0 && !f.Seqs.Contains(d.Seq) {
		return false
	}
	if !f.Since.IsZero() && d.Time.Before(f.Since) {
		return false
	}
	return f.Until.IsZero() || d.Time.Before(f.Until)
}

// ParseClasses reads a comma-separated list of dead-letter classes.
func ParseClasses(s string) ([]streams.DLQClass, error) {
	var out []streams.DLQClass
	for _, c := range strings.Split(s, ",") {
		switch c := streams.DLQClass(strings.TrimSpace(c)); c {
		case streams.ClassPermanent, streams.ClassBadInput, streams.ClassExhausted:
			out = append(out, c)
		default:
			return nil, fmt.Errorf("%w: class %q (allowed: %s, %s, %s)", ErrBadFilter, c, streams.ClassPermanent, streams.ClassBadInput, streams.ClassExhausted)
		}
	}
	return out, nil
}

// SeqRange is the dead-letter stream sequences From to To, both included;
// To 0 means no upper end.
type SeqRange struct{ From, To uint64 }

// SeqRanges is a union of sequence ranges.
type SeqRanges []SeqRange

// ParseSeqRanges reads "7", "7-9", "7-" (7 and after), "-9" (up to 9),
// or a comma-separated list of those.
func ParseSeqRanges(s string) (SeqRanges, error) {
	var out SeqRanges
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		from, to, isRange := strings.Cut(part, "-")
		r := SeqRange{From: 1}
		var err error
		if from != "" || !isRange {
			if r.From, err = strconv.ParseUint(from, 10, 64); err != nil || r.From == 0 {
				return nil, fmt.Errorf("%w: sequence %q (allowed: N, N-M, N-, -M with N, M from 1)", ErrBadFilter, part)
			}
		}
		switch {
		case !isRange:
			r.To = r.From
		case to != "":
			if r.To, err = strconv.ParseUint(to, 10, 64); err != nil || r.To < r.From {
				return nil, fmt.Errorf("%w: sequence range %q (allowed: N, N-M with M at least N, N-, -M)", ErrBadFilter, part)
			}
		case from == "":
			return nil, fmt.Errorf("%w: sequence range %q has neither end", ErrBadFilter, part)
		}
		out = append(out, r)
	}
	return out, nil
}

// Contains says whether seq is in one of the ranges.
func (rs SeqRanges) Contains(seq uint64) bool {
	for _, r := range rs {
		if seq >= r.From && (r.To == 0 || seq <= r.To) {
			return true
		}
	}
	return false
}

// bounds are the lowest and highest sequence rs can contain; last 0 means
// no upper end.
func (rs SeqRanges) bounds() (first, last uint64) {
	first, last = rs[0].From, rs[0].To
	for _, r := range rs[1:] {
		first = min(first, r.From)
		if last != 0 && r.To == 0 {
			last = 0
		} else if last != 0 {
			last = max(last, r.To)
		}
	}
	return first, last
}
