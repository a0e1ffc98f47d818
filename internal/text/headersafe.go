package text

import "strings"

// HeaderSafe makes s fit a NATS header value: no line breaks or other
// control characters, at most n bytes, valid UTF-8 at the cut.
func HeaderSafe(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7F || r == '\uFFFD' {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, " "))
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut]
}
