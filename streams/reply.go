package streams

import (
	"fmt"
	"strings"

	"github.com/jetbox-dev/jetbox/internal/text"
)

// IngestSubjectPrefix leads the subjects tenants publish to through the
// ingest gateway: ingest.memory.<token>.<mode>.<op>.
const IngestSubjectPrefix = "ingest"

// DefaultReplyPrefix is the prefix a reply subject must have unless told
// otherwise: that of the inboxes NATS clients make.
const DefaultReplyPrefix = "_INBOX."

// reservedReplyPrefixes are subjects a reply must never reach, whatever
// prefixes are allowed.
var reservedReplyPrefixes = []string{"$", SubjectPrefix + ".", DLQSubjectPrefix + ".", ParkedSubjectPrefix + ".", IngestSubjectPrefix + "."}

// CheckReplyTo accepts, as the subject a worker publishes a sync outcome
// to or a PubAck is sent to, a literal subject under one of the allowed prefixes
// (by default the inboxes NATS clients make), outside the reserved ones.
func CheckReplyTo(subject string, allowed []string) error {
	if len(subject) > MaxReplyToLen {
		return fmt.Errorf("%d bytes, at most %d", len(subject), MaxReplyToLen)
	}
	if strings.Count(subject, ".") >= MaxReplyToTokens {
		return fmt.Errorf("%q has more than %d tokens", text.Clip(subject, 64), MaxReplyToTokens)
	}
	for i := 0; i < len(subject); i++ {
		if c := subject[i]; c <= ' ' || c >= 0x7F {
			return fmt.Errorf("%q is not a literal subject: byte 0x%02X at %d", text.Clip(subject, 64), c, i)
		}
	}
	if strings.ContainsAny(subject, "*>") || strings.HasPrefix(subject, ".") || strings.HasSuffix(subject, ".") || strings.Contains(subject, "..") {
		return fmt.Errorf("%q is not a literal subject", text.Clip(subject, 64))
	}
	for _, p := range reservedReplyPrefixes {
		if strings.HasPrefix(subject, p) {
			return fmt.Errorf("%q is in the reserved %q namespace", text.Clip(subject, 64), p)
		}
	}
	for _, p := range allowed {
		if strings.HasPrefix(subject, p) {
			return nil
		}
	}
	return fmt.Errorf("%q is not under an allowed reply prefix (%s)", text.Clip(subject, 64), strings.Join(allowed, ", "))
}
