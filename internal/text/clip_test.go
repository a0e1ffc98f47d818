package text

import (
	"testing"
	"unicode/utf8"
)

func TestClip(t *testing.T) {
	if got := Clip("short", 10); got != "short" {
		t.Fatalf("got %q", got)
	}
	if got := Clip("abcdef", 3); got != "abc…" {
		t.Fatalf("got %q", got)
	}
	// "é" is two bytes: a cut at byte 2 would split it.
	if got := Clip("aéb", 2); got != "a…" || !utf8.ValidString(got) {
		t.Fatalf("got %q", got)
	}
}
