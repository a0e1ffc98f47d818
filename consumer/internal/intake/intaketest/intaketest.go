// Package intaketest holds messages as a worker pulls them, for the tests
// of intake and of the worker: a stand-in for jetstream.Msg, a store as the
// Go producer writes it, and the hostile messages a raw NATS client can
// publish.
package intaketest

import (
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetbox-dev/jetbox/streams"
)

// Msg is the part of a jetstream.Msg that intake.Decode reads.
type Msg struct {
	jetstream.Msg
	subject string
	header  nats.Header
	data    []byte
}

// NewMsg is a message pulled from subject.
func NewMsg(subject string, header nats.Header, data []byte) Msg {
	return Msg{subject: subject, header: header, data: data}
}

func (m Msg) Subject() string      { return m.subject }
func (m Msg) Headers() nats.Header { return m.header }
func (m Msg) Data() []byte         { return m.data }

// StoreBody is a store as the Go producer writes it.
const StoreBody = `{"coord":"-0.12503166683018208,-0.7219827054068446,0.24664257746189833","payload":{"text":"likes tea","user":"user-42","tags":["drink","morning"],"score":0.75},"memory_type":"episodic"}`

// StoreMsg is a pulled store with the headers the Go producer sets; key
// makes its idempotency key unique.
func StoreMsg(key string) Msg {
	h := nats.Header{}
	h.Set(streams.HeaderIdempotencyKey, key)
	h.Set(streams.HeaderMsgID, "sandbox-tenant:"+key)
	h.Set(streams.HeaderTenant, "sandbox-tenant")
	h.Set(streams.HeaderNamespace, "memory:sandbox-tenant")
	return NewMsg("memory.fast_ack.3.sandbox-tenant.store", h, []byte(StoreBody))
}

// OKStore is the smallest store the contract accepts.
const OKStore = `{"coord":"1,2,3","payload":{}}`

// NoMsgID publishes a hostile message without Nats-Msg-Id.
const NoMsgID = "-"

// Hostile is one kind of message a raw NATS client can publish to a subject
// the outbox stores. docs/RELIABILITY.md lists them with their outcomes.
type Hostile struct {
	Name, Subject string
	Header        map[string]string
	Body          string
	MsgID         string // "" publishes with "hostile-<name>"; NoMsgID with none
	Reason        string // what the dead letter's Soma-Dlq-Error must say
}

