package intake

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/jetbox-dev/jetbox/consumer/internal/intake/intaketest"
	"github.com/jetbox-dev/jetbox/internal/jsonscan"
	"github.com/jetbox-dev/jetbox/internal/sfmapi"
	"github.com/jetbox-dev/jetbox/internal/text"
	"github.com/jetbox-dev/jetbox/streams"
)

// referenceDecodeBody is the body check as it was written with
// encoding/json alone, three passes (json.Valid, a token walk for the keys,
// json.Unmarshal): the oracle the single pass must agree with, refusal
// for refusal and word for word.
func referenceDecodeBody(op streams.Op, data []byte) (method, path, coord string, err error) {
	if len(data) == 0 {
		return "", "", "", badInput("empty body")
	}
	if !json.Valid(data) {
		return "", "", "", badInput("body is not valid JSON")
	}
	if !utf8.Valid(data) {
		return "", "", "", badInput("body is not valid UTF-8")
	}
	if err := referenceCheckKeys(data); err != nil {
		return "", "", "", err
	}
	switch op {
	case streams.OpStore:
		var b storeBody
		if err := json.Unmarshal(data, &b); err != nil {
			return "", "", "", badInput("store body: %v", err)
		}
		if err := referenceCheckCoord("coord", b.Coord); err != nil {
			return "", "", "", err
		}
		if len(b.Payload) == 0 || b.Payload[0] != '{' {
			return "", "", "", badInput("store body: payload must be a JSON object")
		}
		if b.MemoryType != nil {
			if err := streams.CheckMemoryType(*b.MemoryType); err != nil {
				return "", "", "", badInput("store body: %v", err)
			}
		}
		return "POST", "/memories", *b.Coord, nil
	case streams.OpDelete:
		var b deleteBody
		if err := json.Unmarshal(data, &b); err != nil {
			return "", "", "", badInput("delete body: %v", err)
		}
		if err := referenceCheckCoord("coord", b.Coord); err != nil {
			return "", "", "", err
		}
		return "DELETE", sfmapi.MemoryPath(*b.Coord), *b.Coord, nil
	default:
		var b linkBody
		if err := json.Unmarshal(data, &b); err != nil {
			return "", "", "", badInput("link body: %v", err)
		}
		if err := referenceCheckCoord("from_coord", b.FromCoord); err != nil {
			return "", "", "", err
		}
		if err := referenceCheckCoord("to_coord", b.ToCoord); err != nil {
			return "", "", "", err
		}
		return "POST", "/graph/link", *b.FromCoord, nil
	}
}

func referenceCheckCoord(field string, coord *string) error {
	if coord == nil {
		_, err := checkCoord(field, "", false)
		return err
	}
	_, err := checkCoord(field, *coord, true)
	return err
}

func referenceCheckKeys(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil
		}
		key, _ := tok.(string)
		if seen[key] {
			return badInput("body has the duplicate key %q", text.Clip(key, 64))
		}
		seen[key] = true
		for _, f := range bodyFields {
			if key != f && strings.EqualFold(key, f) {
				return badInput("body key %q is not %q: keys are case-sensitive", text.Clip(key, 64), f)
			}
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil
		}
	}
	return nil
}

// checkAgainstReference fails when the single pass and the reference differ
// on data for any op.
func checkAgainstReference(t *testing.T, data []byte) {
	t.Helper()
	var b scannedBody
	if got, want := b.scan(data), json.Valid(data); got != want {
		t.Fatalf("scan(%q) = %v, json.Valid says %v", clipBody(data), got, want)
	}
	for _, op := range []streams.Op{streams.OpStore, streams.OpDelete, streams.OpLink} {
		w := &Write{Addr: streams.Address{Op: op}}
		err := w.decodeBody(data)
		method, path, coord, refErr := referenceDecodeBody(op, data)
		if (err == nil) != (refErr == nil) || err != nil && err.Error() != refErr.Error() {
			t.Fatalf("%s body %q: error %v, the reference says %v", op, clipBody(data), err, refErr)
		}
		if err == nil && (w.Method != method || w.Path != path || w.Coord != coord) {
			t.Fatalf("%s body %q: %s %s coord %q, the reference says %s %s coord %q", op, clipBody(data), w.Method, w.Path, w.Coord, method, path, coord)
		}
		if err == nil && method == "POST" {
			checkForwarded(t, op, data, w.Body)
		}
	}
}

func clipBody(data []byte) string { return text.Clip(string(data), 200) }

