package streams

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

func FuzzParseCoord(f *testing.F) {
	for _, s := range []string{
		"1,2,3", "0.1,-0.2,0.3", " 1 , 2 , 3 ", "1e3,-1E-3,+4.", "1,2", "1,2,3,4", "1,,3", "",
		"NaN,0,0", "inf,0,0", "-Infinity,0,0", "1e999,0,0", "0x1p-2,0,0", "1_000,0,0", "1..2,0,0",
		"\xff,0,0", "１,2,3", "1,2,3\x00", "\t1,2,3\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, coord string) {
		xyz, err := ParseCoord(coord)
		if err != nil {
			if !errors.Is(err, ErrBadCoord) {
				t.Fatalf("ParseCoord(%q) error %v does not wrap ErrBadCoord", coord, err)
			}
			return
		}
		parts := strings.Split(coord, ",")
		for i, f := range xyz {
			p := strings.TrimSpace(parts[i])
			if math.IsNaN(f) || math.IsInf(f, 0) || strings.Trim(p, "0123456789+-.eE") != "" {
				t.Fatalf("ParseCoord(%q) accepted %q as %v", coord, p, f)
			}
			// Python's float() reads what is left the same way.
			if g, err := strconv.ParseFloat(p, 64); err != nil || g != f {
				t.Fatalf("ParseCoord(%q): part %q is %v, ParseFloat says %v, %v", coord, p, f, g, err)
			}
		}
	})
}

func FuzzCheckHeaderValue(f *testing.F) {
	for _, s := range []string{
		"", "k1", "memory:acme", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "a\x01b", "a\tb", "r\x7f",
		"\xff\xfe", "é日本🔑", "\u0085", "a\r\nInjected: x", strings.Repeat("k", MaxHeaderValueLen), strings.Repeat("k", MaxHeaderValueLen+1),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		err := CheckHeaderValue(v)
		ok := len(v) <= MaxHeaderValueLen && utf8.ValidString(v) && !strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7F })
		if (err == nil) != ok {
			t.Fatalf("CheckHeaderValue(%q) = %v, want ok %v", v, err, ok)
		}
		if err != nil && !errors.Is(err, ErrBadHeaderValue) {
			t.Fatalf("CheckHeaderValue(%q) error %v does not wrap ErrBadHeaderValue", v, err)
		}
	})
}
