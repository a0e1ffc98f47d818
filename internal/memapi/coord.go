package memapi

import (
	"strings"
	"unicode/utf8"

	"github.com/jetbox-dev/jetbox/internal/pyfloat"
	"github.com/jetbox-dev/jetbox/internal/sfmapi"
)

// maxCoordKeyChars is the length of SFM's coordinate_key column: a
// coordinate whose key is longer cannot be written there.
const maxCoordKeyChars = 512

// coord is a parsed coordinate: its numbers and the key SFM files it under.
type coord struct {
	key    string // str() of each number, joined by "," ("1.0,2.0,3.0")
	values []float64
}

// parseCoord reads a coordinate as SFM's safe_parse_coord does: split on
// ",", blank parts dropped, each part read with Python's float(). Any
// number of parts is accepted; the memory is keyed by the numbers, so
// "1,2,3" and "1.0, 2.0, 3e0" name the same memory. The errors are SFM's
// 400 answers.
func parseCoord(text string) (coord, error) {
	var c coord
	var key []byte
	for part := range strings.SplitSeq(text, ",") {
		if strings.TrimFunc(part, pyfloat.IsSpace) == "" {
			continue
		}
		f, err := pyfloat.Parse(part)
		if err != nil {
			return coord{}, &coordError{message: sfmapi.MsgInvalidCoordPrefix + text}
		}
		if len(key) > 0 {
			key = append(key, ',')
		}
		key = pyfloat.Append(key, f)
		c.values = append(c.values, f)
	}
	if len(c.values) == 0 {
		return coord{}, &coordError{message: sfmapi.MsgCoordinateEmpty}
	}
	c.key = string(key)
	return c, nil
}

// storable reports whether SFM's coordinate_key column can hold the key.
func (c coord) storable() bool {
	return utf8.RuneCountInString(c.key) <= maxCoordKeyChars
}

// coordFromKey reads back a key parseCoord made.
func coordFromKey(key string) []float64 {
	var values []float64
	for part := range strings.SplitSeq(key, ",") {
		f, _ := pyfloat.Parse(part)
		values = append(values, f)
	}
	return values
}

// coordError is SFM's answer to a coordinate it cannot read; it wraps
// ErrInvalidCoord.
type coordError struct{ message string }

func (e *coordError) Error() string { return e.message }
func (e *coordError) Unwrap() error { return ErrInvalidCoord }
