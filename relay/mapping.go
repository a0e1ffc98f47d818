package relay

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"

	"github.com/jetbox-dev/jetbox/internal/text"
	"github.com/jetbox-dev/jetbox/producer"
	"github.com/jetbox-dev/jetbox/streams"
)

// SomaBrain's topics that jetbox carries. The others it writes
// (graph.delete_link, wm.persist, wm.evict, wm.promote) have no
// counterpart in the memory API's write routes that jetbox applies.
const (
	TopicStore     = "memory.store"
	TopicBulkStore = "memory.bulk_store"
	TopicDelete    = "memory.delete"
	TopicLink      = "graph.link"
)

// CarriedTopics are the topics the relay moves; rows of any other topic
// are left pending, or marked failed when Config.FailUnknown is set.
var CarriedTopics = []string{TopicStore, TopicBulkStore, TopicDelete, TopicLink}

func carried(topic string) bool {
	switch topic {
	case TopicStore, TopicBulkStore, TopicDelete, TopicLink:
		return true
	}
	return false
}

// maxBulkItems bounds the writes one memory.bulk_store row may become.
const maxBulkItems = 10000

// row is one pending outbox_events row.
type row struct {
	id        int64
	topic     string
	payload   []byte
	dedupeKey string
	tenant    string // tenant_id, or the default tenant when NULL
}

// write is one jetbox write a row maps to, ready to publish.
type write struct {
	msg *nats.Msg
}

// mapper turns rows into writes with the relay's settings.
type mapper struct {
	mode       streams.Mode
	universe   string
	maxPayload func() int64 // the server's max payload, read at each row
}

// mapRow returns the writes of r, in order, or an error wrapping
// ErrUnknownTopic, ErrUnmappable or ErrTooLarge that says why it has none.
// Errors never quote the payload.
func (m *mapper) mapRow(r row) ([]write, error) {
	if !carried(r.topic) {
		return nil, fmt.Errorf("%w: %q", ErrUnknownTopic, text.Clip(r.topic, 64))
	}
	addrTenant := r.tenant
	fields, err := object(r.payload, "payload")
	if err != nil {
		return nil, err
	}
	requestID, err := optString(fields, "request_id")
	if err != nil {
		return nil, err
	}
	key := r.dedupeKey
	if key == "" {
		key = "soma-outbox-" + strconv.FormatInt(r.id, 10)
	}
	var ws []write
	add := func(op streams.Op, body []byte, key, requestID string) error {
		w, err := m.newWrite(addrTenant, op, body, key, requestID)
		if err == nil {
			ws = append(ws, w)
		}
		return err
	}
	switch r.topic {
	case TopicStore:
		body, err := m.storeBody(fields)
		if err != nil {
			return nil, err
		}
		err = add(streams.OpStore, body, key, requestID)
		return ws, err
	case TopicDelete:
		coord, err := m.coord(fields, "coord", "key", nil)
		if err != nil {
			return nil, err
		}
		body, _ := json.Marshal(struct {
			Coord string `json:"coord"`
		}{coord})
		return ws, add(streams.OpDelete, body, key, requestID)
	case TopicLink:
		body, err := linkBody(fields)
		if err != nil {
			return nil, err
		}
		return ws, add(streams.OpLink, body, key, requestID)
	}
	// TopicBulkStore: {"items": [item, ...]}, each item a memory.store
	// payload, or an item of SomaBrain's bulk request ({"key", "value",
	// "universe"}); one store per item, in order.
	var items []json.RawMessage
	if err := json.Unmarshal(fields["items"], &items); err != nil || len(items) == 0 {
		return nil, unmappable("items", "must be a non-empty array")
	}
	if len(items) > maxBulkItems {
		return nil, unmappable("items", fmt.Sprintf("%d items, at most %d", len(items), maxBulkItems))
	}
	for i, raw := range items {
		field := fmt.Sprintf("items[%d]", i)
		item, err := object(raw, field)
		if err != nil {
			return nil, err
		}
		body, err := m.storeBody(item)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", field, err)
		}
		itemRequestID, err := optString(item, "request_id")
		if err != nil {
			return nil, fmt.Errorf("%s: %w", field, err)
		}
		if itemRequestID == "" && requestID != "" {
			// SomaBrain's own per-item request id when it stores a bulk
			// one item at a time.
			itemRequestID = requestID + ":" + strconv.Itoa(i)
		}
		if err := add(streams.OpStore, body, key+":"+strconv.Itoa(i), itemRequestID); err != nil {
			return nil, fmt.Errorf("%s: %w", field, err)
		}
	}
	return ws, nil
}

