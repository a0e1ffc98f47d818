// Package text holds the string helpers several packages need for error
// messages and headers.
package text

import "unicode/utf8"

// Clip shortens s to at most n bytes plus "…", never cutting inside a UTF-8
// character, so a clipped value stays printable.
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
