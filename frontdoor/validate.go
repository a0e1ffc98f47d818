package frontdoor

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/jetbox-dev/jetbox/internal/pyfloat"
	"github.com/jetbox-dev/jetbox/internal/sfmapi"
	"github.com/jetbox-dev/jetbox/internal/text"
	"github.com/jetbox-dev/jetbox/streams"
)

// SFM's request bodies, checked the way its Django Ninja routes check them
// (pydantic models MemoryStoreRequest and GraphLinkRequest, the body
// parameter named req), so that a body SFM would refuse is refused with
// SFM's answer before it enters the outbox.

// fieldKind is what a body field accepts, as pydantic's lax mode does.
type fieldKind int

const (
	kindString     fieldKind = iota // str
	kindObject                      // dict[str, Any]
	kindMemoryType                  // Literal["episodic", "semantic"]
	kindOptString                   // str | None
	kindFloat                       // float: a number, a numeric string or a bool
	kindOptObject                   // dict[str, Any] | None
)

type field struct {
	name     string
	kind     fieldKind
	required bool
}

type schema struct {
	class  string // the pydantic model, named in a model_type error
	fields []field
}

var (
	storeSchema = schema{class: "MemoryStoreRequest", fields: []field{
		{"coord", kindString, true}, {"payload", kindObject, true}, {"memory_type", kindMemoryType, false},
	}}
	linkSchema = schema{class: "GraphLinkRequest", fields: []field{
		{"from_coord", kindString, true}, {"to_coord", kindString, true}, {"link_type", kindOptString, false},
		{"strength", kindFloat, false}, {"metadata", kindOptObject, false},
	}}
)

// validationError is one entry of Ninja's 422 answer,
// {"detail": [{"type", "loc", "msg"[, "ctx"]}, ...]}.
type validationError struct {
	typ string
	loc []string // after "body", "req"
	msg string
	ctx [2]string // the one entry of its ctx, if any: key, value
}

// refusal is an answer the front door gives instead of writing.
type refusal struct {
	status int
	body   []byte
	// allow, when set, is a 405's Allow header: Ninja answers it in plain
	// text, not JSON.
	allow string
}

func (r *refusal) Error() string { return fmt.Sprintf("refused with HTTP %d", r.status) }

func refuse(status int, msg string) *refusal { return &refusal{status: status, body: detail(msg)} }

// unprocessable is Ninja's 422 answer for errs.
func unprocessable(errs []validationError) *refusal {
	list := []byte{'['}
	for i, e := range errs {
		if i > 0 {
			list = append(list, ", "...)
		}
		loc := []byte(`["body", "req"`)
		for _, l := range e.loc {
			loc = append(loc, ", "...)
			loc = appendPyString(loc, l)
		}
		loc = append(loc, ']')
		var o pyObject
		o.str("type", e.typ).raw("loc", loc).str("msg", e.msg)
		if e.ctx[0] != "" {
			var ctx pyObject
			o.raw("ctx", ctx.str(e.ctx[0], e.ctx[1]).bytes())
		}
		list = append(list, o.bytes()...)
	}
	list = append(list, ']')
	var o pyObject
	return &refusal{status: 422, body: o.raw("detail", list).bytes()}
}

// errCannotParse is Ninja's answer to a body that is not JSON.
var errCannotParse = refuse(400, sfmapi.MsgCannotParseBody)

// decodeBody checks body against s and returns its fields as raw JSON.
func decodeBody(body []byte, s schema) (map[string]json.RawMessage, *refusal) {
	if len(body) == 0 {
		return nil, unprocessable([]validationError{{typ: "missing", msg: "Field required"}})
	}
	if !utf8.Valid(body) || !json.Valid(body) {
		return nil, errCannotParse
	}
	trimmed := bytes.TrimSpace(body)
	if trimmed[0] != '{' {
		return nil, unprocessable([]validationError{{typ: "model_type",
			msg: "Input should be a valid dictionary or instance of " + s.class, ctx: [2]string{"class_name", s.class}}})
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &fields); err != nil {
		return nil, errCannotParse
	}
	var errs []validationError
	for _, f := range s.fields {
		raw, present := fields[f.name]
		if !present {
			if f.required {
				errs = append(errs, validationError{typ: "missing", loc: []string{f.name}, msg: "Field required"})
			}
			continue
		}
		if e, ok := checkField(f, raw); !ok {
			errs = append(errs, e)
		}
	}
	if errs != nil {
		return nil, unprocessable(errs)
	}
	return fields, nil
}

