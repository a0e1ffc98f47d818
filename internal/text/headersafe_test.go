package text

import (
	"testing"
	"unicode/utf8"
)

func TestHeaderSafe(t *testing.T) {
	if got := HeaderSafe("a\r\nb\x7fc\xffd", 100); got != "a  b c d" {
		t.Fatalf("got %q", got)
	}
	// "é" is two bytes: a cut at byte 2 would split it.
	if got := HeaderSafe("aéb", 2); got != "a" || !utf8.ValidString(got) {
		t.Fatalf("got %q", got)
	}
	if got := HeaderSafe("abcdef", 3); got != "abc" {
		t.Fatalf("got %q", got)
	}
}
