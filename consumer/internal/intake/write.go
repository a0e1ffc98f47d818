// Package intake decodes an outbox message into a Write for the memory
// API. It owns the contract's checks on a pulled message: the subject, every
// header the worker forwards, the body of each op, and that every part of
// the message names the subject's tenant (the Soma-Tenant header, the
// namespace, a Nats-Msg-Id's tenant token). What it refuses is bad input
// (ErrBadInput), dead-lettered by the worker without an attempt; a Write it
// accepts cannot be malformed on the wire to the memory API, and carries
// only the body fields the memory API's contract names.
//
// A Write is the input of the delivery policy, never changed once decoded:
// what the worker learns by attempting it is kept apart.
package intake

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetbox-dev/jetbox/internal/jsonscan"
	"github.com/jetbox-dev/jetbox/internal/sfmapi"
	"github.com/jetbox-dev/jetbox/internal/text"
	"github.com/jetbox-dev/jetbox/streams"
	"github.com/jetbox-dev/jetbox/tenancy"
)

// ErrBadInput is wrapped by every reason a message cannot be applied at all.
var ErrBadInput = errors.New("bad input")

// BadInputError says why a message was dead-lettered without an attempt.
type BadInputError struct {
	Reason string
	// ForeignMsgID marks a write whose Nats-Msg-Id claims another tenant:
	// a possible attempt to make that tenant's write vanish as a duplicate.
	ForeignMsgID bool
}

func (e *BadInputError) Error() string        { return "bad input: " + e.Reason }
func (e *BadInputError) Is(target error) bool { return target == ErrBadInput }

func badInput(format string, args ...any) error {
	return &BadInputError{Reason: fmt.Sprintf(format, args...)}
}

// Write is a decoded outbox message, ready to be sent to the memory API.
// Its fields are read-only once Decode has returned it.
type Write struct {
	Addr           streams.Address
	Namespace      string
	IdempotencyKey string
	RequestID      string
	Traceparent    string
	Tracestate     string
	ReplyTo        string // where a sync write's outcome goes, checked; "" for none
	Method         string
	Path           string
	Body           []byte // sent as is; nil for DELETE
	Coord          string // the coord the write touches, as given (for logs)
	// Memory is the memory it touches: its coord's values, canonical, so
	// that writes to one memory share one order lane.
	Memory string
}

// Decode checks a message against the contract. Anything it refuses is
// bad input, which the worker dead-letters with the reason; nothing it
// accepts can be malformed on the wire to the memory API. streamSeq makes
// the idempotency key of a message that carries none. The write it returns with an error carries what
// could be read, so the dead letter keeps the idempotency key and a sync
// caller still hears that its write was refused.
func Decode(msg jetstream.Msg, streamSeq uint64, replyPrefixes []string) (*Write, error) {
	h := msg.Headers()
	w := &Write{IdempotencyKey: h.Get(streams.HeaderIdempotencyKey)}
	if w.IdempotencyKey == "" {
		w.IdempotencyKey = h.Get(streams.HeaderMsgID)
	}
	if w.IdempotencyKey == "" {
		// A raw client that sets neither still gets exactly-once: the stream
		// sequence is unique and survives redelivery.
		w.IdempotencyKey = "jetbox-seq-" + strconv.FormatUint(streamSeq, 10)
	}
	if isSyncSubject(msg.Subject()) {
		// Only a checked subject is ever kept: the worker publishes the
		// outcome there, and a forged $JS.API subject would be obeyed.
		if replyTo := h.Get(streams.HeaderReplyTo); replyTo != "" {
			if err := streams.CheckReplyTo(replyTo, replyPrefixes); err != nil {
				return w, badInput("%s: %v", streams.HeaderReplyTo, err)
			}
			w.ReplyTo = replyTo
		}
	}
	addr, err := streams.ParseSubject(msg.Subject())
	if err != nil {
		return w, badInput("%v", err)
	}
	w.Addr = addr
	if t := h.Get(streams.HeaderTenant); t != "" && t != addr.Tenant {
		return w, badInput("header %s %q disagrees with the subject's tenant %q", streams.HeaderTenant, text.Clip(t, 64), text.Clip(addr.Tenant, 64))
	}
	w.Namespace = h.Get(streams.HeaderNamespace)
	w.RequestID = h.Get(streams.HeaderRequestID)
	w.Traceparent = h.Get(streams.HeaderTraceparent)
	w.Tracestate = h.Get(streams.HeaderTracestate)
	for _, hv := range []struct{ name, value string }{
		{"idempotency key", w.IdempotencyKey},
		{streams.HeaderRequestID, w.RequestID},
		{streams.HeaderNamespace, w.Namespace},
		{streams.HeaderTraceparent, w.Traceparent},
		{streams.HeaderTracestate, w.Tracestate},
	} {
		if err := streams.CheckHeaderValue(hv.value); err != nil {
			return w, badInput("%s: %v", hv.name, err)
		}
	}
	// The memory API scopes a write by its namespace as much as by its
	// tenant: a namespace naming another tenant would write there.
	if w.Namespace != "" {
		if nt := tenancy.FromNamespace(w.Namespace); nt != addr.Tenant {
			return w, badInput("header %s %q names tenant %q, not the subject's tenant %q", streams.HeaderNamespace, text.Clip(w.Namespace, 64), text.Clip(nt, 64), text.Clip(addr.Tenant, 64))
		}
	}
	// The duplicate window is stream-wide: a write stored under another
	// tenant's id would make that tenant's write with the same id vanish as
	// a duplicate. Producers prefix the id with their own token, so an id
	// that claims another token is a pre-claim, never an honest write.
	if claimed, ok := streams.MsgIDTenantToken(h.Get(streams.HeaderMsgID)); ok && claimed != addr.Token {
		return w, &BadInputError{Reason: fmt.Sprintf("%s claims tenant token %q, not the subject's %q", streams.HeaderMsgID, text.Clip(claimed, 64), text.Clip(addr.Token, 64)), ForeignMsgID: true}
	}
	if err := w.decodeBody(msg.Data()); err != nil {
		return w, err
	}
	return w, nil
}

