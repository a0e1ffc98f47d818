package producer

import "testing"

// A coordinate held as numbers is written as Python writes a tuple of
// floats joined by commas, so it names the memory SomaBrain names.
func TestFormatCoordIsPythonStrFloat(t *testing.T) {
	cases := map[[3]float64]string{
		{1, 2, 3}: "1.0,2.0,3.0",
		{-0.12503166683018208, -0.7219827054068446, 0.24664257746189833}: "-0.12503166683018208,-0.7219827054068446,0.24664257746189833",
		{1e-05, 1.5e16, 0}: "1e-05,1.5e+16,0.0",
	}
	for xyz, want := range cases {
		if got := FormatCoord(xyz); got != want {
			t.Errorf("FormatCoord(%v) = %s, want %s", xyz, got, want)
		}
	}
}
