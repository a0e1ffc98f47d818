// Package pyfloat reads and writes numbers as Python's float() and str()
// do. SomaFractalMemory is written in Python: it reads each part of a
// coordinate with float() and keys memories by str() of the numbers, and
// SomaBrain derives coordinates the same way; the producer, the development
// memory API and the front door use this one reading of Python's rules.
package pyfloat

import (
	"bytes"
	"errors"
	"math"
	"strconv"
	"strings"
	"unicode"
)

// ErrNotAPythonFloat is Parse's error.
var ErrNotAPythonFloat = errors.New("not a Python float")

// Parse reads s as Python's float(s) does: surrounding white space
// ignored, an optional sign, then "inf", "infinity" or "nan" in any case, or
// a decimal number whose digits may be grouped by single underscores
// ("1_000.5"). A number too large for a float64 is infinite and a number
// too small is zero, as in Python. Hex floats are refused. (Python also
// reads non-ASCII decimal digits; this does not.)
func Parse(s string) (float64, error) {
	s = strings.TrimFunc(s, IsSpace)
	body := strings.TrimLeft(s, "+-")
	if len(s)-len(body) > 1 {
		return 0, ErrNotAPythonFloat
	}
	switch strings.ToLower(body) {
	case "inf", "infinity":
		return math.Copysign(math.Inf(1), signOf(s)), nil
	case "nan":
		return math.NaN(), nil
	}
	digits, ok := pyDecimal(body)
	if !ok {
		return 0, ErrNotAPythonFloat
	}
	f, err := strconv.ParseFloat(digits, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, ErrNotAPythonFloat
	}
	return math.Copysign(f, signOf(s)), nil
}

func signOf(s string) float64 {
	if strings.HasPrefix(s, "-") {
		return -1
	}
	return 1
}

// pyDecimal checks Python's grammar for an unsigned decimal float
// (digitpart ["." [digitpart]] [exponent] | "." digitpart [exponent]) and
// returns it without underscores.
func pyDecimal(s string) (string, bool) {
	var out strings.Builder
	i := 0
	// digitpart: digit (["_"] digit)*
	digitPart := func() bool {
		start := i
		for i < len(s) {
			switch {
			case s[i] >= '0' && s[i] <= '9':
				out.WriteByte(s[i])
				i++
			case s[i] == '_' && i > start && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9' && s[i-1] != '_':
				i++
			default:
				return i > start
			}
		}
		return i > start
	}
	intPart := digitPart()
	fracPart := false
	if i < len(s) && s[i] == '.' {
		out.WriteByte('.')
		i++
		fracPart = digitPart()
	}
	if !intPart && !fracPart {
		return "", false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		out.WriteByte('e')
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			out.WriteByte(s[i])
			i++
		}
		if !digitPart() {
			return "", false
		}
	}
	return out.String(), i == len(s)
}

// IsSpace is Python's str.isspace for one rune: Unicode white space and
// the ASCII separators U+001C to U+001F.
func IsSpace(r rune) bool {
	return unicode.IsSpace(r) || r >= 0x1c && r <= 0x1f
}

// Append writes f as Python's str(f) and repr(f) do: the shortest
// decimal that reads back as f, positional with at least one fractional
// digit ("1.0") when the decimal exponent is in [-4, 16), else with a signed
// exponent of at least two digits ("1e-05", "1.5e+16"); "inf", "-inf", "nan".
func Append(dst []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(dst, "nan"...)
	case math.IsInf(f, 1):
		return append(dst, "inf"...)
	case math.IsInf(f, -1):
		return append(dst, "-inf"...)
	}
	var buf [32]byte
	sci := strconv.AppendFloat(buf[:0], f, 'e', -1, 64) // Go also writes "1e-05", "1e+16"
	exp, _ := strconv.Atoi(string(sci[bytes.LastIndexByte(sci, 'e')+1:]))
	if exp < -4 || exp >= 16 {
		return append(dst, sci...)
	}
	start := len(dst)
	dst = strconv.AppendFloat(dst, f, 'f', -1, 64)
	if bytes.IndexByte(dst[start:], '.') < 0 {
		dst = append(dst, ".0"...)
	}
	return dst
}