// isSyncSubject reads the mode token without trusting the rest: the
// second token of a stored subject (memory.<mode>.<partition>.<token>.<op>),
// the third of a write stored as published (memory.<token>.<mode>.<op>,
// which only a wildcard tenant token leaves unpartitioned).
func isSyncSubject(subject string) bool {
	_, rest, ok := strings.Cut(subject, ".")
	if !ok {
		return false
	}
	if strings.Count(rest, ".") != 3 {
		_, rest, ok = strings.Cut(rest, ".")
	}
	mode, _, _ := strings.Cut(rest, ".")
	return ok && mode == string(streams.ModeSync)
}

// storeBody, deleteBody and linkBody are the bodies as encoding/json sees
// them. decodeBody reads the fields in its own single pass; it unmarshals
// into these only to word a type error as encoding/json does, so that dead
// letters keep saying what they said.
type storeBody struct {
	Coord      *string         `json:"coord"`
	Payload    json.RawMessage `json:"payload"`
	MemoryType *string         `json:"memory_type"`
}

type deleteBody struct {
	Coord *string `json:"coord"`
}

type linkBody struct {
	FromCoord *string                     `json:"from_coord"`
	ToCoord   *string                     `json:"to_coord"`
	LinkType  *string                     `json:"link_type"`
	Strength  *float64                    `json:"strength"`
	Weight    *float64                    `json:"weight"`
	Metadata  *map[string]json.RawMessage `json:"metadata"`
}

