package pyfloat

import (
	"math"
	"testing"
)

// Python's float() and str().
func TestPythonFloats(t *testing.T) {
	for in, want := range map[string]float64{
		"1": 1, " 2.5 ": 2.5, "+3": 3, "-0": math.Copysign(0, -1), "1_000.5": 1000.5, ".5": 0.5, "5.": 5,
		"1e3": 1000, "1E-2": 0.01, "1e400": math.Inf(1), "-Infinity": math.Inf(-1), "INF": math.Inf(1),
	} {
		if got, err := Parse(in); err != nil || got != want || math.Signbit(got) != math.Signbit(want) {
			t.Errorf("Parse(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if f, err := Parse("nan"); err != nil || !math.IsNaN(f) {
		t.Errorf("Parse(nan) = %v, %v", f, err)
	}
	for _, bad := range []string{"", "x", "0x10", "1__0", "_1", "1_", "1_.0", "1e", "e5", "--1", "+-1", "1.2.3", "nan1", "1 2"} {
		if f, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) = %v, want an error", bad, f)
		}
	}
	for f, want := range map[float64]string{
		0: "0.0", math.Copysign(0, -1): "-0.0", 1: "1.0", 1e-5: "1e-05", 1e16: "1e+16", 1e15: "1000000000000000.0",
		0.1: "0.1", math.Inf(-1): "-inf",
	} {
		if got := string(Append(nil, f)); got != want {
			t.Errorf("Append(%v) = %s, want %s", f, got, want)
		}
	}
}

// The spellings pydantic's lax float reads from a JSON string, as Python's
// float() does.
func TestParseSpellings(t *testing.T) {
	for s, ok := range map[string]bool{
		"1": true, "-1.5": true, ".5": true, "5.": true, "1e3": true, "1_000": true, "inf": true, "-Infinity": true, "nan": true,
		"": false, "a": false, "0x10": false, "1__0": false, "_1": false, "1_": false, "--1": false, "1e": false,
	} {
		if _, err := Parse(s); (err == nil) != ok {
			t.Errorf("Parse(%q) err = %v, want ok %v", s, err, ok)
		}
	}
}
