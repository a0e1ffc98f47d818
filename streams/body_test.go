package streams

import (
	"errors"
	"strings"
	"testing"
)

func TestParseCoord(t *testing.T) {
	for coord, want := range map[string]bool{
		"0.1,-0.2,0.3":        true,
		"1,2,3":               true,
		" 1.0, 2e-5 , -3E+2 ": true,
		"1,2":                 false,
		"1,2,3,4":             false,
		"1,,3":                false,
		"1,2,inf":             false,
		"nan,0,0":             false,
		"0x1p-2,0,0":          false,
		"1_0,0,0":             false,
		"1e999,0,0":           false,
		"a,b,c":               false,
		"":                    false,
	} {
		_, err := ParseCoord(coord)
		if got := err == nil; got != want {
			t.Errorf("ParseCoord(%q): %v, want ok=%v", coord, err, want)
		}
		if err != nil && !errors.Is(err, ErrBadCoord) {
			t.Errorf("ParseCoord(%q): %v does not wrap ErrBadCoord", coord, err)
		}
	}
}

func TestCheckHeaderValue(t *testing.T) {
	for v, ok := range map[string]bool{
		"":                       true,
		"req-1":                  true,
		"ünïcode":                true,
		strings.Repeat("k", 256): true,
		strings.Repeat("k", 257): false,
		"a\x01b":                 false,
		"a\r\nInjected: yes":     false,
		"\xff":                   false,
	} {
		err := CheckHeaderValue(v)
		if (err == nil) != ok || (err != nil && !errors.Is(err, ErrBadHeaderValue)) {
			t.Errorf("CheckHeaderValue(%q) = %v, want ok=%v", v, err, ok)
		}
	}
}

func TestCheckMemoryType(t *testing.T) {
	if CheckMemoryType("episodic") != nil || CheckMemoryType("semantic") != nil {
		t.Fatal("a known memory type was refused")
	}
	if err := CheckMemoryType("procedural"); !errors.Is(err, ErrBadMemoryType) {
		t.Fatalf("unknown memory type: %v", err)
	}
}