// decodeBody checks the body in one pass: JSON validity, top-level keys and
// the op's fields, in the order of the reasons it gives (not JSON, not
// UTF-8, a key, a field's JSON type, a field's value).
func (w *Write) decodeBody(data []byte) error {
	if len(data) == 0 {
		return badInput("empty body")
	}
	var b scannedBody
	if !b.scan(data) {
		return badInput("body is not valid JSON")
	}
	// A memory API may refuse invalid UTF-8, or read it otherwise than
	// checked here.
	if !utf8.Valid(data) {
		return badInput("body is not valid UTF-8")
	}
	if b.keyErr != nil {
		return b.keyErr
	}
	switch w.Addr.Op {
	case streams.OpStore:
		coord, hasCoord, ok1 := b.str(sfmapi.FieldCoord)
		memoryType, hasMemoryType, ok2 := b.str(sfmapi.FieldMemoryType)
		if !b.object || !ok1 || !ok2 {
			return typeError("store", data, &storeBody{})
		}
		xyz, err := checkCoord("coord", coord, hasCoord)
		if err != nil {
			return err
		}
		w.Memory = memoryKey(xyz)
		if payload := b.fields[sfmapi.FieldPayload]; len(payload) == 0 || payload[0] != '{' {
			return badInput("store body: payload must be a JSON object")
		}
		if hasMemoryType {
			if err := streams.CheckMemoryType(memoryType); err != nil {
				return badInput("store body: %v", err)
			}
		}
		w.Method, w.Path, w.Body, w.Coord = http.MethodPost, sfmapi.PathMemories, b.forward(data, sfmapi.StoreFields), coord
	case streams.OpDelete:
		coord, hasCoord, ok := b.str(sfmapi.FieldCoord)
		if !b.object || !ok {
			return typeError("delete", data, &deleteBody{})
		}
		xyz, err := checkCoord("coord", coord, hasCoord)
		if err != nil {
			return err
		}
		w.Memory = memoryKey(xyz)
		w.Method, w.Path, w.Coord = http.MethodDelete, sfmapi.MemoryPath(coord), coord
	case streams.OpLink:
		from, hasFrom, ok1 := b.str(sfmapi.FieldFromCoord)
		to, hasTo, ok2 := b.str(sfmapi.FieldToCoord)
		_, _, ok3 := b.str(sfmapi.FieldLinkType)
		_, ok4 := b.number(sfmapi.FieldStrength)
		_, ok5 := b.number(fieldWeight)
		metadata := b.fields[sfmapi.FieldMetadata]
		ok6 := metadata == nil || metadata[0] == 'n' || metadata[0] == '{'
		if !b.object || !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 {
			return typeError("link", data, &linkBody{})
		}
		xyz, err := checkCoord("from_coord", from, hasFrom)
		if err != nil {
			return err
		}
		if _, err := checkCoord("to_coord", to, hasTo); err != nil {
			return err
		}
		w.Memory = memoryKey(xyz)
		w.Method, w.Path, w.Body, w.Coord = http.MethodPost, sfmapi.PathLink, b.forward(data, sfmapi.LinkFields), from
	}
	return nil
}

// typeError words a field of the wrong JSON type, or a body that is not an
// object, as encoding/json does. Only refused bodies pay for it.
func typeError(op string, data []byte, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		return badInput("%s body: %v", op, err)
	}
	return badInput("%s body: a field has the wrong JSON type", op)
}

// The body fields the worker reads: SFM's (sfmapi.Field), then weight,
// the name of strength in an earlier version of jetbox's contract.
const (
	fieldWeight = sfmapi.NumFields
	numFields   = fieldWeight + 1
)

var bodyFields = func() (names [numFields]string) {
	for f := range sfmapi.NumFields {
		names[f] = f.String()
	}
	names[fieldWeight] = "weight"
	return names
}()

// forward is the body sent to the memory API: data as is when it holds
// only the op's own fields (the usual case, and free), otherwise those
// fields rebuilt from their raw values. Nothing else reaches the memory
// API: a field it does not know could be read by a later version of it,
// or by another implementation, as something the tenant may not set. A
// link's weight is sent as strength when strength is absent, so writes
// stored before the rename keep their strength.
func (b *scannedBody) forward(data []byte, own []sfmapi.Field) []byte {
	weight := b.fields[fieldWeight]
	present := 0
	for _, f := range own {
		if b.fields[f] != nil {
			present++
		}
	}
	if present == b.nkeysTotal && weight == nil {
		return data
	}
	var fields sfmapi.Fields
	copy(fields[:], b.fields[:])
	if s := fields[sfmapi.FieldStrength]; (s == nil || s[0] == 'n') && weight != nil && weight[0] != 'n' {
		fields[sfmapi.FieldStrength] = weight
	}
	return fields.AppendBody(make([]byte, 0, len(data)), own)
}

// fewKeys is how many top-level keys a body may have before duplicates are
// looked up in a map rather than by comparing every pair.
const fewKeys = 16

// scannedBody is what one pass over a body found.
type scannedBody struct {
	// object is false when the body is an array, string, number or
	// boolean, from which no op's fields can be decoded (null decodes to
	// no fields).
	object bool
	// fields holds the raw value of each checked top-level field present.
	fields [numFields][]byte
	// keyErr is the first top-level key that encoding/json would read
	// otherwise than a memory API: one given twice (encoding/json keeps the
	// last value) or one matching a checked field only case-insensitively
	// (encoding/json takes it for the field, a Python memory API does not).
	keyErr error
	keys   [fewKeys][]byte // the first keys, unescaped
	nkeys  int
	// nkeysTotal counts every top-level key.
	nkeysTotal int
	more       map[string]struct{} // every key, once there are more than fewKeys
}

