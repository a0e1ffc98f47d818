package sfmapi

import (
	"net/http"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	for status, want := range map[int]Class{
		200: Applied, 201: Applied, 299: Applied,
		408: Transient, 425: Transient, 429: Transient, 500: Transient, 503: Transient, 599: Transient,
		302: Permanent, 400: Permanent, 401: Permanent, 404: Permanent, 409: Permanent, 422: Permanent,
	} {
		if got := Classify(status); got != want {
			t.Errorf("Classify(%d) = %d, want %d", status, got, want)
		}
	}
}

func TestIsMisconfiguration(t *testing.T) {
	for _, status := range []int{0, 200, 400, 405, 422, 500} {
		if IsMisconfiguration(status) {
			t.Errorf("IsMisconfiguration(%d) = true", status)
		}
	}
	for _, status := range []int{401, 403, 404} {
		if !IsMisconfiguration(status) {
			t.Errorf("IsMisconfiguration(%d) = false", status)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"":     0,
		"7":    7 * time.Second,
		" 3 ":  3 * time.Second,
		"-1":   0,
		"soon": 0,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Hour).Format(http.TimeFormat):       0,
	} {
		if got := ParseRetryAfter(v, now); got != want {
			t.Errorf("ParseRetryAfter(%q) = %v, want %v", v, got, want)
		}
	}
}

func TestMemoryPath(t *testing.T) {
	for coord, want := range map[string]string{
		"1,2,3":          "/memories/1,2,3",
		"1, 2, 3":        "/memories/1,%202,%203",
		"-1.5e+3,_,x/y?": "/memories/-1.5e+3,_,x%2Fy%3F",
		"é":              "/memories/%C3%A9",
	} {
		if got := MemoryPath(coord); got != want {
			t.Errorf("MemoryPath(%q) = %q, want %q", coord, got, want)
		}
	}
}

func TestBearer(t *testing.T) {
	if got := Bearer(""); got != "" {
		t.Errorf(`Bearer("") = %q, want ""`, got)
	}
	if got := Bearer("tok"); got != "Bearer tok" {
		t.Errorf(`Bearer("tok") = %q`, got)
	}
	for header, want := range map[string]string{
		"Bearer tok": "tok", "bearer tok": "tok", "BEARER a b": "a b",
		"": "", "Bearer": "", "Bearer ": "", "Basic tok": "", "Bearertok": "",
	} {
		got, ok := BearerToken(header)
		if got != want || ok != (want != "") {
			t.Errorf("BearerToken(%q) = %q, %v; want %q", header, got, ok, want)
		}
	}
}

func TestAppendBody(t *testing.T) {
	var fs Fields
	fs[FieldFromCoord] = []byte(`"1,2,3"`)
	fs[FieldToCoord] = []byte(`"4,5,6"`)
	fs[FieldStrength] = []byte(`0.5`)
	fs[FieldCoord] = []byte(`"7,8,9"`) // not a link field
	if got, want := string(fs.AppendBody([]byte("x"), LinkFields)), `x{"from_coord":"1,2,3","to_coord":"4,5,6","strength":0.5}`; got != want {
		t.Errorf("AppendBody = %s, want %s", got, want)
	}
	if got := string((&Fields{}).AppendBody(nil, StoreFields)); got != "{}" {
		t.Errorf("AppendBody of nothing = %s, want {}", got)
	}
}
