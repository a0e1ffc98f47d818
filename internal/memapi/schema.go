package memapi

import (
	"bytes"
	"encoding/json"
	"math"
	"net/url"
	"strconv"
	"strings"

	"github.com/jetbox-dev/jetbox/internal/pyfloat"
	"github.com/jetbox-dev/jetbox/internal/sfmapi"
)

// SFM's routes are Django Ninja operations whose bodies and query
// parameters are pydantic models. This file validates them the same way:
// every field is checked, and a request with any failure is answered 422
// with Ninja's {"detail": [{"type", "loc", "msg"}, ...]}, before the route
// itself runs (so a bad coordinate next to a bad field is a 422, not a
// 400). Conversions are pydantic's lax ones: a float field takes 1, "1.5"
// and true; an int field takes 5, 5.0 and "5"; a str field takes only a
// string.

// fieldError is one item of a 422 answer's detail.
type fieldError struct {
	Type string            `json:"type"`
	Loc  []any             `json:"loc"`
	Msg  string            `json:"msg"`
	Ctx  map[string]string `json:"ctx,omitempty"`
}

// fields is a request's body or query, checked field by field.
type fields struct {
	loc    []any // where the fields come from: ("body", "req") or ("query",)
	values map[string]json.RawMessage
	errs   []fieldError
}

// bodyFields reads a JSON body as Ninja reads the single model parameter
// named req. A body that is not JSON is answered 400 at once (*answer
// non-nil); an empty one, or one that is not an object, is a 422 failure.
func bodyFields(body []byte, model string) (*fields, *answer) {
	f := &fields{loc: []any{"body", "req"}, values: map[string]json.RawMessage{}}
	trimmed := bytes.TrimSpace(body)
	switch {
	case len(body) == 0:
		f.fail(nil, "missing", "Field required")
	case !json.Valid(trimmed):
		a := detailAnswer(400, sfmapi.MsgCannotParseBody)
		return nil, &a
	case trimmed[0] != '{':
		f.errs = append(f.errs, fieldError{Type: "model_type", Loc: f.loc,
			Msg: "Input should be a valid dictionary or instance of " + model, Ctx: map[string]string{"class_name": model}})
	default:
		if err := json.Unmarshal(trimmed, &f.values); err != nil {
			a := detailAnswer(400, sfmapi.MsgCannotParseBody)
			return nil, &a
		}
	}
	return f, nil
}

// queryFields reads a URL query. Like Django's QueryDict, a repeated
// parameter counts with its last value.
func queryFields(q url.Values) *fields {
	f := &fields{loc: []any{"query"}, values: map[string]json.RawMessage{}}
	for name, vs := range q {
		v, _ := json.Marshal(vs[len(vs)-1])
		f.values[name] = v
	}
	return f
}

// failed returns the 422 answer when any field failed.
func (f *fields) failed() *answer {
	if len(f.errs) == 0 {
		return nil
	}
	a := jsonAnswer(422, map[string][]fieldError{"detail": f.errs})
	return &a
}

func (f *fields) fail(name *string, typ, msg string) {
	loc := append([]any(nil), f.loc...)
	if name != nil {
		loc = append(loc, *name)
	}
	f.errs = append(f.errs, fieldError{Type: typ, Loc: loc, Msg: msg})
}

// value decodes a field; present is false when it is absent.
func (f *fields) value(name string) (v any, present bool) {
	raw, ok := f.values[name]
	if !ok {
		return nil, false
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	_ = d.Decode(&v) // the body is valid JSON
	return v, true
}

// str is a required str field.
func (f *fields) str(name string) string {
	v, ok := f.value(name)
	if !ok {
		f.fail(&name, "missing", "Field required")
		return ""
	}
	s, ok := v.(string)
	if !ok {
		f.fail(&name, "string_type", "Input should be a valid string")
	}
	return s
}

// optionalStr is a `str | None = None` field; nil when absent or null.
func (f *fields) optionalStr(name string) *string {
	v, _ := f.value(name)
	if v == nil {
		return nil
	}
	s, ok := v.(string)
	if !ok {
		f.fail(&name, "string_type", "Input should be a valid string")
		return nil
	}
	return &s
}

// object is a `dict[str, Any]` field, required or `| None = None`; it
// returns the raw object, nil when absent or null.
func (f *fields) object(name string, required bool) json.RawMessage {
	v, present := f.value(name)
	switch {
	case !present && required:
		f.fail(&name, "missing", "Field required")
		return nil
	case v == nil && !required:
		return nil
	}
	if _, ok := v.(map[string]any); !ok {
		f.fail(&name, "dict_type", "Input should be a valid dictionary")
		return nil
	}
	var compact bytes.Buffer
	_ = json.Compact(&compact, f.values[name])
	return compact.Bytes()
}

// literal is a `Literal[...] = def` field.
func (f *fields) literal(name, def string, allowed ...string) string {
	v, present := f.value(name)
	if !present {
		return def
	}
	if s, ok := v.(string); ok {
		for _, a := range allowed {
			if s == a {
				return s
			}
		}
	}
	quoted := make([]string, len(allowed))
	for i, a := range allowed {
		quoted[i] = "'" + a + "'"
	}
	expected := strings.Join(quoted[:len(quoted)-1], ", ") + " or " + quoted[len(quoted)-1]
	f.errs = append(f.errs, fieldError{Type: "literal_error", Loc: append(append([]any(nil), f.loc...), name),
		Msg: "Input should be " + expected, Ctx: map[string]string{"expected": expected}})
	return def
}

// float is a `float = def` field.
func (f *fields) float(name string, def float64) float64 {
	v, present := f.value(name)
	if !present {
		return def
	}
	switch v := v.(type) {
	case json.Number:
		n, err := strconv.ParseFloat(string(v), 64)
		if err == nil || math.IsInf(n, 0) {
			return n
		}
	case bool:
		if v {
			return 1
		}
		return 0
	case string:
		if n, err := pyfloat.Parse(v); err == nil {
			return n
		}
		f.fail(&name, "float_parsing", "Input should be a valid number, unable to parse string as a number")
		return def
	}
	f.fail(&name, "float_type", "Input should be a valid number")
	return def
}

// integer is an `int = def` field.
func (f *fields) integer(name string, def int) int {
	v, present := f.value(name)
	if !present {
		return def
	}
	switch v := v.(type) {
	case json.Number:
		if n, err := strconv.Atoi(string(v)); err == nil {
			return n
		}
		if n, err := strconv.ParseFloat(string(v), 64); err == nil && n == math.Trunc(n) && math.Abs(n) < 1<<53 {
			return int(n)
		}
		f.fail(&name, "int_from_float", "Input should be a valid integer, got a number with a fractional part")
		return def
	case bool:
		if v {
			return 1
		}
		return 0
	case string:
		if n, err := strconv.Atoi(strings.TrimFunc(v, pyfloat.IsSpace)); err == nil {
			return n
		}
		f.fail(&name, "int_parsing", "Input should be a valid integer, unable to parse string as an integer")
		return def
	}
	f.fail(&name, "int_type", "Input should be a valid integer")
	return def
}
