package streams

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/jetbox-dev/jetbox/internal/text"
)

// Rules of the wire that the producer checks before publishing, the worker
// checks again before calling the memory API, and the development memory API
// enforces. One definition, so the three never disagree.

// ErrBadCoord is wrapped by every coordinate parse error.
var ErrBadCoord = errors.New("bad coord")

// ParseCoord reads "x,y,z": three comma-separated finite decimal numbers,
// spaces around each allowed. Hex floats, underscores, inf and nan are
// refused: Go would parse some of them, the Python memory API would not.
func ParseCoord(coord string) ([3]float64, error) {
	var xyz [3]float64
	if strings.Count(coord, ",") != 2 {
		return xyz, fmt.Errorf("%w %q: want three comma-separated numbers", ErrBadCoord, text.Clip(coord, 64))
	}
	rest := coord
	for i := range xyz {
		p, after, _ := strings.Cut(rest, ",")
		rest = after
		p = strings.TrimSpace(p)
		f, err := strconv.ParseFloat(p, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || p == "" || !decimalChars(p) {
			return xyz, fmt.Errorf("%w %q: %q is not a finite decimal number", ErrBadCoord, text.Clip(coord, 64), text.Clip(p, 32))
		}
		xyz[i] = f
	}
	return xyz, nil
}

// decimalChars reports whether s holds only what a decimal number in
// exponent notation may: digits, signs, a point and e or E.
func decimalChars(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9', c == '+', c == '-', c == '.', c == 'e', c == 'E':
		default:
			return false
		}
	}
	return true
}

// Memory types the memory API knows.
const (
	MemoryEpisodic = "episodic"
	MemorySemantic = "semantic"
)

// ErrBadMemoryType says a memory_type is neither episodic nor semantic.
var ErrBadMemoryType = errors.New("memory_type must be episodic or semantic")

// CheckMemoryType accepts "episodic" and "semantic".
func CheckMemoryType(t string) error {
	if t != MemoryEpisodic && t != MemorySemantic {
		return fmt.Errorf("%w, not %q", ErrBadMemoryType, text.Clip(t, 32))
	}
	return nil
}

// MaxHeaderValueLen bounds the header values a worker forwards to the memory
// API (idempotency key, request id, namespace, trace context).
const MaxHeaderValueLen = 256

// ErrBadHeaderValue is wrapped by every header value error.
var ErrBadHeaderValue = errors.New("bad header value")

// CheckHeaderValue accepts at most MaxHeaderValueLen bytes of valid UTF-8
// without control characters, which would break the header block.
func CheckHeaderValue(v string) error {
	if len(v) > MaxHeaderValueLen {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrBadHeaderValue, len(v), MaxHeaderValueLen)
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("%w: not valid UTF-8", ErrBadHeaderValue)
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c == 0x7F {
			return fmt.Errorf("%w: control character 0x%02X at byte %d", ErrBadHeaderValue, c, i)
		}
	}
	return nil
}
