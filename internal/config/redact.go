package config

import (
	"net/url"
	"strings"
	"unicode"
)

// Redacted stands in for every secret jetbox prints.
const Redacted = "[redacted]"

// RedactURL hides the secrets of a URL, or of a comma-separated list of
// URLs such as NATS_URL: the password of user:password@ (the whole user
// part when it has no password, as a token in nats://token@host), and
// the value of every query parameter whose name looks secret
// (SecretParam). A list in which any entry does not parse, or has an @
// that is not its user part, is redacted as text: everything between the
// first // and the last @ goes, so a password holding , / ? # or @ cannot
// show through a part the parser misread.
func RedactURL(s string) string {
	entries := splitURLs(s)
	for i, e := range entries {
		redacted, ok := redactParsed(strings.TrimSpace(e))
		if !ok {
			return redactText(s)
		}
		entries[i] = redacted
	}
	return strings.Join(entries, ",")
}

// splitURLs splits a comma-separated list of URLs. A comma inside a query
// belongs to it (?token=a,b) unless a new scheme:// follows.
func splitURLs(s string) []string {
	var entries []string
	for _, p := range strings.Split(s, ",") {
		if n := len(entries); n > 0 && strings.Contains(entries[n-1], "?") && !strings.Contains(p, "://") {
			entries[n-1] += "," + p
			continue
		}
		entries = append(entries, p)
	}
	return entries
}

// redactParsed redacts one URL through its parsed form; ok is false when
// the URL does not parse into a form whose secrets are all in known places.
func redactParsed(s string) (string, bool) {
	u, err := url.Parse(s)
	if err != nil || (u.User == nil && strings.Contains(s, "@")) {
		return "", false
	}
	u.RawQuery = redactQuery(u.RawQuery)
	if u.User == nil {
		return u.String(), true
	}
	userinfo := Redacted
	if _, hasPassword := u.User.Password(); hasPassword {
		userinfo = url.User(u.User.Username()).String() + ":" + Redacted
	}
	u.User = nil
	// With its user part gone the URL still starts scheme://, so the user
	// part goes back right after the first //.
	return strings.Replace(u.String(), "//", "//"+userinfo+"@", 1), true
}

// redactText redacts a URL that does not parse: everything between the
// first // (or the start, for forms without a scheme) and the last @, and
// secret parameters after that @.
func redactText(s string) string {
	tail := 0
	if at := strings.LastIndex(s, "@"); at >= 0 {
		start := 0
		if i := strings.Index(s[:at], "//"); i >= 0 {
			start = i + len("//")
		}
		s = s[:start] + Redacted + s[at:]
		tail = start + len(Redacted)
	}
	return s[:tail] + redactParamsText(s[tail:])
}

// redactParamsText redacts, in text that did not parse as a query, the
// value of every name=value whose name looks secret: up to the next & or
// #, so that a , or ? inside the value goes too.
func redactParamsText(s string) string {
	var b strings.Builder
	for {
		end := strings.IndexAny(s, "?&,;#")
		if end < 0 {
			end = len(s)
		}
		if name, _, ok := strings.Cut(s[:end], "="); ok && SecretParam(name) {
			b.WriteString(name + "=" + Redacted)
			if end = strings.IndexAny(s, "&#"); end < 0 {
				end = len(s)
			}
		} else {
			b.WriteString(s[:end])
		}
		if end == len(s) {
			return b.String()
		}
		b.WriteByte(s[end])
		s = s[end+1:]
	}
}

// redactQuery replaces the values of secret parameters in a raw query.
func redactQuery(raw string) string {
	if raw == "" {
		return raw
	}
	params := strings.Split(raw, "&")
	for i, p := range params {
		name, _, hasValue := strings.Cut(p, "=")
		if decoded, err := url.QueryUnescape(name); err == nil {
			name = decoded
		}
		if hasValue && SecretParam(name) {
			params[i] = p[:strings.Index(p, "=")+1] + Redacted
		}
	}
	return strings.Join(params, "&")
}

// secretWords are what the name of a secret query parameter, or one of its
// parts, ends with.
var secretWords = []string{"token", "key", "password", "pass", "passwd", "secret", "signature", "sig", "auth", "authorization", "credential", "credentials"}

// SecretParam reports whether a query parameter's name looks like it
// carries a secret: the name, or one of its parts between characters
// other than letters and digits, ends with one of secretWords, in any
// case. So token, access_token, api_key, apikey, X-Amz-Signature,
// client_secret and accessToken all do; page and limit do not.
func SecretParam(name string) bool {
	name = strings.ToLower(name)
	parts := strings.FieldsFunc(name, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	for _, part := range parts {
		for _, w := range secretWords {
			if strings.HasSuffix(part, w) {
				return true
			}
		}
	}
	return false
}
