package jsonscan

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/jetbox-dev/jetbox/internal/text"
)

var jsonSeeds = []string{
	`{}`, `[]`, `""`, `0`, `-0`, `1.5e+10`, `-1.0E-2`, `true`, `false`, `null`,
	` {"a" : [1, 2.5, -3e2, true, false, null, {"b": "c"}], "d": {}} `,
	`{"s":"\" \\ \/ \b \f \n \r \t \u00e9 \uD83D\uDE00"}`,
	`{"é":"日本語 🔑"}`,
	`01`, `1.`, `.5`, `-`, `1e`, `1e+`, `+1`, `0x10`, `1_000`, `NaN`, `Infinity`,
	`{`, `}`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{,}`, `{"a":1 "b":2}`, `{a:1}`, `{'a':1}`,
	`[1,]`, `[,1]`, `[1 2]`, `["a\x"]`, `"\u12"`, `"\u12G4"`, "\"\x01\"", "\"a\tb\"",
	`tru`, `nul`, `falsey`, `{}{}`, `{} x`, ``, ` `, "\"\xff\"", "\"\xed\xa0\x80\"", "\"\xc3\"",
	`{"a":"b"`, `"abc`, `"abc\`, strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
	strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
}

// reference is what Valid must agree with.
func reference(data []byte) bool { return json.Valid(data) && utf8.Valid(data) }

func TestValidMatchesEncodingJSON(t *testing.T) {
	cases := append([]string(nil), jsonSeeds...)
	// Every special byte at every offset of strings around the eight-byte
	// stride of the string scanner.
	for n := range 20 {
		for pos := 0; pos <= n; pos++ {
			for _, special := range []string{`"`, `\`, `\"`, `\u00e9`, `\x`, "\x00", "\x01", "\x1f", " ", "\x7f", "é", "🔑", "\xff", "\xc3"} {
				cases = append(cases, `{"k":"`+strings.Repeat("a", pos)+special+strings.Repeat("b", n-pos)+`"}`)
			}
		}
	}
	for _, s := range cases {
		if got, want := Valid([]byte(s)), reference([]byte(s)); got != want {
			t.Errorf("Valid(%q) = %v, json.Valid says %v", text.Clip(s, 40), got, want)
		}
	}
}

func FuzzValid(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if got, want := Valid(data), reference(data); got != want {
			t.Errorf("Valid(%q) = %v, json.Valid says %v", data, got, want)
		}
	})
}

// benchPayload is a store payload of about 400 bytes.
var benchPayload = []byte(`{"text":"` + strings.Repeat("m", 400) + `"}`)

func BenchmarkValid(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchPayload)))
	for b.Loop() {
		Valid(benchPayload)
	}
}

// scan reads data with Members, collecting the members.
func scan(data []byte) (members []string, valid bool) {
	var m Members
	m.Start(data)
	for key, value, ok := m.Next(); ok; key, value, ok = m.Next() {
		members = append(members, string(key)+"="+string(value))
	}
	return members, m.Valid()
}

// Members judges as json.Valid does, invalid UTF-8 included, and hands
// over the top-level object's members as written, nested ones not.
func TestMembersMatchesEncodingJSONAndReadsTopLevelMembers(t *testing.T) {
	for _, s := range jsonSeeds {
		if _, got := scan([]byte(s)); got != json.Valid([]byte(s)) {
			t.Errorf("Members(%q).Valid() = %v, json.Valid says %v", text.Clip(s, 40), got, !got)
		}
	}
	got, ok := scan([]byte(` {"a" : [1, {"x": 2}], "b\u0063": {"y": "z"}, "d":"` + "\xff" + `"} `))
	want := []string{`"a"=[1, {"x": 2}]`, `"b\u0063"={"y": "z"}`, "\"d\"=\"\xff\""}
	if !ok || strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("Members = %v, members %q; want true, %q", ok, got, want)
	}
}