// HostileMessages are every kind of Hostile message, each with the reason
// it is refused.
func HostileMessages() []Hostile {
	huge := strings.Repeat("k", 4<<10)
	nested := `{"coord":"1,2,3","payload":` + strings.Repeat(`{"a":`, 20000) + `{}` + strings.Repeat(`}`, 20000) + `}`
	return []Hostile{
		// Bodies.
		{Name: "body not JSON", Subject: "memory.acme.fast_ack.store", Body: `{"coord":`, Reason: "not valid JSON"},
		{Name: "truncated in a string", Subject: "memory.acme.fast_ack.store", Body: `{"coord":"1,2,3","payload":{"te`, Reason: "not valid JSON"},
		{Name: "empty body", Subject: "memory.acme.fast_ack.store", Body: ``, Reason: "empty body"},
		// nats.go takes a delivered message with an empty body and a Status
		// header for the server's own status (docs/NATSGO-STATUS-HEADER.md).
		{Name: "empty body with status 409", Subject: "memory.acme.fast_ack.store", Header: map[string]string{"Status": "409", "Description": "Consumer Deleted"}, Body: ``, Reason: "empty body"},
		{Name: "empty body with status 408", Subject: "memory.acme.fast_ack.store", Header: map[string]string{"Status": "408", "Description": "Request Timeout"}, Body: ``, Reason: "empty body"},
		{Name: "empty body with status 100", Subject: "memory.acme.sync.store", Header: map[string]string{"Status": "100", "Description": "Idle Heartbeat"}, Body: ``, Reason: "empty body"},
		{Name: "empty stray with status 409", Subject: "memory.*.background.store", Header: map[string]string{"Status": "409", "Description": "Consumer Deleted"}, Body: ``, Reason: "stored without a partition"},
		{Name: "control character in body", Subject: "memory.acme.fast_ack.store", Body: "{\"coord\":\"1,2,3\",\"payload\":{\"t\":\"a\x01b\"}}", Reason: "not valid JSON"},
		{Name: "NUL after the object", Subject: "memory.acme.fast_ack.store", Body: OKStore + "\x00", Reason: "not valid JSON"},
		{Name: "non-UTF-8 bytes in body", Subject: "memory.acme.fast_ack.store", Body: "{\"coord\":\"1,2,3\",\"payload\":{\"t\":\"\xff\xfe\"}}", Reason: "not valid UTF-8"},
		{Name: "deeply nested JSON", Subject: "memory.acme.fast_ack.store", Body: nested, Reason: "not valid JSON"},
		{Name: "duplicate key, last bad", Subject: "memory.acme.fast_ack.store", Body: `{"coord":"1,2,3","coord":"x,y,z","payload":{}}`, Reason: `duplicate key "coord"`},
		{Name: "duplicate key, first bad", Subject: "memory.acme.fast_ack.store", Body: `{"coord":"x,y,z","payload":{},"coord":"1,2,3"}`, Reason: `duplicate key "coord"`},
		{Name: "key in another case", Subject: "memory.acme.fast_ack.store", Body: `{"Coord":"1,2,3","payload":{}}`, Reason: `body key "Coord" is not "coord": keys are case-sensitive`},
		{Name: "top-level array", Subject: "memory.acme.fast_ack.store", Body: `[` + OKStore + `]`, Reason: "cannot unmarshal array"},
		{Name: "top-level string", Subject: "memory.acme.fast_ack.store", Body: `"1,2,3"`, Reason: "cannot unmarshal string"},
		{Name: "top-level null", Subject: "memory.acme.fast_ack.store", Body: `null`, Reason: "coord is required"},
		{Name: "store without coord", Subject: "memory.acme.fast_ack.store", Body: `{"payload":{}}`, Reason: "coord is required"},
		{Name: "coord a number", Subject: "memory.acme.fast_ack.store", Body: `{"coord":1,"payload":{}}`, Reason: "cannot unmarshal number"},
		{Name: "payload not an object", Subject: "memory.acme.fast_ack.store", Body: `{"coord":"1,2,3","payload":[1]}`, Reason: "payload must be a JSON object"},
		{Name: "payload a string", Subject: "memory.acme.fast_ack.store", Body: `{"coord":"1,2,3","payload":"{}"}`, Reason: "payload must be a JSON object"},
		{Name: "payload null", Subject: "memory.acme.fast_ack.store", Body: `{"coord":"1,2,3","payload":null}`, Reason: "payload must be a JSON object"},
		{Name: "memory_type a number", Subject: "memory.acme.fast_ack.store", Body: `{"coord":"1,2,3","payload":{},"memory_type":1}`, Reason: "cannot unmarshal number"},
		{Name: "unknown memory_type", Subject: "memory.acme.fast_ack.store", Body: `{"coord":"1,2,3","payload":{},"memory_type":"procedural"}`, Reason: "memory_type must be episodic or semantic"},
		{Name: "empty memory_type", Subject: "memory.acme.fast_ack.store", Body: `{"coord":"1,2,3","payload":{},"memory_type":""}`, Reason: "memory_type must be episodic or semantic"},
		{Name: "delete coord a bool", Subject: "memory.acme.fast_ack.delete", Body: `{"coord":true}`, Reason: "cannot unmarshal bool"},
		{Name: "link metadata not an object", Subject: "memory.acme.fast_ack.link", Body: `{"from_coord":"1,2,3","to_coord":"3,2,1","metadata":[1]}`, Reason: "cannot unmarshal array"},
		{Name: "link strength a string", Subject: "memory.acme.fast_ack.link", Body: `{"from_coord":"1,2,3","to_coord":"3,2,1","strength":"high"}`, Reason: "cannot unmarshal string"},
		{Name: "link from_coord an array", Subject: "memory.acme.fast_ack.link", Body: `{"from_coord":[1,2,3],"to_coord":"3,2,1","link_type":"related"}`, Reason: "cannot unmarshal array"},
		{Name: "link to_coord an object", Subject: "memory.acme.fast_ack.link", Body: `{"from_coord":"1,2,3","to_coord":{},"link_type":"related"}`, Reason: "cannot unmarshal object"},
		{Name: "link link_type a number", Subject: "memory.acme.fast_ack.link", Body: `{"from_coord":"1,2,3","to_coord":"3,2,1","link_type":7}`, Reason: "cannot unmarshal number"},
		{Name: "link weight a string", Subject: "memory.acme.fast_ack.link", Body: `{"from_coord":"1,2,3","to_coord":"3,2,1","link_type":"related","weight":"NaN"}`, Reason: "cannot unmarshal string"},
		{Name: "link weight overflows", Subject: "memory.acme.fast_ack.link", Body: `{"from_coord":"1,2,3","to_coord":"3,2,1","link_type":"related","weight":1e999}`, Reason: "cannot unmarshal number 1e999"},

		// Coords.
		{Name: "coord not numbers", Subject: "memory.acme.fast_ack.delete", Body: `{"coord":"a,b,c"}`, Reason: "not a finite decimal number"},
		{Name: "NaN coord", Subject: "memory.acme.fast_ack.delete", Body: `{"coord":"NaN,0,0"}`, Reason: `"NaN" is not a finite decimal number`},
		{Name: "Infinity coord", Subject: "memory.acme.fast_ack.delete", Body: `{"coord":"1,-Infinity,0"}`, Reason: `"-Infinity" is not a finite decimal number`},
		{Name: "inf coord", Subject: "memory.acme.fast_ack.delete", Body: `{"coord":"1,2,inf"}`, Reason: `"inf" is not a finite decimal number`},
		{Name: "coord overflows to Inf", Subject: "memory.acme.fast_ack.delete", Body: `{"coord":"1e999,0,0"}`, Reason: `"1e999" is not a finite decimal number`},
		{Name: "hex float coord", Subject: "memory.acme.fast_ack.delete", Body: `{"coord":"0x1p-2,0,0"}`, Reason: `"0x1p-2" is not a finite decimal number`},
		{Name: "underscore coord", Subject: "memory.acme.fast_ack.delete", Body: `{"coord":"1_000,0,0"}`, Reason: `"1_000" is not a finite decimal number`},
		{Name: "four-part coord", Subject: "memory.acme.fast_ack.delete", Body: `{"coord":"1,2,3,4"}`, Reason: "want three comma-separated numbers"},
		{Name: "empty coord part", Subject: "memory.acme.fast_ack.delete", Body: `{"coord":"1,,3"}`, Reason: `"" is not a finite decimal number`},

		// Tenants and subjects.
		{Name: "tenant header disagrees", Subject: "memory.acme.fast_ack.store", Header: map[string]string{streams.HeaderTenant: "other"}, Body: OKStore, Reason: "disagrees"},
		{Name: "tenant header in other case", Subject: "memory.acme.fast_ack.store", Header: map[string]string{streams.HeaderTenant: "ACME"}, Body: OKStore, Reason: "disagrees"},
		{Name: "tenant header holds the token", Subject: "memory.acme~2Eeu.fast_ack.store", Header: map[string]string{streams.HeaderTenant: "acme~2Eeu"}, Body: OKStore, Reason: "disagrees"},
		// The server stores a subject with a wildcard token as is, without
		// its partition; the stray consumer hands it to a worker.
		{Name: "wildcard tenant token", Subject: "memory.*.fast_ack.store", Body: OKStore, Reason: "stored without a partition"},
		{Name: "undecodable tenant token", Subject: "memory.acme~2.fast_ack.store", Body: OKStore, Reason: "invalid tenant"},
		{Name: "lower-case escape", Subject: "memory.acme~2eeu.fast_ack.store", Body: OKStore, Reason: "bad escape"},
		{Name: "escape of a kept byte", Subject: "memory.~61cme.fast_ack.store", Body: OKStore, Reason: "stands for itself"},
		{Name: "lone tilde", Subject: "memory.acme~.fast_ack.store", Body: OKStore, Reason: "byte 0x7E at 4 is not allowed"},
		{Name: "escaped control byte", Subject: "memory.acme~00.fast_ack.store", Body: OKStore, Reason: "control character U+0000"},
		{Name: "escaped invalid UTF-8", Subject: "memory.caf~C3.fast_ack.store", Body: OKStore, Reason: "not valid UTF-8"},
		{Name: "overlong tenant token", Subject: "memory." + strings.Repeat("a", 1000) + ".fast_ack.store", Body: OKStore, Reason: "token of 1000 bytes, at most 384"},
		{Name: "tenant token near the control line", Subject: "memory." + strings.Repeat("a", 3900) + ".fast_ack.store", Body: OKStore, Reason: "token of 3900 bytes, at most 384"},

		// Headers.
		{Name: "control character in idempotency key", Subject: "memory.acme.fast_ack.store", Header: map[string]string{streams.HeaderIdempotencyKey: "a\x01b"}, Body: OKStore, Reason: "control character"},
		{Name: "DEL in request id", Subject: "memory.acme.fast_ack.store", Header: map[string]string{streams.HeaderRequestID: "r\x7f1"}, Body: OKStore, Reason: "X-Request-ID: bad header value: control character 0x7F"},
		{Name: "tab in namespace", Subject: "memory.acme.fast_ack.store", Header: map[string]string{streams.HeaderNamespace: "memory:\tacme"}, Body: OKStore, Reason: "Soma-Namespace: bad header value: control character 0x09"},
		{Name: "NUL in traceparent", Subject: "memory.acme.fast_ack.store", Header: map[string]string{streams.HeaderTraceparent: "00-\x00-01"}, Body: OKStore, Reason: "traceparent: bad header value: control character 0x00"},
		{Name: "non-UTF-8 tracestate", Subject: "memory.acme.fast_ack.store", Header: map[string]string{streams.HeaderTracestate: "k=\xff\xfe"}, Body: OKStore, Reason: "tracestate: bad header value: not valid UTF-8"},
		{Name: "huge idempotency key", Subject: "memory.acme.fast_ack.store", Header: map[string]string{streams.HeaderIdempotencyKey: huge}, Body: OKStore, Reason: "idempotency key: bad header value: 4096 bytes"},
		{Name: "namespace near the 64 KiB header limit", Subject: "memory.acme.fast_ack.store", Header: map[string]string{streams.HeaderNamespace: strings.Repeat("n", 63<<10)}, Body: OKStore, Reason: "Soma-Namespace: bad header value: 64512 bytes"},
		{Name: "huge Nats-Msg-Id", Subject: "memory.acme.fast_ack.store", MsgID: huge, Body: OKStore, Reason: "idempotency key: bad header value: 4096 bytes"},
		// The dead letter repeats the id twice: cut to fit 64 KiB of headers.
		{Name: "40 KiB Nats-Msg-Id", Subject: "memory.acme.fast_ack.store", MsgID: strings.Repeat("k", 40<<10), Body: OKStore, Reason: "idempotency key: bad header value: 40960 bytes"},
		{Name: "no Nats-Msg-Id nor key", Subject: "memory.acme.fast_ack.store", MsgID: NoMsgID, Body: `{"payload":{}}`, Reason: "coord is required"},

		// Forged reply subjects: the worker would publish there itself.
		{Name: "reply into the JetStream API", Subject: "memory.acme.sync.store", Header: map[string]string{streams.HeaderReplyTo: "$JS.API.STREAM.DELETE.MEMORY"}, Body: OKStore, Reason: "reserved"},
		{Name: "reply into a KV bucket", Subject: "memory.acme.sync.store", Header: map[string]string{streams.HeaderReplyTo: "$KV.MEMORY_ATTEMPTS.1"}, Body: OKStore, Reason: "reserved"},
		{Name: "reply into the outbox", Subject: "memory.acme.sync.store", Header: map[string]string{streams.HeaderReplyTo: "memory.other.sync.delete"}, Body: OKStore, Reason: `reserved "memory."`},
		{Name: "reply into the dead letters", Subject: "memory.acme.sync.store", Header: map[string]string{streams.HeaderReplyTo: "memory_dlq.other.sync.store"}, Body: OKStore, Reason: `reserved "memory_dlq."`},
		{Name: "reply to a full wildcard", Subject: "memory.acme.sync.store", Header: map[string]string{streams.HeaderReplyTo: "_INBOX.>"}, Body: OKStore, Reason: "not a literal subject"},
		{Name: "reply to a token wildcard", Subject: "memory.acme.sync.store", Header: map[string]string{streams.HeaderReplyTo: "_INBOX.*.x"}, Body: OKStore, Reason: "not a literal subject"},
		{Name: "reply with an empty token", Subject: "memory.acme.sync.store", Header: map[string]string{streams.HeaderReplyTo: "_INBOX..x"}, Body: OKStore, Reason: "not a literal subject"},
		{Name: "reply outside the inboxes", Subject: "memory.acme.sync.store", Header: map[string]string{streams.HeaderReplyTo: "orders.created"}, Body: OKStore, Reason: "not under an allowed reply prefix"},
		// Publishing to a subject past the server's 4 KiB control line
		// would make the server close the worker's connection.
		{Name: "reply past the control line", Subject: "memory.acme.sync.store", Header: map[string]string{streams.HeaderReplyTo: "_INBOX." + strings.Repeat("r", 5000)}, Body: OKStore, Reason: "5007 bytes, at most 1024"},
		{Name: "reply with many tokens", Subject: "memory.acme.sync.store", Header: map[string]string{streams.HeaderReplyTo: "_INBOX" + strings.Repeat(".t", 20)}, Body: OKStore, Reason: "more than 16 tokens"},
		{Name: "reply with a non-ASCII byte", Subject: "memory.acme.sync.store", Header: map[string]string{streams.HeaderReplyTo: "_INBOX.caf\u00e9"}, Body: OKStore, Reason: "byte 0xC3"},

		// Another tenant's namespace, and a message id that claims another
		// tenant (pre-claiming its id would make its write vanish).
		{Name: "namespace of another tenant", Subject: "memory.acme.fast_ack.store", Header: map[string]string{streams.HeaderNamespace: "memory:victim"}, Body: OKStore, Reason: `names tenant "victim", not the subject's tenant "acme"`},
		{Name: "message id of another tenant", Subject: "memory.acme.fast_ack.store", MsgID: "victim:req-1", Body: OKStore, Reason: `Nats-Msg-Id claims tenant token "victim", not the subject's "acme"`},
	}
}
