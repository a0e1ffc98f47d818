package tenancy_test

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/jetbox-dev/jetbox/tenancy"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		tenant string
		ok     bool
	}{
		{"empty", "", false},
		{"one byte", "a", true},
		{"128 bytes", strings.Repeat("a", 128), true},
		{"129 bytes", strings.Repeat("a", 129), false},
		{"128 bytes of multi-byte runes", strings.Repeat("é", 64), true},
		{"129 bytes ending in a multi-byte rune", strings.Repeat("a", 127) + "é", false},
		{"invalid UTF-8", "ab\xffcd", false},
		{"truncated rune", "caf\xc3", false},
		{"overlong encoding", "\xc0\xae", false},
		{"surrogate half", "\xed\xa0\x80", false},
		{"NUL", "a\x00b", false},
		{"tab", "a\tb", false},
		{"newline", "a\nb", false},
		{"unit separator", "a\x1fb", false},
		{"DEL", "a\x7fb", false},
		{"C1 first (U+0080)", "a\u0080b", false},
		{"C1 last (U+009F)", "a\u009fb", false},
		{"just after C1 (U+00A0)", "a\u00a0b", true},
		{"unicode", "théâtre-東京-🚀", true},
		{"spaces", "my tenant", true},
		{"only a space", " ", true},
		{"subject metacharacters", "a.b*c>d", true},
		{"tilde", "~", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tenancy.Validate(tt.tenant)
			if tt.ok {
				if err != nil {
					t.Fatalf("Validate(%q) = %v, want nil", tt.tenant, err)
				}
				return
			}
			assertInvalid(t, err, tt.tenant)
		})
	}
}

// assertInvalid checks that err is a tenancy error a caller can recognise.
func assertInvalid(t *testing.T, err error, input string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%q accepted, want an error", input)
	}
	if !errors.Is(err, tenancy.ErrInvalidTenant) {
		t.Errorf("%q: errors.Is(%v, ErrInvalidTenant) = false", input, err)
	}
	var ite *tenancy.InvalidTenantError
	if !errors.As(err, &ite) {
		t.Errorf("%q: errors.As(%v, *InvalidTenantError) = false", input, err)
	} else if ite.Reason == "" {
		t.Errorf("%q: InvalidTenantError has no reason", input)
	}
}

func TestResolve(t *testing.T) {
	tests := []struct {
		name                          string
		explicit, namespace, fallback string
		want                          string
	}{
		{"explicit wins over namespace and fallback", "acme", "memory:sandbox-tenant", "fb", "acme"},
		{"explicit kept verbatim", " acme ", "", "", " acme "},
		{"namespace last segment", "", "memory:sandbox-tenant", "fb", "sandbox-tenant"},
		{"namespace without colon", "", "solo", "fb", "solo"},
		{"namespace trailing colon", "", "a:b:", "fb", "b"},
		{"namespace several empty segments", "", "a:b:::", "fb", "b"},
		{"namespace only colons", "", "::", "fb", "fb"},
		{"namespace empty", "", "", "fb", "fb"},
		{"fallback empty", "", "", "", tenancy.DefaultTenant},
		{"only colons and no fallback", "", "::", "", "public"},
		{"unicode namespace", "", "memory:東京", "", "東京"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tenancy.Resolve(tt.explicit, tt.namespace, tt.fallback)
			if err != nil {
				t.Fatalf("Resolve(%q, %q, %q) error: %v", tt.explicit, tt.namespace, tt.fallback, err)
			}
			if got != tt.want {
				t.Fatalf("Resolve(%q, %q, %q) = %q, want %q", tt.explicit, tt.namespace, tt.fallback, got, tt.want)
			}
		})
	}
}

func TestResolveRejectsInvalidResult(t *testing.T) {
	tests := []struct {
		name                          string
		explicit, namespace, fallback string
	}{
		{"explicit too long", strings.Repeat("x", 129), "memory:ok", "ok"},
		{"explicit with control char", "a\nb", "memory:ok", "ok"},
		{"namespace segment with control char", "", "memory:a\x00b", "ok"},
		{"namespace segment invalid UTF-8", "", "memory:\xff", "ok"},
		{"fallback too long", "", "", strings.Repeat("x", 200)},
		{"fallback with DEL", "", "::", "a\x7f"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tenancy.Resolve(tt.explicit, tt.namespace, tt.fallback)
			if got != "" {
				t.Errorf("Resolve returned tenant %q alongside an error", got)
			}
			assertInvalid(t, err, tt.explicit+"|"+tt.namespace+"|"+tt.fallback)
		})
	}
}