// bodyCorpus is every body the other tests use, and the corners of the
// single pass: escapes, white space, numbers, nesting at the limit, many
// keys, case variants outside ASCII.
func bodyCorpus() []string {
	bodies := []string{
		intaketest.StoreBody, intaketest.OKStore,
		`{"coord":"1,2,3","payload":{"a":1},"memory_type":"semantic"}`,
		`{"from_coord":"1,2,3","to_coord":" -1.5e3 ,0,0","link_type":"related","weight":0.5}`,
		`{"coord":"0,0,0"}`,
		` { "coord" : "1,2,3" , "payload" : { } } `,
		"\t\r\n{\"coord\":\"1,2,3\",\"payload\":{}}\n",
		`{"co\u006frd":"1,2,3","payload":{}}`,
		`{"coord":"1\u002c2,3","payload":{}}`,
		`{"coord":"1,2,3","coord":"1,2,3","payload":{}}`,
		`{"coord":"1,2,3","co\u006frd":"x","payload":{}}`,
		`{"coord":"1,2,3","payload":{},"\u212Aey":1,"memory_type":"episodic"}`,
		"{\"coord\":\"1,2,3\",\"payload\":{},\"memory_\u017Fype\":\"x\"}",
		"{\"coord\":\"1,2,3\",\"payload\":{},\"\u212Aind\":1,\"lin\u212A_type\":\"x\"}",
		`{"coord":"1,2,3","payload":{},"memory_type":null}`,
		`{"coord":null,"payload":{}}`,
		`{"coord":"1,2,3","payload":{},"memory_type":"\u0065pisodic"}`,
		`{"coord":"\ud800,2,3","payload":{}}`,
		`{"from_coord":"1,2,3","to_coord":"3,2,1","link_type":"related","weight":-0.0e-0}`,
		`{"from_coord":"1,2,3","to_coord":"3,2,1","link_type":"related","weight":1e-999}`,
		`{"from_coord":"1,2,3","to_coord":"3,2,1","link_type":"related","weight":null}`,
		`{"from_coord":"1,2,3","to_coord":"3,2,1","link_type":"","weight":1}`,
		`{"from_coord":"1,2,3","to_coord":"3,2,1","link_type":"\"","weight":true}`,
		`{"coord":"1,2,3","payload":{"a":[1,-2.5,3e+2,4E-1,true,false,null,"\/\b\f\n\r\t\\"]}}`,
		`{"coord":"1,2,3","payload":{"a":01}}`, `{"coord":"1,2,3","payload":{"a":-}}`,
		`{"coord":"1,2,3","payload":{"a":1.}}`, `{"coord":"1,2,3","payload":{"a":1e}}`,
		`{"coord":"1,2,3","payload":{"a":.5}}`, `{"coord":"1,2,3","payload":{"a":+1}}`,
		`{"coord":"1,2,3","payload":{"a":tru}}`, `{"coord":"1,2,3","payload":{"a":nul}}`,
		`{"coord":"1,2,3","payload":{"a":"\x"}}`, `{"coord":"1,2,3","payload":{"a":"\u12G4"}}`,
		`{"coord":"1,2,3","payload":{,}}`, `{"coord":"1,2,3","payload":{"a":1,}}`,
		`{"coord":"1,2,3","payload":[1,]}`, `{"coord":"1,2,3","payload":{"a" 1}}`,
		`{"coord":"1,2,3","payload":{}}}`, `{"coord":"1,2,3","payload":{}} x`,
		`{"coord":"1,2,3" "payload":{}}`, `{1:2}`, `{}`, `[]`, `[ ]`, `null`, `true`, `false`, `0`, `-1.5e3`, `"s"`, `{"a":}`,
		`[{"coord":"1,2,3"}]`, " ", "\x00", "{\"coord\":\"1,2,3\",\"payload\":{\"t\":\"\xff\"}}",
	}
	many := `{"coord":"1,2,3","payload":{}`
	for i := 0; i < 40; i++ {
		many += `,"k` + strings.Repeat("x", i) + `":1`
	}
	bodies = append(bodies, many+`}`, many+`,"kxxx":2}`, many+`,"Payload":2}`, many+`,"coord":"1,2,3"}`)
	for _, depth := range []int{jsonscan.MaxDepth - 1, jsonscan.MaxDepth, jsonscan.MaxDepth + 1} {
		bodies = append(bodies,
			`{"coord":"1,2,3","payload":`+strings.Repeat(`{"a":`, depth-2)+`{}`+strings.Repeat(`}`, depth-1),
			strings.Repeat(`[`, depth)+strings.Repeat(`]`, depth))
	}
	for _, c := range intaketest.HostileMessages() {
		bodies = append(bodies, c.Body)
	}
	return bodies
}

// The single pass refuses what the three passes refused, with the same
// reason, and reads the same fields from what they accepted.
func TestDecodeBodyAgreesWithEncodingJSON(t *testing.T) {
	for _, body := range bodyCorpus() {
		checkAgainstReference(t, []byte(body))
	}
}

func FuzzDecodeBodyAgreesWithEncodingJSON(f *testing.F) {
	for _, body := range bodyCorpus() {
		f.Add([]byte(body))
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkAgainstReference(t, data) })
}

// checkForwarded fails unless sent holds exactly the memory API's own
// fields of data, with their values byte for byte, a link's weight sent
// as strength when strength is absent; and unless sent is data itself
// when data holds nothing else.
func checkForwarded(t *testing.T, op streams.Op, data, sent []byte) {
	t.Helper()
	var in, out map[string]json.RawMessage
	if err := json.Unmarshal(data, &in); err != nil {
		t.Fatalf("%s body %q: %v", op, clipBody(data), err)
	}
	if err := json.Unmarshal(sent, &out); err != nil {
		t.Fatalf("%s body %q forwarded as %q: %v", op, clipBody(data), clipBody(sent), err)
	}
	own := []string{"coord", "payload", "memory_type"}
	if op == streams.OpLink {
		own = []string{"from_coord", "to_coord", "link_type", "strength", "metadata"}
	}
	want := map[string]json.RawMessage{}
	for _, f := range own {
		if v, ok := in[f]; ok {
			want[f] = v
		}
	}
	if w, ok := in["weight"]; op == streams.OpLink && ok && string(w) != "null" && (want["strength"] == nil || string(want["strength"]) == "null") {
		want["strength"] = w
	}
	if len(out) != len(want) {
		t.Fatalf("%s body %q forwarded as %q, want the fields %v", op, clipBody(data), clipBody(sent), slices.Sorted(maps.Keys(want)))
	}
	for f, v := range want {
		if !bytes.Equal(out[f], v) {
			t.Fatalf("%s body %q: %s forwarded as %s, want %s", op, clipBody(data), f, out[f], v)
		}
	}
	if len(in) == len(want) && in["weight"] == nil && !bytes.Equal(sent, data) {
		t.Fatalf("%s body %q holds only the memory API's fields but was not forwarded as is", op, clipBody(data))
	}
}
