package producer

import (
	"bytes"
	"encoding/binary"
	"math"
	"strconv"

	"golang.org/x/crypto/blake2b"
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
		out = appendPyFloat(out, 2*(float64(u)/(1<<32))-1)
	}
	return string(out)
}

// appendPyFloat formats f as Python's repr/str does: the shortest decimal that
// round-trips, in positional notation with at least one fractional digit
// ("1.0") when the decimal exponent is in [-4, 16), else in exponent notation
// with a signed, at least two-digit exponent ("1e-05", "1.5e+16").
func appendPyFloat(dst []byte, f float64) []byte {
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
	if exp := decimalExponent(sci); exp < -4 || exp >= 16 {
		return append(dst, sci...)
	}
	start := len(dst)
	dst = strconv.AppendFloat(dst, f, 'f', -1, 64)
	for _, c := range dst[start:] {
		if c == '.' {
			return dst
		}
	}
	return append(dst, ".0"...)
}

// decimalExponent reads the exponent of strconv's 'e' format ("-1.5e-07").
func decimalExponent(sci []byte) int {
	i := bytes.LastIndexByte(sci, 'e')
	neg := sci[i+1] == '-'
	exp := 0
	for _, c := range sci[i+2:] {
		exp = exp*10 + int(c-'0')
	}
	if neg {
		return -exp
	}
	return exp
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
		out = appendPyFloat(out, f)
	}
	return string(out)
}
