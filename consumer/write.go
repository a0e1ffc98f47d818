package consumer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetbox-dev/jetbox/internal/text"
	"github.com/jetbox-dev/jetbox/streams"
)

// ErrBadInput is wrapped by every reason a message cannot be applied at all.
var ErrBadInput = errors.New("bad input")

// BadInputError says why a message was dead-lettered without an attempt.
type BadInputError struct{ Reason string }

func (e *BadInputError) Error() string        { return "bad input: " + e.Reason }
func (e *BadInputError) Is(target error) bool { return target == ErrBadInput }

func badInput(format string, args ...any) error {
	return &BadInputError{Reason: fmt.Sprintf(format, args...)}
}

// write is a decoded outbox message, ready to be sent to the memory API.
type write struct {
	addr           streams.Address
	namespace      string
	idempotencyKey string
	requestID      string
	traceparent    string
	tracestate     string
	replyTo        string
	method         string
	path           string
	body           []byte // sent as is; nil for DELETE
	coord          string // the coord the write touches (for logs and order)
	attempts       int    // failed attempts counted so far, 0 if none here
}

// decodeWrite checks a message against the contract. Anything it refuses is
// dead-lettered with the reason; nothing it accepts can be malformed on the
// wire to the memory API. The write it returns with an error carries what
// could be read, so the dead letter keeps the idempotency key and a sync
// caller still hears that its write was refused.
func decodeWrite(msg jetstream.Msg, streamSeq uint64, replyPrefixes []string) (*write, error) {
	h := msg.Headers()
	w := &write{idempotencyKey: h.Get(streams.HeaderIdempotencyKey)}
	if w.idempotencyKey == "" {
		w.idempotencyKey = h.Get(streams.HeaderMsgID)
	}
	if w.idempotencyKey == "" {
		// A raw client that sets neither still gets exactly-once: the stream
		// sequence is unique and survives redelivery.
		w.idempotencyKey = "jetbox-seq-" + strconv.FormatUint(streamSeq, 10)
	}
	if isSyncSubject(msg.Subject()) {
		// Only a checked subject is ever kept: the worker publishes the
		// outcome there, and a forged $JS.API subject would be obeyed.
		if replyTo := h.Get(streams.HeaderReplyTo); replyTo != "" {
			if err := checkReplyTo(replyTo, replyPrefixes); err != nil {
				return w, badInput("%s: %v", streams.HeaderReplyTo, err)
			}
			w.replyTo = replyTo
		}
	}
	addr, err := streams.ParseSubject(msg.Subject())
	if err != nil {
		return w, badInput("%v", err)
	}
	w.addr = addr
	if t := h.Get(streams.HeaderTenant); t != "" && t != addr.Tenant {
		return w, badInput("header %s %q disagrees with the subject's tenant %q", streams.HeaderTenant, text.Clip(t, 64), text.Clip(addr.Tenant, 64))
	}
	w.namespace = h.Get(streams.HeaderNamespace)
	w.requestID = h.Get(streams.HeaderRequestID)
	w.traceparent = h.Get(streams.HeaderTraceparent)
	w.tracestate = h.Get(streams.HeaderTracestate)
	for _, hv := range []struct{ name, value string }{
		{"idempotency key", w.idempotencyKey},
		{streams.HeaderRequestID, w.requestID},
		{streams.HeaderNamespace, w.namespace},
		{streams.HeaderTraceparent, w.traceparent},
		{streams.HeaderTracestate, w.tracestate},
	} {
		if err := streams.CheckHeaderValue(hv.value); err != nil {
			return w, badInput("%s: %v", hv.name, err)
		}
	}
	if err := w.decodeBody(msg.Data()); err != nil {
		return w, err
	}
	return w, nil
}

// isSyncSubject reads the mode token without trusting the rest.
func isSyncSubject(subject string) bool {
	parts := strings.SplitN(subject, ".", 4)
	return len(parts) >= 3 && parts[2] == string(streams.ModeSync)
}

// reservedReplyPrefixes are subjects a reply must never reach, whatever
// prefixes are allowed.
var reservedReplyPrefixes = []string{"$", streams.SubjectPrefix + ".", streams.DLQSubjectPrefix + ".", streams.ParkedSubjectPrefix + "."}

