package producer

import (
	"encoding/binary"

	"golang.org/x/crypto/blake2b"

	"github.com/jetbox-dev/jetbox/internal/pyfloat"
)

// DefaultUniverse is the coordinate universe when Config.Universe is empty.
const DefaultUniverse = "real"

// CoordFromKey derives a memory's coordinate from a key the way SomaBrain
// does: blake2b with a 12-byte digest of "<universe>::<key>", split into three
// big-endian uint32, each mapped to 2*(u/2^32) - 1, formatted "x,y,z" with
// Python's str(float), so that Go and Python producers name the same memory.
func CoordFromKey(universe, key string) string {
	h, err := blake2b.New(12, nil)
	if err != nil {
		panic("blake2b: " + err.Error()) // only for a size outside 1..64
	}
	h.Write([]byte(universe))
	h.Write([]byte("::"))
	h.Write([]byte(key))
	var sum [12]byte
	h.Sum(sum[:0])

	out := make([]byte, 0, 64)
	for i := 0; i < 3; i++ {
		if i > 0 {
			out = append(out, ',')
		}
		u := binary.BigEndian.Uint32(sum[4*i:])
		out = pyfloat.Append(out, 2*(float64(u)/(1<<32))-1)
	}
	return string(out)
}

// FormatCoord writes a coordinate as SomaBrain does ("x,y,z", each number
// as Python's str(float)), for callers that hold the numbers rather than
// the text, such as rows of SomaBrain's database outbox.
func FormatCoord(xyz [3]float64) string {
	out := make([]byte, 0, 64)
	for i, f := range xyz {
		if i > 0 {
			out = append(out, ',')
		}
		out = pyfloat.Append(out, f)
	}
	return string(out)
}
