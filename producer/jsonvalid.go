package producer

import (
	"encoding/binary"
	"unicode/utf8"
)

// validJSON reports whether data is exactly one JSON value (RFC 8259) in
// valid UTF-8: json.Valid plus the UTF-8 check the Python memory API makes
// when it decodes the body. It exists because payload checking was half the
// client cost of a background write: encoding/json's scanner makes a call per
// byte, this runs through strings a byte at a time without one.
// TestValidJSONMatchesEncodingJSON and FuzzValidJSON hold it to json.Valid.
func validJSON(data []byte) bool {
	v := jsonValidator{data: data}
	v.skipSpace()
	if !v.value(0) {
		return false
	}
	v.skipSpace()
	return v.pos == len(data)
}

// maxJSONDepth is encoding/json's nesting limit.
const maxJSONDepth = 10000

type jsonValidator struct {
	data []byte
	pos  int
}

func (v *jsonValidator) skipSpace() {
	for v.pos < len(v.data) {
		switch v.data[v.pos] {
		case ' ', '\t', '\n', '\r':
			v.pos++
		default:
			return
		}
	}
}

func (v *jsonValidator) value(depth int) bool {
	if v.pos >= len(v.data) {
		return false
	}
	switch c := v.data[v.pos]; {
	case c == '{':
		return v.object(depth + 1)
	case c == '[':
		return v.array(depth + 1)
	case c == '"':
		return v.string()
	case c == '-' || c >= '0' && c <= '9':
		return v.number()
	case c == 't':
		return v.literal("true")
	case c == 'f':
		return v.literal("false")
	case c == 'n':
		return v.literal("null")
	}
	return false
}

func (v *jsonValidator) object(depth int) bool {
	if depth > maxJSONDepth {
		return false
	}
	v.pos++ // {
	v.skipSpace()
	if v.pos < len(v.data) && v.data[v.pos] == '}' {
		v.pos++
		return true
	}
	for {
		if v.pos >= len(v.data) || v.data[v.pos] != '"' || !v.string() {
			return false
		}
		v.skipSpace()
		if v.pos >= len(v.data) || v.data[v.pos] != ':' {
			return false
		}
		v.pos++
		v.skipSpace()
		if !v.value(depth) {
			return false
		}
		if done, ok := v.separator('}'); done || !ok {
			return ok
		}
	}
}

func (v *jsonValidator) array(depth int) bool {
	if depth > maxJSONDepth {
		return false
	}
	v.pos++ // [
	v.skipSpace()
	if v.pos < len(v.data) && v.data[v.pos] == ']' {
		v.pos++
		return true
	}
	for {
		if !v.value(depth) {
			return false
		}
		if done, ok := v.separator(']'); done || !ok {
			return ok
		}
	}
}

// separator reads what follows a member or element: ',' to go on, or the
// closing bracket. done says the container ended; ok false, bad input.
func (v *jsonValidator) separator(closing byte) (done, ok bool) {
	v.skipSpace()
	if v.pos >= len(v.data) {
		return true, false
	}
	switch v.data[v.pos] {
	case ',':
		v.pos++
		v.skipSpace()
		return false, true
	case closing:
		v.pos++
		return true, true
	}
	return true, false
}

func (v *jsonValidator) string() bool {
	data, i := v.data, v.pos+1 // past the opening quote
	for i < len(data) {
		// Skip eight plain ASCII bytes at a time.
		for i+8 <= len(data) && !special8(binary.LittleEndian.Uint64(data[i:])) {
			i += 8
		}
		if i >= len(data) {
			break
		}
		c := data[i]
		switch {
		case c == '"':
			v.pos = i + 1
			return true
		case c == '\\':
			if i+1 >= len(data) {
				return false
			}
			switch data[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(data) {
					return false
				}
				for _, h := range data[i+2 : i+6] {
					if !isHex(h) {
						return false
					}
				}
				i += 6
			default:
				return false
			}
		case c < 0x20:
			return false
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && size == 1 {
				return false
			}
			i += size
		}
	}
	return false
}

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// special8 reports whether any of the eight bytes in x ends or escapes a
// string, is a control character or is not ASCII: the bytes the string
// scanner must look at one by one.
func special8(x uint64) bool {
	below0x20 := (x - ones*0x20) & ^x & highs // exact when no byte has its high bit set
	return (x&highs | below0x20 | zeroByte(x^(ones*'"')) | zeroByte(x^(ones*'\\'))) != 0
}

// zeroByte is non-zero when a byte of x is zero.
func zeroByte(x uint64) uint64 { return (x - ones) & ^x & highs }

// number accepts -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (v *jsonValidator) number() bool {
	data, i := v.data, v.pos
	if data[i] == '-' {
		i++
	}
	switch {
	case i < len(data) && data[i] == '0':
		i++
	case i < len(data) && data[i] >= '1' && data[i] <= '9':
		i = skipDigits(data, i)
	default:
		return false
	}
	if i < len(data) && data[i] == '.' {
		if i++; i >= len(data) || !isDigit(data[i]) {
			return false
		}
		i = skipDigits(data, i)
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if i >= len(data) || !isDigit(data[i]) {
			return false
		}
		i = skipDigits(data, i)
	}
	v.pos = i
	return true
}

func (v *jsonValidator) literal(word string) bool {
	if len(v.data)-v.pos < len(word) || string(v.data[v.pos:v.pos+len(word)]) != word {
		return false
	}
	v.pos += len(word)
	return true
}

func skipDigits(data []byte, i int) int {
	for i < len(data) && isDigit(data[i]) {
		i++
	}
	return i
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}