// storeBody is the body of POST /memories from a memory.store payload:
// {"coord": [x, y, z] | "x,y,z", "payload": {...}, "memory_type": ...}, or
// with "key" instead of "coord" (SomaBrain's fast-ack path) and "value"
// instead of "payload" (its bulk items).
func (m *mapper) storeBody(fields map[string]json.RawMessage) ([]byte, error) {
	payloadField := "payload"
	if _, ok := fields[payloadField]; !ok {
		if _, ok := fields["value"]; ok {
			payloadField = "value"
		}
	}
	payload := bytes.TrimSpace(fields[payloadField])
	if len(payload) == 0 || payload[0] != '{' {
		return nil, unmappable(payloadField, "must be a JSON object")
	}
	inner, _ := object(payload, payloadField)
	coord, err := m.coord(fields, "coord", "key", inner)
	if err != nil {
		return nil, err
	}
	memoryType, err := optString(fields, "memory_type")
	if err != nil {
		return nil, err
	}
	if memoryType != "" {
		if err := streams.CheckMemoryType(memoryType); err != nil {
			return nil, unmappable("memory_type", err.Error())
		}
	} else if t, _ := optString(inner, "memory_type"); streams.CheckMemoryType(t) == nil {
		// What SomaBrain sends when it stores the memory itself.
		memoryType = t
	} else {
		memoryType = producer.DefaultMemoryType
	}
	return marshal(struct {
		Coord      string          `json:"coord"`
		Payload    json.RawMessage `json:"payload"`
		MemoryType string          `json:"memory_type"`
	}{coord, payload, memoryType})
}

// linkBody is the body of POST /graph/link with SomaFractalMemory's field
// names; absent optional fields stay absent, and an absent link type is
// SomaFractalMemory's default, "related" (the workers require one).
func linkBody(fields map[string]json.RawMessage) ([]byte, error) {
	from, err := coordValue(fields, "from_coord")
	if err != nil {
		return nil, err
	}
	to, err := coordValue(fields, "to_coord")
	if err != nil {
		return nil, err
	}
	linkType, err := optString(fields, "link_type")
	if err != nil {
		return nil, err
	}
	if linkType == "" {
		linkType = producer.DefaultLinkType
	}
	body := struct {
		FromCoord string          `json:"from_coord"`
		ToCoord   string          `json:"to_coord"`
		LinkType  string          `json:"link_type"`
		Strength  *float64        `json:"strength,omitempty"`
		Metadata  json.RawMessage `json:"metadata,omitempty"`
	}{FromCoord: from, ToCoord: to, LinkType: linkType}
	if raw := fields["strength"]; !isNull(raw) {
		var s float64
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, unmappable("strength", "must be a number")
		}
		body.Strength = &s
	}
	if raw := bytes.TrimSpace(fields["metadata"]); !isNull(raw) {
		if raw[0] != '{' {
			return nil, unmappable("metadata", "must be a JSON object")
		}
		body.Metadata = raw
	}
	return marshal(body)
}

// coord reads a coordinate field, or derives the coordinate from the key
// field as SomaBrain does: the universe is the item's "universe", else the
// stored payload's, else the relay's.
func (m *mapper) coord(fields map[string]json.RawMessage, coordField, keyField string, inner map[string]json.RawMessage) (string, error) {
	if _, ok := fields[coordField]; ok || fields[keyField] == nil {
		return coordValue(fields, coordField)
	}
	key, err := optString(fields, keyField)
	if err != nil || key == "" {
		return "", unmappable(keyField, "must be a non-empty string when there is no "+coordField)
	}
	universe, _ := optString(fields, "universe")
	if universe == "" {
		universe, _ = optString(inner, "universe")
	}
	if universe == "" {
		universe = m.universe
	}
	return producer.CoordFromKey(universe, key), nil
}

