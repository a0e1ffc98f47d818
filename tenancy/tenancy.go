// Package tenancy resolves, validates and encodes tenant ids.
//
// A tenant id travels in two forms: raw (the id a service knows, sent to the
// memory API as X-Soma-Tenant) and encoded (one NATS subject token). The
// encoding is injective and reversible, so the subject alone decides the
// tenant and a NATS user can be confined to memory.<token>.>.
package tenancy

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/jetbox-dev/jetbox/internal/text"
)

// MaxLen is the longest tenant id in bytes.
const MaxLen = 128

// MaxTokenLen is the longest token Encode makes: a MaxLen-byte tenant with
// every byte escaped.
const MaxTokenLen = 3 * MaxLen

// DefaultTenant is used when neither a tenant nor a namespace names one and no
// other default is configured.
const DefaultTenant = "public"

// ErrInvalidTenant is the sentinel every tenant validation error wraps.
var ErrInvalidTenant = errors.New("invalid tenant")

// InvalidTenantError says why a tenant id was refused.
type InvalidTenantError struct {
	Tenant string
	Reason string
}

func (e *InvalidTenantError) Error() string {
	return fmt.Sprintf("invalid tenant %q: %s", text.Clip(e.Tenant, 40), e.Reason)
}

// Is makes errors.Is(err, ErrInvalidTenant) true.
func (e *InvalidTenantError) Is(target error) bool { return target == ErrInvalidTenant }

// Validate checks that tenant is 1 to MaxLen bytes of valid UTF-8 with no
// control characters.
func Validate(tenant string) error {
	switch {
	case tenant == "":
		return &InvalidTenantError{Tenant: tenant, Reason: "empty"}
	case len(tenant) > MaxLen:
		return &InvalidTenantError{Tenant: tenant, Reason: fmt.Sprintf("%d bytes, at most %d allowed", len(tenant), MaxLen)}
	case !utf8.ValidString(tenant):
		return &InvalidTenantError{Tenant: tenant, Reason: "not valid UTF-8"}
	}
	for _, r := range tenant {
		if isControl(r) {
			return &InvalidTenantError{Tenant: tenant, Reason: fmt.Sprintf("control character U+%04X", r)}
		}
	}
	return nil
}

// isControl covers C0, DEL and C1 control characters.
func isControl(r rune) bool { return r < 0x20 || (r >= 0x7F && r <= 0x9F) }

// Resolve picks the tenant of a write: an explicit tenant wins; else the last
// non-empty ':'-separated segment of the namespace; else fallback (or
// DefaultTenant when fallback is empty). The result is validated.
func Resolve(explicit, namespace, fallback string) (string, error) {
	tenant := explicit
	if tenant == "" {
		tenant = FromNamespace(namespace)
	}
	if tenant == "" {
		tenant = fallback
	}
	if tenant == "" {
		tenant = DefaultTenant
	}
	if err := Validate(tenant); err != nil {
		return "", err
	}
	return tenant, nil
}

// FromNamespace returns the last non-empty ':'-separated segment of namespace,
// or "" when there is none ("memory:sandbox-tenant" gives "sandbox-tenant").
func FromNamespace(namespace string) string {
	segments := strings.Split(namespace, ":")
	for i := len(segments) - 1; i >= 0; i-- {
		if s := strings.TrimSpace(segments[i]); s != "" {
			return s
		}
	}
	return ""
}

const hexDigits = "0123456789ABCDEF"

// plain reports whether every byte of token stands for itself.
func plain(token string) bool {
	for i := 0; i < len(token); i++ {
		if !keepsByte(token[i]) {
			return false
		}
	}
	return true
}

// keepsByte reports whether b stands for itself in a token.
func keepsByte(b byte) bool {
	return b >= 'A' && b <= 'Z' || b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b == '_' || b == '-'
}

// Encode turns a valid tenant id into one subject token: A-Z a-z 0-9 _ -
// stay, every other byte becomes '~' and two upper-case hex digits.
func Encode(tenant string) (string, error) {
	if err := Validate(tenant); err != nil {
		return "", err
	}
	return encode(tenant), nil
}

func encode(tenant string) string {
	var sb strings.Builder
	sb.Grow(len(tenant))
	for i := 0; i < len(tenant); i++ {
		b := tenant[i]
		if keepsByte(b) {
			sb.WriteByte(b)
			continue
		}
		sb.WriteByte('~')
		sb.WriteByte(hexDigits[b>>4])
		sb.WriteByte(hexDigits[b&0x0F])
	}
	return sb.String()
}

// Decode reverses Encode. It refuses any token Encode could not have made, so
// every tenant has exactly one token.
func Decode(token string) (string, error) {
	if token == "" {
		return "", &InvalidTenantError{Tenant: token, Reason: "empty token"}
	}
	if len(token) > MaxTokenLen {
		return "", &InvalidTenantError{Tenant: token, Reason: fmt.Sprintf("token of %d bytes, at most %d", len(token), MaxTokenLen)}
	}
	if plain(token) { // the common case: the tenant is its own token
		if err := Validate(token); err != nil {
			return "", err
		}
		return token, nil
	}
	out := make([]byte, 0, len(token))
	for i := 0; i < len(token); i++ {
		b := token[i]
		if keepsByte(b) {
			out = append(out, b)
			continue
		}
		if b != '~' || i+2 >= len(token) {
			return "", &InvalidTenantError{Tenant: token, Reason: fmt.Sprintf("byte 0x%02X at %d is not allowed in a token", b, i)}
		}
		hi, lo := unhex(token[i+1]), unhex(token[i+2])
		if hi < 0 || lo < 0 {
			return "", &InvalidTenantError{Tenant: token, Reason: fmt.Sprintf("bad escape at %d", i)}
		}
		v := byte(hi<<4 | lo)
		if keepsByte(v) {
			return "", &InvalidTenantError{Tenant: token, Reason: fmt.Sprintf("escape at %d encodes a byte that stands for itself", i)}
		}
		out = append(out, v)
		i += 2
	}
	tenant := string(out)
	if err := Validate(tenant); err != nil {
		return "", err
	}
	return tenant, nil
}

// unhex accepts only upper-case hex, as Encode writes it.
func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}