func TestEncode(t *testing.T) {
	tests := []struct {
		tenant, token string
	}{
		{"sandbox-tenant", "sandbox-tenant"},
		{"Az09_-", "Az09_-"},
		{"~", "~7E"},
		{".", "~2E"},
		{"a.b", "a~2Eb"},
		{"*", "~2A"},
		{">", "~3E"},
		{" ", "~20"},
		{"my tenant", "my~20tenant"},
		{"a:b", "a~3Ab"},
		{"é", "~C3~A9"},
		{"東京", "~E6~9D~B1~E4~BA~AC"},
		{"🚀", "~F0~9F~9A~80"},
		{"\u00a0", "~C2~A0"},
	}
	for _, tt := range tests {
		got, err := tenancy.Encode(tt.tenant)
		if err != nil {
			t.Errorf("Encode(%q) error: %v", tt.tenant, err)
			continue
		}
		if got != tt.token {
			t.Errorf("Encode(%q) = %q, want %q", tt.tenant, got, tt.token)
		}
		back, err := tenancy.Decode(tt.token)
		if err != nil {
			t.Errorf("Decode(%q) error: %v", tt.token, err)
			continue
		}
		if back != tt.tenant {
			t.Errorf("Decode(%q) = %q, want %q", tt.token, back, tt.tenant)
		}
	}
}

func TestEncodeRejectsInvalidTenant(t *testing.T) {
	for _, tenant := range []string{"", strings.Repeat("a", 129), "a\x00", "\xff", "\u0085"} {
		token, err := tenancy.Encode(tenant)
		if token != "" {
			t.Errorf("Encode(%q) returned token %q alongside an error", tenant, token)
		}
		assertInvalid(t, err, tenant)
	}
}

func TestDecodeRejectsTokensEncodeCannotMake(t *testing.T) {
	tests := []struct {
		name, token string
	}{
		{"empty", ""},
		{"lower-case hex", "~2e"},
		{"lower-case hex, second digit", "~c3~a9"},
		{"escaped letter stands for itself", "~41"},
		{"escaped digit stands for itself", "~30"},
		{"escaped underscore stands for itself", "~5F"},
		{"escaped dash stands for itself", "~2D"},
		{"trailing tilde", "abc~"},
		{"only a tilde", "~"},
		{"one hex digit", "~4"},
		{"one hex digit after text", "ab~2"},
		{"non-hex digit", "~G0"},
		{"dot", "a.b"},
		{"star", "*"},
		{"greater-than", ">"},
		{"space", "a b"},
		{"tab", "a\tb"},
		{"raw colon", "a:b"},
		{"raw multi-byte", "é"},
		{"decodes to control char", "~0A"},
		{"decodes to NUL", "~00"},
		{"decodes to DEL", "~7F"},
		{"decodes to C1", "~C2~85"},
		{"decodes to invalid UTF-8", "~FF"},
		{"decodes to truncated rune", "~C3"},
		{"decodes to 129 bytes", strings.Repeat("a", 129)},
		{"decodes to 129 escaped bytes", strings.Repeat("~2E", 129)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tenancy.Decode(tt.token)
			if got != "" {
				t.Errorf("Decode(%q) returned tenant %q alongside an error", tt.token, got)
			}
			assertInvalid(t, err, tt.token)
		})
	}
}

func TestInvalidTenantErrorMessageIsBounded(t *testing.T) {
	for _, tenant := range []string{
		strings.Repeat("x", 1000),
		// 40 bytes in, the cut falls inside a two-byte rune.
		"a" + strings.Repeat("é", 100),
		"ab" + strings.Repeat("🚀", 50),
	} {
		err := tenancy.Validate(tenant)
		if err == nil {
			t.Fatalf("%d-byte tenant accepted", len(tenant))
		}
		msg := err.Error()
		if n := len(msg); n > 200 {
			t.Errorf("error message is %d bytes long, want the tenant truncated: %s", n, msg)
		}
		// The tenant is valid UTF-8, so quoting a clean cut of it needs no
		// byte escapes: one would mean the cut split a rune.
		if strings.Contains(msg, `\x`) {
			t.Errorf("error message shows a rune cut in half: %s", msg)
		}
		if !utf8.ValidString(msg) {
			t.Errorf("error message is not valid UTF-8: %q", msg)
		}
	}
}

