package frontdoor

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/jetbox-dev/jetbox/internal/sfmapi"
	"github.com/jetbox-dev/jetbox/internal/text"
	"github.com/jetbox-dev/jetbox/tenancy"
)

// ErrTokensFile wraps every problem with a tokens file.
var ErrTokensFile = errors.New("front door tokens file")

// Tokens are the bearer tokens the front door accepts. The zero value
// accepts every request: only for a front door that listens on loopback.
type Tokens struct {
	// Service is one token trusted to act for any tenant the request names.
	Service string
	// Tenant maps tokens to the one tenant each may act for.
	Tenant map[string]string
}

// LoadTokensFile reads a tokens file: one token and its tenant per line,
// separated by white space (the tenant is the rest of the line, trimmed);
// blank lines and lines starting with # are ignored. A token listed twice
// is refused, as is an invalid tenant. The error never quotes a token.
func LoadTokensFile(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTokensFile, err)
	}
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.IndexAny(line, " \t")
		if i < 0 {
			return nil, fmt.Errorf("%w %s, line %d: want a token and a tenant", ErrTokensFile, path, n)
		}
		token, tenant := line[:i], strings.TrimSpace(line[i+1:])
		if tenant == "" {
			return nil, fmt.Errorf("%w %s, line %d: want a token and a tenant", ErrTokensFile, path, n)
		}
		if err := tenancy.Validate(tenant); err != nil {
			return nil, fmt.Errorf("%w %s, line %d: %w", ErrTokensFile, path, n, err)
		}
		if _, dup := out[token]; dup {
			return nil, fmt.Errorf("%w %s, line %d: a token listed twice", ErrTokensFile, path, n)
		}
		out[token] = tenant
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrTokensFile, path, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w %s: no tokens", ErrTokensFile, path)
	}
	return out, nil
}

// authenticator checks bearer tokens in constant time: every configured
// token is compared, by its SHA-256, whatever matched before.
type authenticator struct {
	open    bool // no token configured
	entries []tokenEntry
}

type tokenEntry struct {
	sum    [sha256.Size]byte
	tenant string // "" for the service token
}

func newAuthenticator(t Tokens) *authenticator {
	a := &authenticator{open: t.Service == "" && len(t.Tenant) == 0}
	if t.Service != "" {
		a.entries = append(a.entries, tokenEntry{sum: sha256.Sum256([]byte(t.Service))})
	}
	for token, tenant := range t.Tenant {
		a.entries = append(a.entries, tokenEntry{sum: sha256.Sum256([]byte(token)), tenant: tenant})
	}
	return a
}

// principal is who a request acts as: bound to one tenant, or trusted to
// name any.
type principal struct{ tenant string }

// authenticate reads "Authorization: Bearer <token>", as SFM's HttpBearer
// does (the scheme in any case, the token after one space). SomaBrain
// also sends the token as X-API-Key and X-Auth-Token; those are not
// read, only removed before anything is forwarded.
func (a *authenticator) authenticate(r *http.Request) (principal, bool) {
	if a.open {
		return principal{}, true
	}
	token, ok := sfmapi.BearerToken(r.Header.Get(sfmapi.HeaderAuthorization))
	if !ok {
		return principal{}, false
	}
	sum := sha256.Sum256([]byte(token))
	found, tenant := 0, ""
	for _, e := range a.entries {
		if subtle.ConstantTimeCompare(sum[:], e.sum[:]) == 1 {
			found, tenant = 1, e.tenant
		}
	}
	return principal{tenant: tenant}, found == 1
}

// headerWriteMode is the front door's own request header: the write mode
// of a write. The others it reads are SFM's (sfmapi.Header*).
const headerWriteMode = "X-Soma-Write-Mode"

// callerCredentials are the headers that carry a caller's token; none of
// them is forwarded.
var callerCredentials = []string{sfmapi.HeaderAuthorization, "X-API-Key", "X-Auth-Token", "Proxy-Authorization", "Cookie"}

// resolveTenant is the tenant a request acts for: X-Soma-Tenant, else the
// last ':' segment of X-Soma-Namespace, else the token's tenant, else the
// default tenant. A token bound to a tenant may act for that one only
// (403); a namespace must name the same tenant (400), as the workers
// require.
func resolveTenant(r *http.Request, who principal, defaultTenant string) (string, *refusal) {
	fallback := defaultTenant
	if who.tenant != "" {
		fallback = who.tenant
	}
	namespace := r.Header.Get(sfmapi.HeaderNamespace)
	tenant, err := tenancy.Resolve(strings.TrimSpace(r.Header.Get(sfmapi.HeaderTenant)), namespace, fallback)
	if err != nil {
		return "", refuse(400, err.Error())
	}
	if who.tenant != "" && tenant != who.tenant {
		return "", refuse(403, "Permission denied: this token may not act for the tenant the request names")
	}
	if nt := tenancy.FromNamespace(namespace); namespace != "" && nt != tenant {
		return "", refuse(400, fmt.Sprintf("%s names tenant %q, not the request's tenant %q", sfmapi.HeaderNamespace, text.Clip(nt, 64), text.Clip(tenant, 64)))
	}
	return tenant, nil
}