// checkField applies pydantic's lax rule for f's type to raw.
func checkField(f field, raw json.RawMessage) (validationError, bool) {
	loc := []string{f.name}
	first := raw[0] // json.Valid held: raw is a trimmed, non-empty value
	switch f.kind {
	case kindString:
		if first != '"' {
			return validationError{typ: "string_type", loc: loc, msg: "Input should be a valid string"}, false
		}
	case kindOptString:
		if first != '"' && first != 'n' {
			return validationError{typ: "string_type", loc: loc, msg: "Input should be a valid string"}, false
		}
	case kindObject:
		if first != '{' {
			return validationError{typ: "dict_type", loc: loc, msg: "Input should be a valid dictionary"}, false
		}
	case kindOptObject:
		if first != '{' && first != 'n' {
			return validationError{typ: "dict_type", loc: loc, msg: "Input should be a valid dictionary"}, false
		}
	case kindMemoryType:
		var s string
		if first != '"' || json.Unmarshal(raw, &s) != nil || (s != streams.MemoryEpisodic && s != streams.MemorySemantic) {
			const expected = "'episodic' or 'semantic'"
			return validationError{typ: "literal_error", loc: loc, msg: "Input should be " + expected, ctx: [2]string{"expected", expected}}, false
		}
	case kindFloat:
		if _, err := parseFloatField(raw); err != nil {
			return validationError{typ: err.Error(), loc: loc, msg: floatMessages[err.Error()]}, false
		}
	}
	return validationError{}, true
}

var (
	errFloatType    = errors.New("float_type")
	errFloatParsing = errors.New("float_parsing")
	floatMessages   = map[string]string{
		"float_type":    "Input should be a valid number",
		"float_parsing": "Input should be a valid number, unable to parse string as a number",
	}
)

// parseFloatField reads a float field as pydantic does: a JSON number, a
// string holding one, or a bool.
func parseFloatField(raw json.RawMessage) (float64, error) {
	switch raw[0] {
	case 't':
		return 1, nil
	case 'f':
		return 0, nil
	case '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return 0, errFloatParsing
		}
		f, err := pyfloat.Parse(s)
		if err != nil {
			return 0, errFloatParsing
		}
		return f, nil
	case '{', '[', 'n':
		return 0, errFloatType
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) { // 1e400 is inf to Python
		return 0, errFloatType
	}
	return f, nil
}

// checkCoord refuses a coordinate as SFM's safe_parse_coord does (parts
// split on ',', stripped, blanks dropped, each a Python float; 400), then
// one SFM would accept but jetbox cannot carry: jetbox's outbox keys a
// memory by exactly three finite numbers (streams.ParseCoord).
func checkCoord(coord string) *refusal {
	var parts []string
	for _, p := range strings.Split(coord, ",") {
		if p = strings.TrimSpace(p); p != "" {
			parts = append(parts, p)
		}
	}
	if len(parts) == 0 {
		return refuse(400, sfmapi.MsgCoordinateEmpty)
	}
	for _, p := range parts {
		if _, err := pyfloat.Parse(p); err != nil {
			return refuse(400, sfmapi.MsgInvalidCoordPrefix+coord)
		}
	}
	if _, err := streams.ParseCoord(coord); err != nil {
		msg := fmt.Sprintf("coordinate %q: jetbox carries coordinates of exactly three comma-separated finite decimal numbers", text.Clip(coord, 64))
		if len(parts) != 3 {
			msg += fmt.Sprintf(", this one has %d", len(parts))
		}
		return refuse(400, msg)
	}
	return nil
}
