package memapi

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/jetbox-dev/jetbox/streams"
)

// canonicalCoord parses "x,y,z" into the key a memory is stored under.
// SomaFractalMemory keys memories by the float triple, not by its spelling,
// so "1,2,3" and "1.0, 2.0, 3.0" name the same memory.
func canonicalCoord(coord string) (string, error) {
	xyz, err := streams.ParseCoord(coord)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalidCoord, err)
	}
	parts := make([]string, 3)
	for i, f := range xyz {
		if f == 0 {
			f = 0 // -0 and 0 are the same point
		}
		parts[i] = strconv.FormatFloat(f, 'g', -1, 64)
	}
	return strings.Join(parts, ","), nil
}