// tokenByteAllowed is the alphabet of an encoded token.
func tokenByteAllowed(b byte) bool {
	return b >= 'A' && b <= 'Z' || b >= 'a' && b <= 'z' || b >= '0' && b <= '9' ||
		b == '_' || b == '-' || b == '~'
}

// fuzzSeeds are tenants, valid or not, worth starting from.
var fuzzSeeds = []string{
	"", "a", "public", "sandbox-tenant", "~", "~7E", ".", "a.b", "*", ">", " ", "\t",
	"\x00", "\x7f", "\u0080", "\u009f", "\u00a0", "é", "東京", "🚀", "\xff", "\xc3",
	"~41", "A", "_-", strings.Repeat("a", 128), strings.Repeat("a", 129),
	strings.Repeat("é", 64), strings.Repeat(".", 128), "memory.x.sync.store",
}

func FuzzEncodeRoundTrip(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tenant string) {
		token, err := tenancy.Encode(tenant)
		if tenancy.Validate(tenant) != nil {
			if err == nil {
				t.Fatalf("Encode(%q) accepted an invalid tenant: %q", tenant, token)
			}
			return
		}
		if err != nil {
			t.Fatalf("Encode(%q) of a valid tenant: %v", tenant, err)
		}
		if token == "" {
			t.Fatalf("Encode(%q) = empty token", tenant)
		}
		for i := 0; i < len(token); i++ {
			if !tokenByteAllowed(token[i]) {
				t.Fatalf("Encode(%q) = %q: byte 0x%02X at %d is not in A-Z a-z 0-9 _ - ~", tenant, token, token[i], i)
			}
		}
		if strings.ContainsAny(token, ".*> \t\r\n\v\f\x00") {
			t.Fatalf("Encode(%q) = %q contains a subject metacharacter or white space", tenant, token)
		}
		back, err := tenancy.Decode(token)
		if err != nil {
			t.Fatalf("Decode(Encode(%q) = %q): %v", tenant, token, err)
		}
		if back != tenant {
			t.Fatalf("Decode(Encode(%q)) = %q", tenant, back)
		}
	})
}

func FuzzDistinctTenantsDistinctTokens(f *testing.F) {
	pairs := [][2]string{
		{"a.b", "a~2Eb"}, {"~", "~7E"}, {"a", "A"}, {"é", "e"}, {" ", "~20"},
		{"a-b", "a_b"}, {"~41", "A"}, {"x", "x "}, {"東", "東京"},
	}
	for _, p := range pairs {
		f.Add(p[0], p[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		if a == b || tenancy.Validate(a) != nil || tenancy.Validate(b) != nil {
			return
		}
		ta, err := tenancy.Encode(a)
		if err != nil {
			t.Fatalf("Encode(%q): %v", a, err)
		}
		tb, err := tenancy.Encode(b)
		if err != nil {
			t.Fatalf("Encode(%q): %v", b, err)
		}
		if ta == tb {
			t.Fatalf("tenants %q and %q share the token %q", a, b, ta)
		}
	})
}

func FuzzDecode(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	for _, s := range []string{"~2E", "~2e", "~4", "abc~", "~C3~A9", "~F0~9F~9A~80", "~00", "~FF", "~7F", "~C2~85", "~5F", "~~", "~~7E"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		tenant, err := tenancy.Decode(token)
		if err != nil {
			if !errors.Is(err, tenancy.ErrInvalidTenant) {
				t.Fatalf("Decode(%q) error %v does not wrap ErrInvalidTenant", token, err)
			}
			if tenant != "" {
				t.Fatalf("Decode(%q) returned %q alongside an error", token, tenant)
			}
			return
		}
		if err := tenancy.Validate(tenant); err != nil {
			t.Fatalf("Decode(%q) = %q, which is not a valid tenant: %v", token, tenant, err)
		}
		again, err := tenancy.Encode(tenant)
		if err != nil {
			t.Fatalf("Encode(Decode(%q) = %q): %v", token, tenant, err)
		}
		if again != token {
			t.Fatalf("Decode(%q) = %q re-encodes to %q: two tokens for one tenant", token, tenant, again)
		}
	})
}
