package frontdoor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// SFM's answers are Python's json.dumps: the front door's derived answers
// are spelled the same, escapes included.
func TestAnswersAreSpelledAsPythonWritesThem(t *testing.T) {
	var o pyObject
	got := string(o.str("coord", "1,2,3").str("link_type", "café \"😀\"\n\x7f").boolean("ok", true).uint("stream_sequence", 42).bytes())
	// python3 -c 'import json; print(json.dumps({"coord": "1,2,3", "link_type": "café \"😀\"\n\x7f", "ok": True, "stream_sequence": 42}))'
	want := `{"coord": "1,2,3", "link_type": "caf\u00e9 \"\ud83d\ude00\"\n\u007f", "ok": true, "stream_sequence": 42}`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestLoadTokensFile(t *testing.T) {
	write := func(content string) string {
		p := filepath.Join(t.TempDir(), "tokens")
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	got, err := LoadTokensFile(write("# token tenant\ntok-a acme\n\n\ttok-b   acme eu  \n"))
	if err != nil || len(got) != 2 || got["tok-a"] != "acme" || got["tok-b"] != "acme eu" {
		t.Fatalf("got %v, %v", got, err)
	}
	for name, content := range map[string]string{
		"no tenant":      "tok-a\n",
		"token twice":    "tok-a acme\ntok-a globex\n",
		"invalid tenant": "tok-a " + strings.Repeat("x", 200) + "\n",
		"empty":          "# nothing\n",
	} {
		_, err := LoadTokensFile(write(content))
		if err == nil || strings.Contains(err.Error(), "tok-a") {
			t.Errorf("%s: error %v, want a refusal that does not quote the token", name, err)
		}
	}
}