// coordValue reads a coordinate written as SomaBrain writes one: a list of
// three numbers (Python's list(coord)), which becomes "x,y,z" with each
// number as Python's str(float), or the text itself.
func coordValue(fields map[string]json.RawMessage, field string) (string, error) {
	raw := bytes.TrimSpace(fields[field])
	if isNull(raw) {
		return "", unmappable(field, "missing")
	}
	var coord string
	switch raw[0] {
	case '"':
		_ = json.Unmarshal(raw, &coord)
	case '[':
		var nums []json.Number
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&nums); err != nil {
			return "", unmappable(field, "must be a list of numbers")
		}
		if len(nums) != 3 {
			return "", unmappable(field, fmt.Sprintf("has %d numbers, want 3", len(nums)))
		}
		var xyz [3]float64
		for i, n := range nums {
			f, err := strconv.ParseFloat(string(n), 64)
			if err != nil {
				return "", unmappable(field, "holds a number out of range")
			}
			xyz[i] = f
		}
		coord = producer.FormatCoord(xyz)
	default:
		return "", unmappable(field, "must be a list of three numbers or a string")
	}
	if _, err := streams.ParseCoord(coord); err != nil {
		return "", unmappable(field, err.Error())
	}
	return coord, nil
}

// newWrite addresses a body and sets the headers of the wire contract,
// checking what the producer and the workers check.
func (m *mapper) newWrite(tenant string, op streams.Op, body []byte, key, requestID string) (write, error) {
	addr, err := streams.NewAddress(tenant, m.mode, op)
	if err != nil {
		return write{}, fmt.Errorf("%w: tenant: %v", ErrUnmappable, err)
	}
	for _, h := range [...]struct{ field, value string }{{"dedupe_key", key}, {"request_id", requestID}} {
		if err := streams.CheckHeaderValue(h.value); err != nil {
			return write{}, unmappable(h.field, err.Error())
		}
	}
	msg := nats.NewMsg(addr.Subject())
	msg.Data = body
	msg.Header.Set(streams.HeaderMsgID, addr.Token+":"+key)
	msg.Header.Set(streams.HeaderIdempotencyKey, key)
	msg.Header.Set(streams.HeaderTenant, tenant)
	if requestID != "" {
		msg.Header.Set(streams.HeaderRequestID, requestID)
	}
	if size, limit := msgSize(msg), m.maxPayload(); size > limit {
		return write{}, fmt.Errorf("%w: write of %d bytes exceeds the max payload of %d bytes", ErrTooLarge, size, limit)
	}
	return write{msg: msg}, nil
}

// msgSize is the body plus the header block as NATS encodes it, which the
// server's max payload bounds.
func msgSize(m *nats.Msg) int64 {
	n := int64(len(m.Data)) + int64(len("NATS/1.0\r\n\r\n"))
	for k, vs := range m.Header {
		for _, v := range vs {
			n += int64(len(k) + len(": \r\n") + len(v))
		}
	}
	return n
}

// object decodes a JSON object into its top-level fields.
func object(raw []byte, field string) (map[string]json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	var fields map[string]json.RawMessage
	if len(raw) == 0 || raw[0] != '{' || json.Unmarshal(raw, &fields) != nil {
		return nil, unmappable(field, "must be a JSON object")
	}
	return fields, nil
}

// optString reads a string field; absent and null are "".
func optString(fields map[string]json.RawMessage, field string) (string, error) {
	raw := fields[field]
	if isNull(raw) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", unmappable(field, "must be a string")
	}
	return s, nil
}

func isNull(raw []byte) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || string(raw) == "null"
}

// marshal encodes v without HTML escaping, so the stored payload reaches
// the memory API as SomaBrain wrote it.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, unmappable("payload", "cannot be encoded: "+err.Error())
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func unmappable(field, reason string) error {
	return fmt.Errorf("%w: %s: %s", ErrUnmappable, field, reason)
}

// failReason is the metrics label of a row marked failed.
func failReason(err error) string {
	switch {
	case errors.Is(err, ErrUnknownTopic):
		return "unknown_topic"
	case errors.Is(err, ErrTooLarge):
		return "too_large"
	}
	return "unmappable"
}