// checkReplyTo accepts a literal subject under one of the allowed prefixes
// (by default the inboxes NATS clients make), outside the reserved ones.
func checkReplyTo(subject string, allowed []string) error {
	if strings.ContainsAny(subject, " \t\r\n*>") || strings.HasPrefix(subject, ".") || strings.HasSuffix(subject, ".") || strings.Contains(subject, "..") {
		return fmt.Errorf("%q is not a literal subject", text.Clip(subject, 64))
	}
	for _, p := range reservedReplyPrefixes {
		if strings.HasPrefix(subject, p) {
			return fmt.Errorf("%q is in the reserved %q namespace", text.Clip(subject, 64), p)
		}
	}
	for _, p := range allowed {
		if strings.HasPrefix(subject, p) {
			return nil
		}
	}
	return fmt.Errorf("%q is not under an allowed reply prefix (%s)", text.Clip(subject, 64), strings.Join(allowed, ", "))
}

type storeBody struct {
	Coord      *string         `json:"coord"`
	Payload    json.RawMessage `json:"payload"`
	MemoryType *string         `json:"memory_type"`
}

type deleteBody struct {
	Coord *string `json:"coord"`
}

type linkBody struct {
	FromCoord *string  `json:"from_coord"`
	ToCoord   *string  `json:"to_coord"`
	LinkType  *string  `json:"link_type"`
	Weight    *float64 `json:"weight"`
}

func (w *write) decodeBody(data []byte) error {
	if len(data) == 0 {
		return badInput("empty body")
	}
	if !json.Valid(data) {
		return badInput("body is not valid JSON")
	}
	// encoding/json lets invalid UTF-8 through, keeps the last of two equal
	// keys and matches keys in any case; a memory API may do none of these,
	// and then it would apply something other than what was checked here.
	if !utf8.Valid(data) {
		return badInput("body is not valid UTF-8")
	}
	if err := checkKeys(data); err != nil {
		return err
	}
	switch w.addr.Op {
	case streams.OpStore:
		var b storeBody
		if err := json.Unmarshal(data, &b); err != nil {
			return badInput("store body: %v", err)
		}
		if err := checkCoord("coord", b.Coord); err != nil {
			return err
		}
		if len(b.Payload) == 0 || b.Payload[0] != '{' {
			return badInput("store body: payload must be a JSON object")
		}
		if b.MemoryType != nil {
			if err := streams.CheckMemoryType(*b.MemoryType); err != nil {
				return badInput("store body: %v", err)
			}
		}
		w.method, w.path, w.body, w.coord = "POST", "/memories", data, *b.Coord
	case streams.OpDelete:
		var b deleteBody
		if err := json.Unmarshal(data, &b); err != nil {
			return badInput("delete body: %v", err)
		}
		if err := checkCoord("coord", b.Coord); err != nil {
			return err
		}
		w.method, w.path, w.coord = "DELETE", "/memories/"+escapePath(*b.Coord), *b.Coord
	case streams.OpLink:
		var b linkBody
		if err := json.Unmarshal(data, &b); err != nil {
			return badInput("link body: %v", err)
		}
		if err := checkCoord("from_coord", b.FromCoord); err != nil {
			return err
		}
		if err := checkCoord("to_coord", b.ToCoord); err != nil {
			return err
		}
		if b.LinkType == nil || *b.LinkType == "" {
			return badInput("link body: link_type is required")
		}
		if b.Weight != nil && (math.IsNaN(*b.Weight) || math.IsInf(*b.Weight, 0)) {
			return badInput("link body: weight must be finite")
		}
		w.method, w.path, w.body, w.coord = "POST", "/graph/link", data, *b.FromCoord
	}
	return nil
}

// bodyFields are the body fields the worker checks, in any op.
var bodyFields = []string{"coord", "payload", "memory_type", "from_coord", "to_coord", "link_type", "weight"}

// checkKeys refuses the top-level keys encoding/json reads differently
// from a memory API: a key given twice (it keeps the last value) and a key
// that matches a checked field only case-insensitively (it takes it for
// the field, a Python memory API does not). data is valid JSON.
func checkKeys(data []byte) error {
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

func checkCoord(field string, coord *string) error {
	if coord == nil {
		return badInput("%s is required", field)
	}
	if _, err := streams.ParseCoord(*coord); err != nil {
		return badInput("%s: %v", field, err)
	}
	return nil
}

// escapePath escapes a coord for a URL path segment; commas and signs stay.
func escapePath(coord string) string {
	var sb strings.Builder
	for i := 0; i < len(coord); i++ {
		c := coord[i]
		if c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || strings.IndexByte(",.-+_", c) >= 0 {
			sb.WriteByte(c)
			continue
		}
		fmt.Fprintf(&sb, "%%%02X", c)
	}
	return sb.String()
}
