package memapi

import (
	"math"

	"github.com/jetbox-dev/jetbox/internal/pyfloat"
)

// pyJSONFloat marshals like Python's json.dumps of a float (repr: 1.0, not
// 1). SFM writes NaN, Infinity and -Infinity for the values JSON has no
// number for; strict JSON cannot carry them, so they are written as null.
type pyJSONFloat float64

func (f pyJSONFloat) MarshalJSON() ([]byte, error) {
	if v := float64(f); math.IsNaN(v) || math.IsInf(v, 0) {
		return []byte("null"), nil
	}
	return pyfloat.Append(nil, float64(f)), nil
}
