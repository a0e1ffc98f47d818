package memapi

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// canonicalCoord parses "x,y,z" into the key a memory is stored under.
// SomaFractalMemory keys memories by the float triple, not by its spelling,
// so "1,2,3" and "1.0, 2.0, 3.0" name the same memory.
func canonicalCoord(coord string) (string, error) {
	parts := strings.Split(coord, ",")
	if len(parts) != 3 {
		return "", fmt.Errorf("%w %q: want three comma-separated finite numbers", ErrInvalidCoord, coord)
	}
	for i, part := range parts {
		f, err := strconv.ParseFloat(strings.TrimSpace(part), 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return "", fmt.Errorf("%w %q: want three comma-separated finite numbers", ErrInvalidCoord, coord)
		}
		if f == 0 {
			f = 0 // -0 and 0 are the same point
		}
		parts[i] = strconv.FormatFloat(f, 'g', -1, 64)
	}
	return strings.Join(parts, ","), nil
}