// str reads a string field. present is false when it is absent or null,
// ok false when it holds another JSON type.
func (b *scannedBody) str(field sfmapi.Field) (value string, present, ok bool) {
	raw := b.fields[field]
	switch {
	case raw == nil || raw[0] == 'n':
		return "", false, true
	case raw[0] != '"':
		return "", false, false
	}
	return unquote(raw), true, true
}

// number reads a number field as encoding/json does: 0 when absent or
// null, ok false when it holds another JSON type or overflows a float64.
func (b *scannedBody) number(field sfmapi.Field) (value float64, ok bool) {
	raw := b.fields[field]
	switch {
	case raw == nil || raw[0] == 'n':
		return 0, true
	case raw[0] != '-' && (raw[0] < '0' || raw[0] > '9'):
		return 0, false
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	return f, err == nil
}

// unquote reads a valid JSON string literal. Escapes are rare enough to be
// left to encoding/json, which also decides what a lone surrogate becomes.
func unquote(raw []byte) string {
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1])
	}
	var s string
	_ = json.Unmarshal(raw, &s) // raw is a valid string literal
	return s
}

// key records a top-level key and its value, and keeps the first key
// error.
func (b *scannedBody) key(raw, value []byte) {
	key := raw[1 : len(raw)-1]
	if bytes.IndexByte(key, '\\') >= 0 {
		key = []byte(unquote(raw))
	}
	b.nkeysTotal++
	for i, f := range bodyFields {
		if string(key) == f {
			b.fields[i] = value
		}
	}
	if b.keyErr != nil {
		return
	}
	if b.seen(key) {
		b.keyErr = badInput("body has the duplicate key %q", text.Clip(string(key), 64))
		return
	}
	for _, f := range bodyFields {
		if string(key) != f && bytes.EqualFold(key, []byte(f)) {
			b.keyErr = badInput("body key %q is not %q: keys are case-sensitive", text.Clip(string(key), 64), f)
			return
		}
	}
}

// seen tells whether key came before, and remembers it.
func (b *scannedBody) seen(key []byte) bool {
	if b.more != nil {
		if _, ok := b.more[string(key)]; ok {
			return true
		}
		b.more[string(key)] = struct{}{}
		return false
	}
	for _, k := range b.keys[:b.nkeys] {
		if bytes.Equal(k, key) {
			return true
		}
	}
	if b.nkeys < fewKeys {
		b.keys[b.nkeys] = key
		b.nkeys++
		return false
	}
	b.more = make(map[string]struct{}, 2*fewKeys)
	for _, k := range b.keys {
		b.more[string(k)] = struct{}{}
	}
	b.more[string(key)] = struct{}{}
	return false
}

// scan reads data, which is valid JSON exactly when json.Valid says so
// (nesting limit included), and records its top-level keys. It returns
// false when data is not valid JSON.
func (b *scannedBody) scan(data []byte) bool {
	start := 0
	for start < len(data) && (data[start] == ' ' || data[start] == '\t' || data[start] == '\n' || data[start] == '\r') {
		start++
	}
	// null has no fields, like an object without them.
	b.object = start < len(data) && (data[start] == '{' || data[start] == 'n')
	var m jsonscan.Members
	m.Start(data)
	for key, value, ok := m.Next(); ok; key, value, ok = m.Next() {
		b.key(key, value)
	}
	return m.Valid()
}

func checkCoord(field, coord string, present bool) ([3]float64, error) {
	if !present {
		return [3]float64{}, badInput("%s is required", field)
	}
	xyz, err := streams.ParseCoord(coord)
	if err != nil {
		return xyz, badInput("%s: %v", field, err)
	}
	return xyz, nil
}

// memoryKey names a memory by its coord's values, as the memory API keys
// memories: "1,2,3" and "1.0, 2.0, 3e0" are one memory, and so one lane.
func memoryKey(xyz [3]float64) string {
	b := make([]byte, 0, 64)
	for i, v := range xyz {
		if i > 0 {
			b = append(b, ',')
		}
		if v == 0 {
			v = 0 // -0 is 0
		}
		b = strconv.AppendFloat(b, v, 'g', -1, 64)
	}
	return string(b)
}
