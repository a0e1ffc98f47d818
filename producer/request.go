package producer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"unicode/utf8"

	"github.com/jetbox-dev/jetbox/internal/jsonscan"
	"github.com/jetbox-dev/jetbox/internal/pyfloat"
	"github.com/jetbox-dev/jetbox/internal/sfmapi"
	"github.com/jetbox-dev/jetbox/streams"
)

// Defaults of the request bodies.
const (
	DefaultMemoryType   = "episodic"
	DefaultLinkType     = sfmapi.DefaultLinkType     // SomaFractalMemory's default link type
	DefaultLinkStrength = sfmapi.DefaultLinkStrength // SomaFractalMemory's default strength
)

// StoreRequest writes a memory (POST /memories).
type StoreRequest struct {
	Tenant    string // raw tenant id; "" = from Namespace, else Config.DefaultTenant
	Namespace string // forwarded as Soma-Namespace; its last ':' segment names the tenant when Tenant is ""
	Coord     string // "x,y,z"; "" = derived from Key
	Key       string // used only when Coord is ""
	// Payload must encode to a JSON object: json.RawMessage or []byte holding
	// JSON, a map, a struct, or anything else json.Marshal turns into an object.
	Payload    any
	MemoryType string // "" = "episodic"
}

// DeleteRequest deletes a memory (DELETE /memories/{coord}).
type DeleteRequest struct {
	Tenant, Namespace string
	Coord, Key        string
}

// LinkRequest links two memories (POST /graph/link).
type LinkRequest struct {
	Tenant, Namespace string
	FromCoord         string // "" = derived from FromKey
	FromKey           string
	ToCoord           string // "" = derived from ToKey
	ToKey             string
	LinkType          string   // "" = "related"
	Strength          *float64 // nil = 1.0; any finite number, 0 included
	// Metadata is stored with the link; it must encode to a JSON object
	// (like Payload), or be nil.
	Metadata any
}

// encode returns the coord and the body of POST /memories,
// {"coord":"x,y,z","payload":{...},"memory_type":"episodic"}, written over dst.
func (r *StoreRequest) encode(universe string, dst []byte) (string, []byte, error) {
	coord, err := resolveCoord("coord", r.Coord, r.Key, universe)
	if err != nil {
		return "", nil, err
	}
	payload, err := encodePayload(r.Payload)
	if err != nil {
		return "", nil, err
	}
	memoryType := r.MemoryType
	if memoryType == "" {
		memoryType = DefaultMemoryType
	}
	if err := streams.CheckMemoryType(memoryType); err != nil {
		return "", nil, invalid("memory_type", err.Error())
	}
	body := slices.Grow(dst[:0], len(payload)+len(coord)+len(memoryType)+40)
	body = append(body, `{"coord":`...)
	body = appendJSONString(body, coord)
	body = append(body, `,"payload":`...)
	body = append(body, payload...)
	body = append(body, `,"memory_type":`...)
	body = appendJSONString(body, memoryType)
	return coord, append(body, '}'), nil
}

// encode returns the coord and the body {"coord":"x,y,z"}, written over dst.
func (r *DeleteRequest) encode(universe string, dst []byte) (string, []byte, error) {
	coord, err := resolveCoord("coord", r.Coord, r.Key, universe)
	if err != nil {
		return "", nil, err
	}
	body := append(dst[:0], `{"coord":`...)
	body = appendJSONString(body, coord)
	return coord, append(body, '}'), nil
}

// encode returns the from coord and the body of POST /graph/link,
// {"from_coord":"..","to_coord":"..","link_type":"..","strength":1.0} and
// "metadata" when given, written over dst.
func (r *LinkRequest) encode(universe string, dst []byte) (string, []byte, error) {
	from, err := resolveCoord("from_coord", r.FromCoord, r.FromKey, universe)
	if err != nil {
		return "", nil, err
	}
	to, err := resolveCoord("to_coord", r.ToCoord, r.ToKey, universe)
	if err != nil {
		return "", nil, err
	}
	linkType := r.LinkType
	if linkType == "" {
		linkType = DefaultLinkType
	}
	strength := DefaultLinkStrength
	if r.Strength != nil {
		strength = *r.Strength
	}
	if math.IsNaN(strength) || math.IsInf(strength, 0) {
		return "", nil, invalid("strength", "must be a finite number")
	}
	var metadata []byte
	if r.Metadata != nil {
		if metadata, err = encodeObject("metadata", r.Metadata); err != nil {
			return "", nil, err
		}
	}
	body := append(dst[:0], `{"from_coord":`...)
	body = appendJSONString(body, from)
	body = append(body, `,"to_coord":`...)
	body = appendJSONString(body, to)
	body = append(body, `,"link_type":`...)
	body = appendJSONString(body, linkType)
	body = append(body, `,"strength":`...)
	body = pyfloat.Append(body, strength)
	if metadata != nil {
		body = append(body, `,"metadata":`...)
		body = append(body, metadata...)
	}
	return from, append(body, '}'), nil
}

// resolveCoord returns the given coord after checking it, or derives one
// from key.
func resolveCoord(field, coord, key, universe string) (string, error) {
	switch {
	case coord != "":
		if _, err := streams.ParseCoord(coord); err != nil {
			return "", invalid(field, err.Error())
		}
		return coord, nil
	case key != "":
		return CoordFromKey(universe, key), nil
	}
	return "", invalid(field, "neither a coord nor a key given")
}

// encodePayload returns the payload as JSON and checks that it is an object.
// The error never quotes the payload.
func encodePayload(payload any) ([]byte, error) { return encodeObject("payload", payload) }

// encodeObject returns v as JSON and checks that it is an object; field
// names v in the error, which never quotes v.
func encodeObject(field string, v any) ([]byte, error) {
	var raw []byte
	switch p := v.(type) {
	case nil:
		return nil, invalid(field, "missing")
	case json.RawMessage:
		raw = bytes.TrimSpace(p)
	case []byte:
		raw = bytes.TrimSpace(p)
	default:
		b, err := json.Marshal(p)
		if err != nil {
			return nil, invalid(field, fmt.Sprintf("cannot be encoded as JSON (%T)", p))
		}
		if b[0] != '{' {
			return nil, invalid(field, "must be a JSON object")
		}
		return b, nil
	}
	if len(raw) == 0 || raw[0] != '{' {
		return nil, invalid(field, "must be a JSON object")
	}
	if !jsonscan.Valid(raw) {
		return nil, invalid(field, "not valid JSON in UTF-8")
	}
	return raw, nil
}

// appendJSONString appends s as a JSON string. Strings that need no escaping
// (every coord, nearly every type name) take the fast path.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			b, _ := json.Marshal(s) // a string always encodes
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}
