// Package jsonscan checks JSON text in one pass without decoding it: the
// producer checks a payload before publishing, the worker a body before
// sending it on, and the worker also reads a body's top-level keys on the
// way (Members). encoding/json's scanner makes a call per byte; this runs through
// strings eight plain ASCII bytes at a time and allocates nothing.
package jsonscan

import (
	"encoding/binary"
	"unicode/utf8"
)

// MaxDepth is encoding/json's limit on nested arrays and objects.
const MaxDepth = 10000

// Valid reports whether data is exactly one JSON value (RFC 8259) in valid
// UTF-8: json.Valid plus the UTF-8 check the Python memory API makes when it
// decodes a body. The tests hold it to json.Valid && utf8.Valid.
func Valid(data []byte) bool {
	s := scanner{data: data, strictUTF8: true}
	return s.whole()
}

// Members reads data, one JSON value, one member of its top-level object at
// a time, and judges it as json.Valid does (bytes outside ASCII taken as
// they come; the nesting limit included). The caller loops:
//
//	var m jsonscan.Members
//	m.Start(data)
//	for key, value, ok := m.Next(); ok; key, value, ok = m.Next() { … }
//	valid := m.Valid()
//
// key is as written, quotes and escapes included; value is raw. A value
// that is not an object has no members. It is a loop the caller drives,
// not a callback, so that nothing the caller passes escapes to the heap.
type Members struct {
	s      scanner
	inside bool // in the top-level object, with members to come
	valid  bool
}

// Start begins reading data.
func (m *Members) Start(data []byte) {
	*m = Members{s: scanner{data: data}}
	s := &m.s
	s.skipSpace()
	if s.pos >= len(data) || data[s.pos] != '{' {
		m.finish(s.value(0))
		return
	}
	s.pos++
	s.skipSpace()
	if s.pos < len(data) && data[s.pos] == '}' {
		s.pos++
		m.finish(true)
		return
	}
	m.inside = true
}

// Next returns the next member of the top-level object; ok is false once
// there is none, at its end or at the first thing that is not JSON.
func (m *Members) Next() (key, value []byte, ok bool) {
	if !m.inside {
		return nil, nil, false
	}
	s := &m.s
	k := s.pos
	if s.pos >= len(s.data) || s.data[s.pos] != '"' || !s.string() {
		m.finish(false)
		return nil, nil, false
	}
	keyEnd := s.pos
	s.skipSpace()
	if s.pos >= len(s.data) || s.data[s.pos] != ':' {
		m.finish(false)
		return nil, nil, false
	}
	s.pos++
	s.skipSpace()
	v := s.pos
	if !s.value(1) {
		m.finish(false)
		return nil, nil, false
	}
	key, value = s.data[k:keyEnd], s.data[v:s.pos]
	if done, sepOK := s.separator('}'); done || !sepOK {
		m.finish(sepOK)
	}
	return key, value, true
}

// Valid says, once Next has returned false, whether data was exactly one
// JSON value.
func (m *Members) Valid() bool { return !m.inside && m.valid }

func (m *Members) finish(ok bool) {
	m.inside = false
	m.s.skipSpace()
	m.valid = ok && m.s.pos == len(m.s.data)
}

type scanner struct {
	data       []byte
	pos        int
	strictUTF8 bool
}

// whole checks that data is one value with nothing but white space around.
func (s *scanner) whole() bool {
	s.skipSpace()
	if !s.value(0) {
		return false
	}
	s.skipSpace()
	return s.pos == len(s.data)
}

func (s *scanner) skipSpace() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// value checks one value, without the white space around it; depth is how
// many arrays and objects enclose it.
func (s *scanner) value(depth int) bool {
	if s.pos >= len(s.data) {
		return false
	}
	switch c := s.data[s.pos]; {
	case c == '{':
		return s.object(depth + 1)
	case c == '[':
		return s.array(depth + 1)
	case c == '"':
		return s.string()
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	}
	return false
}

func (s *scanner) object(depth int) bool {
	if depth > MaxDepth {
		return false
	}
	s.pos++ // {
	s.skipSpace()
	if s.pos < len(s.data) && s.data[s.pos] == '}' {
		s.pos++
		return true
	}
	for {
		if s.pos >= len(s.data) || s.data[s.pos] != '"' || !s.string() {
			return false
		}
		s.skipSpace()
		if s.pos >= len(s.data) || s.data[s.pos] != ':' {
			return false
		}
		s.pos++
		s.skipSpace()
		if !s.value(depth) {
			return false
		}
		if done, ok := s.separator('}'); done || !ok {
			return ok
		}
	}
}

func (s *scanner) array(depth int) bool {
	if depth > MaxDepth {
		return false
	}
	s.pos++ // [
	s.skipSpace()
	if s.pos < len(s.data) && s.data[s.pos] == ']' {
		s.pos++
		return true
	}
	for {
		if !s.value(depth) {
			return false
		}
		if done, ok := s.separator(']'); done || !ok {
			return ok
		}
	}
}

// separator reads what follows a member or element: ',' to go on, or the
// closing bracket. done says the container ended; ok false, bad input.
func (s *scanner) separator(closing byte) (done, ok bool) {
	s.skipSpace()
	if s.pos >= len(s.data) {
		return true, false
	}
	switch s.data[s.pos] {
	case ',':
		s.pos++
		s.skipSpace()
		return false, true
	case closing:
		s.pos++
		return true, true
	}
	return true, false
}

func (s *scanner) string() bool {
	data, i := s.data, s.pos+1 // past the opening quote
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
			s.pos = i + 1
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
		case c < utf8.RuneSelf || !s.strictUTF8:
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
func (s *scanner) number() bool {
	data, i := s.data, s.pos
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
	s.pos = i
	return true
}

func (s *scanner) literal(word string) bool {
	if len(s.data)-s.pos < len(word) || string(s.data[s.pos:s.pos+len(word)]) != word {
		return false
	}
	s.pos += len(word)
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
