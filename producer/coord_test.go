package producer

import (
	"math"
	"strings"
	"testing"

	"github.com/jetbox-dev/jetbox/internal/pyfloat"
	"github.com/jetbox-dev/jetbox/internal/text"
)

// Computed with Python 3:
//
//	d = hashlib.blake2b(f"{universe}::{key}".encode(), digest_size=12).digest()
//	a, b, c = struct.unpack(">III", d)
//	x, y, z = (2 * (u / 2**32) - 1 for u in (a, b, c))
//	f"{x},{y},{z}"
var coordVectors = []struct{ universe, key, coord string }{
	{"real", "", "0.9683340853080153,-0.6695138774812222,-0.05751465354114771"},
	{"real", "user:42", "-0.04550429433584213,0.09763732366263866,-0.8688907474279404"},
	{"real", "hello world", "0.40851189102977514,-0.8692427901551127,0.07514766929671168"},
	{"real", "Ünïcødé ключ 🔑", "-0.7244977229274809,0.03668967867270112,-0.5755890575237572"},
	{"real", "日本語", "-0.7652733661234379,-0.25008364114910364,0.98510712524876"},
	{"sandbox", "user:42", "0.7890457361936569,-0.05694223893806338,-0.7328929388895631"},
	{"", "", "-0.46994283935055137,-0.12700796779245138,-0.8298700633458793"},
	{"real", strings.Repeat("a", 1000), "0.19980861200019717,-0.10586420772597194,0.8118423689156771"},
	{"real", "x::y", "0.487092518247664,-0.23244028445333242,0.2682652473449707"},
	{"real", "tab\tnewline\n", "-0.7414340577088296,0.5344393528066576,-0.9021866270340979"},
	// Components below 1e-4 print in exponent form.
	{"real", "k4706", "-3.839656710624695e-05,-0.2448146198876202,-0.48626937065273523"},
	{"real", "k14193", "9.449850767850876e-05,0.5737901912070811,0.920073929708451"},
}

func TestCoordFromKey(t *testing.T) {
	for _, v := range coordVectors {
		if got := CoordFromKey(v.universe, v.key); got != v.coord {
			t.Errorf("CoordFromKey(%q, %q) = %s, want %s", v.universe, text.Clip(v.key, 20), got, v.coord)
		}
	}
}

// Python's repr of each value.
func TestAppendPyFloat(t *testing.T) {
	for _, c := range []struct {
		f    float64
		want string
	}{
		{0, "0.0"},
		{math.Copysign(0, -1), "-0.0"},
		{1, "1.0"},
		{-1, "-1.0"},
		{0.5, "0.5"},
		{1e-5, "1e-05"},
		{1.5e-7, "1.5e-07"},
		{0.0001, "0.0001"},
		{0.00012345, "0.00012345"},
		{1e16, "1e+16"},
		{1e15, "1000000000000000.0"},
		{123456789012345.0, "123456789012345.0"},
		{1234567890123456.0, "1234567890123456.0"},
		{12345678901234567.0, "1.2345678901234568e+16"},
		{4.656612873077393e-10, "4.656612873077393e-10"},
		{-2.3283064365386963e-10, "-2.3283064365386963e-10"},
		{0.1, "0.1"},
		{1.0 / 3, "0.3333333333333333"},
		{math.Ldexp(1, -32), "2.3283064365386963e-10"},
		{1e22, "1e+22"},
		{1e-300, "1e-300"},
		{5e-324, "5e-324"},
		{math.MaxFloat64, "1.7976931348623157e+308"},
		{100, "100.0"},
		{9999999999999998.0, "9999999999999998.0"},
		{math.Inf(1), "inf"},
		{math.Inf(-1), "-inf"},
		{math.NaN(), "nan"},
	} {
		if got := string(pyfloat.Append(nil, c.f)); got != c.want {
			t.Errorf("pyfloat.Append(%v) = %s, want %s", c.f, got, c.want)
		}
	}
}

func BenchmarkCoordFromKey(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		CoordFromKey("real", "user:42")
	}
}
