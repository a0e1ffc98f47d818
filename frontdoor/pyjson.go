package frontdoor

import "strconv"

// pyObject writes a JSON object the way SomaFractalMemory's answers are
// written (Django Ninja renders with Python's json.dumps): ", " and ": "
// between members, every byte outside printable ASCII escaped as \uXXXX.
// Callers parse the answers as JSON, so the spelling only matters to a
// reader comparing them byte for byte with SFM's.
type pyObject struct{ b []byte }

func (o *pyObject) key(k string) {
	if len(o.b) == 0 {
		o.b = append(o.b, '{')
	} else {
		o.b = append(o.b, ", "...)
	}
	o.b = appendPyString(o.b, k)
	o.b = append(o.b, ": "...)
}

func (o *pyObject) str(k, v string) *pyObject {
	o.key(k)
	o.b = appendPyString(o.b, v)
	return o
}

func (o *pyObject) boolean(k string, v bool) *pyObject {
	o.key(k)
	o.b = strconv.AppendBool(o.b, v)
	return o
}

func (o *pyObject) uint(k string, v uint64) *pyObject {
	o.key(k)
	o.b = strconv.AppendUint(o.b, v, 10)
	return o
}

// raw adds a member whose value is already JSON.
func (o *pyObject) raw(k string, v []byte) *pyObject {
	o.key(k)
	o.b = append(o.b, v...)
	return o
}

func (o *pyObject) bytes() []byte {
	if len(o.b) == 0 {
		return []byte("{}")
	}
	return append(o.b, '}')
}

// appendPyString appends s as Python's json.dumps writes a string with its
// default ensure_ascii.
func appendPyString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	u4 := func(dst []byte, r rune) []byte {
		return append(dst, '\\', 'u', hex[r>>12&0xF], hex[r>>8&0xF], hex[r>>4&0xF], hex[r&0xF])
	}
	dst = append(dst, '"')
	for _, r := range s { // invalid UTF-8 reads as U+FFFD
		switch {
		case r == '"':
			dst = append(dst, '\\', '"')
		case r == '\\':
			dst = append(dst, '\\', '\\')
		case r == '\n':
			dst = append(dst, '\\', 'n')
		case r == '\r':
			dst = append(dst, '\\', 'r')
		case r == '\t':
			dst = append(dst, '\\', 't')
		case r == '\b':
			dst = append(dst, '\\', 'b')
		case r == '\f':
			dst = append(dst, '\\', 'f')
		case r >= 0x20 && r <= 0x7E:
			dst = append(dst, byte(r))
		case r > 0xFFFF:
			r -= 0x10000
			dst = u4(dst, 0xD800+(r>>10))
			dst = u4(dst, 0xDC00+(r&0x3FF))
		default:
			dst = u4(dst, r)
		}
	}
	return append(dst, '"')
}

// detail is SFM's error answer for an error its routes raise:
// {"detail": "..."}.
func detail(msg string) []byte {
	var o pyObject
	return o.str("detail", msg).bytes()
}
