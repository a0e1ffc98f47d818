package consumer

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetbox-dev/jetbox/streams"
)

// headerCase names the hostile message a dead letter came from: dead
// letters keep the original headers, and some hostile messages have no
// Nats-Msg-Id to match on.
const headerCase = "Hostile-Case"

// noMsgID publishes a hostile message without Nats-Msg-Id.
const noMsgID = "-"

// hostile is one kind of message a raw NATS client can publish to a subject
// the outbox stores. docs/RELIABILITY.md lists them with their outcomes.
type hostile struct {
	name, subject string
	header        map[string]string
	body          string
	msgID         string // "" publishes with "hostile-<name>"; noMsgID with none
	reason        string // what the dead letter's Soma-Dlq-Error must say
}

const okStore = `{"coord":"1,2,3","payload":{}}`

func hostileMessages() []hostile {
	huge := strings.Repeat("k", 4<<10)
	nested := `{"coord":"1,2,3","payload":` + strings.Repeat(`{"a":`, 20000) + `{}` + strings.Repeat(`}`, 20000) + `}`
	return []hostile{
		// Bodies.
		{name: "body not JSON", subject: "memory.acme.fast_ack.store", body: `{"coord":`, reason: "not valid JSON"},
		{name: "truncated in a string", subject: "memory.acme.fast_ack.store", body: `{"coord":"1,2,3","payload":{"te`, reason: "not valid JSON"},
		{name: "empty body", subject: "memory.acme.fast_ack.store", body: ``, reason: "empty body"},
		// nats.go takes a delivered message with an empty body and a Status
		// header for the server's own status (docs/NATSGO-STATUS-HEADER.md).
		{name: "empty body with status 409", subject: "memory.acme.fast_ack.store", header: map[string]string{"Status": "409", "Description": "Consumer Deleted"}, body: ``, reason: "empty body"},
		{name: "empty body with status 408", subject: "memory.acme.fast_ack.store", header: map[string]string{"Status": "408", "Description": "Request Timeout"}, body: ``, reason: "empty body"},
		{name: "empty body with status 100", subject: "memory.acme.sync.store", header: map[string]string{"Status": "100", "Description": "Idle Heartbeat"}, body: ``, reason: "empty body"},
		{name: "empty stray with status 409", subject: "memory.*.background.store", header: map[string]string{"Status": "409", "Description": "Consumer Deleted"}, body: ``, reason: "stored without a partition"},
		{name: "control character in body", subject: "memory.acme.fast_ack.store", body: "{\"coord\":\"1,2,3\",\"payload\":{\"t\":\"a\x01b\"}}", reason: "not valid JSON"},
		{name: "NUL after the object", subject: "memory.acme.fast_ack.store", body: okStore + "\x00", reason: "not valid JSON"},
		{name: "non-UTF-8 bytes in body", subject: "memory.acme.fast_ack.store", body: "{\"coord\":\"1,2,3\",\"payload\":{\"t\":\"\xff\xfe\"}}", reason: "not valid UTF-8"},
		{name: "deeply nested JSON", subject: "memory.acme.fast_ack.store", body: nested, reason: "not valid JSON"},
		{name: "duplicate key, last bad", subject: "memory.acme.fast_ack.store", body: `{"coord":"1,2,3","coord":"x,y,z","payload":{}}`, reason: `duplicate key "coord"`},
		{name: "duplicate key, first bad", subject: "memory.acme.fast_ack.store", body: `{"coord":"x,y,z","payload":{},"coord":"1,2,3"}`, reason: `duplicate key "coord"`},
		{name: "key in another case", subject: "memory.acme.fast_ack.store", body: `{"Coord":"1,2,3","payload":{}}`, reason: `body key "Coord" is not "coord": keys are case-sensitive`},
		{name: "top-level array", subject: "memory.acme.fast_ack.store", body: `[` + okStore + `]`, reason: "cannot unmarshal array"},
		{name: "top-level string", subject: "memory.acme.fast_ack.store", body: `"1,2,3"`, reason: "cannot unmarshal string"},
		{name: "top-level null", subject: "memory.acme.fast_ack.store", body: `null`, reason: "coord is required"},
		{name: "store without coord", subject: "memory.acme.fast_ack.store", body: `{"payload":{}}`, reason: "coord is required"},
		{name: "coord a number", subject: "memory.acme.fast_ack.store", body: `{"coord":1,"payload":{}}`, reason: "cannot unmarshal number"},
		{name: "payload not an object", subject: "memory.acme.fast_ack.store", body: `{"coord":"1,2,3","payload":[1]}`, reason: "payload must be a JSON object"},
		{name: "payload a string", subject: "memory.acme.fast_ack.store", body: `{"coord":"1,2,3","payload":"{}"}`, reason: "payload must be a JSON object"},
		{name: "payload null", subject: "memory.acme.fast_ack.store", body: `{"coord":"1,2,3","payload":null}`, reason: "payload must be a JSON object"},
		{name: "memory_type a number", subject: "memory.acme.fast_ack.store", body: `{"coord":"1,2,3","payload":{},"memory_type":1}`, reason: "cannot unmarshal number"},
		{name: "unknown memory_type", subject: "memory.acme.fast_ack.store", body: `{"coord":"1,2,3","payload":{},"memory_type":"procedural"}`, reason: "memory_type must be episodic or semantic"},
		{name: "empty memory_type", subject: "memory.acme.fast_ack.store", body: `{"coord":"1,2,3","payload":{},"memory_type":""}`, reason: "memory_type must be episodic or semantic"},
		{name: "delete coord a bool", subject: "memory.acme.fast_ack.delete", body: `{"coord":true}`, reason: "cannot unmarshal bool"},
		{name: "link metadata not an object", subject: "memory.acme.fast_ack.link", body: `{"from_coord":"1,2,3","to_coord":"3,2,1","metadata":[1]}`, reason: "cannot unmarshal array"},
		{name: "link strength a string", subject: "memory.acme.fast_ack.link", body: `{"from_coord":"1,2,3","to_coord":"3,2,1","strength":"high"}`, reason: "cannot unmarshal string"},
		{name: "link from_coord an array", subject: "memory.acme.fast_ack.link", body: `{"from_coord":[1,2,3],"to_coord":"3,2,1","link_type":"related"}`, reason: "cannot unmarshal array"},
		{name: "link to_coord an object", subject: "memory.acme.fast_ack.link", body: `{"from_coord":"1,2,3","to_coord":{},"link_type":"related"}`, reason: "cannot unmarshal object"},
		{name: "link link_type a number", subject: "memory.acme.fast_ack.link", body: `{"from_coord":"1,2,3","to_coord":"3,2,1","link_type":7}`, reason: "cannot unmarshal number"},
		{name: "link weight a string", subject: "memory.acme.fast_ack.link", body: `{"from_coord":"1,2,3","to_coord":"3,2,1","link_type":"related","weight":"NaN"}`, reason: "cannot unmarshal string"},
		{name: "link weight overflows", subject: "memory.acme.fast_ack.link", body: `{"from_coord":"1,2,3","to_coord":"3,2,1","link_type":"related","weight":1e999}`, reason: "cannot unmarshal number 1e999"},

		// Coords.
		{name: "coord not numbers", subject: "memory.acme.fast_ack.delete", body: `{"coord":"a,b,c"}`, reason: "not a finite decimal number"},
		{name: "NaN coord", subject: "memory.acme.fast_ack.delete", body: `{"coord":"NaN,0,0"}`, reason: `"NaN" is not a finite decimal number`},
		{name: "Infinity coord", subject: "memory.acme.fast_ack.delete", body: `{"coord":"1,-Infinity,0"}`, reason: `"-Infinity" is not a finite decimal number`},
		{name: "inf coord", subject: "memory.acme.fast_ack.delete", body: `{"coord":"1,2,inf"}`, reason: `"inf" is not a finite decimal number`},
		{name: "coord overflows to Inf", subject: "memory.acme.fast_ack.delete", body: `{"coord":"1e999,0,0"}`, reason: `"1e999" is not a finite decimal number`},
		{name: "hex float coord", subject: "memory.acme.fast_ack.delete", body: `{"coord":"0x1p-2,0,0"}`, reason: `"0x1p-2" is not a finite decimal number`},
		{name: "underscore coord", subject: "memory.acme.fast_ack.delete", body: `{"coord":"1_000,0,0"}`, reason: `"1_000" is not a finite decimal number`},
		{name: "four-part coord", subject: "memory.acme.fast_ack.delete", body: `{"coord":"1,2,3,4"}`, reason: "want three comma-separated numbers"},
		{name: "empty coord part", subject: "memory.acme.fast_ack.delete", body: `{"coord":"1,,3"}`, reason: `"" is not a finite decimal number`},

		// Tenants and subjects.
		{name: "tenant header disagrees", subject: "memory.acme.fast_ack.store", header: map[string]string{streams.HeaderTenant: "other"}, body: okStore, reason: "disagrees"},
		{name: "tenant header in other case", subject: "memory.acme.fast_ack.store", header: map[string]string{streams.HeaderTenant: "ACME"}, body: okStore, reason: "disagrees"},
		{name: "tenant header holds the token", subject: "memory.acme~2Eeu.fast_ack.store", header: map[string]string{streams.HeaderTenant: "acme~2Eeu"}, body: okStore, reason: "disagrees"},
		// The server stores a subject with a wildcard token as is, without
		// its partition; the stray consumer hands it to a worker.
		{name: "wildcard tenant token", subject: "memory.*.fast_ack.store", body: okStore, reason: "stored without a partition"},
		{name: "undecodable tenant token", subject: "memory.acme~2.fast_ack.store", body: okStore, reason: "invalid tenant"},
		{name: "lower-case escape", subject: "memory.acme~2eeu.fast_ack.store", body: okStore, reason: "bad escape"},
		{name: "escape of a kept byte", subject: "memory.~61cme.fast_ack.store", body: okStore, reason: "stands for itself"},
		{name: "lone tilde", subject: "memory.acme~.fast_ack.store", body: okStore, reason: "byte 0x7E at 4 is not allowed"},
		{name: "escaped control byte", subject: "memory.acme~00.fast_ack.store", body: okStore, reason: "control character U+0000"},
		{name: "escaped invalid UTF-8", subject: "memory.caf~C3.fast_ack.store", body: okStore, reason: "not valid UTF-8"},
		{name: "overlong tenant token", subject: "memory." + strings.Repeat("a", 1000) + ".fast_ack.store", body: okStore, reason: "token of 1000 bytes, at most 384"},
		{name: "tenant token near the control line", subject: "memory." + strings.Repeat("a", 3900) + ".fast_ack.store", body: okStore, reason: "token of 3900 bytes, at most 384"},

		// Headers.
		{name: "control character in idempotency key", subject: "memory.acme.fast_ack.store", header: map[string]string{streams.HeaderIdempotencyKey: "a\x01b"}, body: okStore, reason: "control character"},
		{name: "DEL in request id", subject: "memory.acme.fast_ack.store", header: map[string]string{streams.HeaderRequestID: "r\x7f1"}, body: okStore, reason: "X-Request-ID: bad header value: control character 0x7F"},
		{name: "tab in namespace", subject: "memory.acme.fast_ack.store", header: map[string]string{streams.HeaderNamespace: "memory:\tacme"}, body: okStore, reason: "Soma-Namespace: bad header value: control character 0x09"},
		{name: "NUL in traceparent", subject: "memory.acme.fast_ack.store", header: map[string]string{streams.HeaderTraceparent: "00-\x00-01"}, body: okStore, reason: "traceparent: bad header value: control character 0x00"},
		{name: "non-UTF-8 tracestate", subject: "memory.acme.fast_ack.store", header: map[string]string{streams.HeaderTracestate: "k=\xff\xfe"}, body: okStore, reason: "tracestate: bad header value: not valid UTF-8"},
		{name: "huge idempotency key", subject: "memory.acme.fast_ack.store", header: map[string]string{streams.HeaderIdempotencyKey: huge}, body: okStore, reason: "idempotency key: bad header value: 4096 bytes"},
		{name: "namespace near the 64 KiB header limit", subject: "memory.acme.fast_ack.store", header: map[string]string{streams.HeaderNamespace: strings.Repeat("n", 63<<10)}, body: okStore, reason: "Soma-Namespace: bad header value: 64512 bytes"},
		{name: "huge Nats-Msg-Id", subject: "memory.acme.fast_ack.store", msgID: huge, body: okStore, reason: "idempotency key: bad header value: 4096 bytes"},
		// The dead letter repeats the id twice: cut to fit 64 KiB of headers.
		{name: "40 KiB Nats-Msg-Id", subject: "memory.acme.fast_ack.store", msgID: strings.Repeat("k", 40<<10), body: okStore, reason: "idempotency key: bad header value: 40960 bytes"},
		{name: "no Nats-Msg-Id nor key", subject: "memory.acme.fast_ack.store", msgID: noMsgID, body: `{"payload":{}}`, reason: "coord is required"},

		// Forged reply subjects: the worker would publish there itself.
		{name: "reply into the JetStream API", subject: "memory.acme.sync.store", header: map[string]string{streams.HeaderReplyTo: "$JS.API.STREAM.DELETE.MEMORY"}, body: okStore, reason: "reserved"},
		{name: "reply into a KV bucket", subject: "memory.acme.sync.store", header: map[string]string{streams.HeaderReplyTo: "$KV.MEMORY_ATTEMPTS.1"}, body: okStore, reason: "reserved"},
		{name: "reply into the outbox", subject: "memory.acme.sync.store", header: map[string]string{streams.HeaderReplyTo: "memory.other.sync.delete"}, body: okStore, reason: `reserved "memory."`},
		{name: "reply into the dead letters", subject: "memory.acme.sync.store", header: map[string]string{streams.HeaderReplyTo: "memory_dlq.other.sync.store"}, body: okStore, reason: `reserved "memory_dlq."`},
		{name: "reply to a full wildcard", subject: "memory.acme.sync.store", header: map[string]string{streams.HeaderReplyTo: "_INBOX.>"}, body: okStore, reason: "not a literal subject"},
		{name: "reply to a token wildcard", subject: "memory.acme.sync.store", header: map[string]string{streams.HeaderReplyTo: "_INBOX.*.x"}, body: okStore, reason: "not a literal subject"},
		{name: "reply with an empty token", subject: "memory.acme.sync.store", header: map[string]string{streams.HeaderReplyTo: "_INBOX..x"}, body: okStore, reason: "not a literal subject"},
		{name: "reply outside the inboxes", subject: "memory.acme.sync.store", header: map[string]string{streams.HeaderReplyTo: "orders.created"}, body: okStore, reason: "not under an allowed reply prefix"},
		// Publishing to a subject past the server's 4 KiB control line
		// would make the server close the worker's connection.
		{name: "reply past the control line", subject: "memory.acme.sync.store", header: map[string]string{streams.HeaderReplyTo: "_INBOX." + strings.Repeat("r", 5000)}, body: okStore, reason: "5007 bytes, at most 1024"},
		{name: "reply with many tokens", subject: "memory.acme.sync.store", header: map[string]string{streams.HeaderReplyTo: "_INBOX" + strings.Repeat(".t", 20)}, body: okStore, reason: "more than 16 tokens"},
		{name: "reply with a non-ASCII byte", subject: "memory.acme.sync.store", header: map[string]string{streams.HeaderReplyTo: "_INBOX.caf\u00e9"}, body: okStore, reason: "byte 0xC3"},

		// Another tenant's namespace, and a message id that claims another
		// tenant (pre-claiming its id would make its write vanish).
		{name: "namespace of another tenant", subject: "memory.acme.fast_ack.store", header: map[string]string{streams.HeaderNamespace: "memory:victim"}, body: okStore, reason: `names tenant "victim", not the subject's tenant "acme"`},
		{name: "message id of another tenant", subject: "memory.acme.fast_ack.store", msgID: "victim:req-1", body: okStore, reason: `Nats-Msg-Id claims tenant token "victim", not the subject's "acme"`},
	}
}

// A raw NATS client can publish anything the stream's subjects accept. Each
// kind of hostile message is either refused at publish or dead-lettered
// with its class and a reason naming the problem, and reaches the memory
// API only when the memory API is the one to refuse it (a reused
// idempotency key). The worker survives them all and still applies
// another tenant's write published after them.
func TestHostileInputFromARawClientIsRefusedOrDeadLettered(t *testing.T) {
	h := newHarness(t)
	worker := h.startWorker(h.workerConfig())
	ctx := context.Background()

	cases := hostileMessages()
	for _, c := range cases {
		m := nats.NewMsg(c.subject)
		m.Header.Set(headerCase, c.name)
		for k, v := range c.header {
			m.Header.Set(k, v)
		}
		m.Data = []byte(c.body)
		var opts []jetstream.PublishOpt
		switch c.msgID {
		case "":
			opts = append(opts, jetstream.WithMsgID("hostile-"+c.name))
		case noMsgID:
		default:
			opts = append(opts, jetstream.WithMsgID(c.msgID))
		}
		if _, err := h.js.PublishMsg(ctx, m, opts...); err != nil {
			t.Fatalf("%s: publish: %v", c.name, err)
		}
	}

	// A key reused for a different write: the worker cannot know, and the
	// memory API (like SFM) reads no idempotency key, so both writes are
	// applied. The same Nats-Msg-Id with a different body is not even
	// stored.
	original := nats.NewMsg("memory.replayer.fast_ack.store")
	original.Header.Set(streams.HeaderIdempotencyKey, "k1")
	original.Data = []byte(`{"coord":"1,1,1","payload":{"v":1}}`)
	if _, err := h.js.PublishMsg(ctx, original, jetstream.WithMsgID("replayer:k1")); err != nil {
		t.Fatalf("original: %v", err)
	}
	h.waitApplied(1, 10*time.Second)
	sameID := nats.NewMsg("memory.replayer.fast_ack.store")
	sameID.Header.Set(streams.HeaderIdempotencyKey, "k1")
	sameID.Data = []byte(`{"coord":"9,9,9","payload":{"v":2}}`)
	if ack, err := h.js.PublishMsg(ctx, sameID, jetstream.WithMsgID("replayer:k1")); err != nil || !ack.Duplicate {
		t.Fatalf("same Nats-Msg-Id, other body: ack %+v, err %v; want a duplicate, not stored", ack, err)
	}
	conflict := nats.NewMsg("memory.replayer.fast_ack.store")
	conflict.Header.Set(headerCase, "idempotency key reused")
	conflict.Header.Set(streams.HeaderIdempotencyKey, "k1")
	conflict.Data = []byte(`{"coord":"9,9,9","payload":{"v":2}}`)
	if _, err := h.js.PublishMsg(ctx, conflict, jetstream.WithMsgID("replayer:k1-again")); err != nil {
		t.Fatalf("conflict: %v", err)
	}

	// Refused at publish: the stream never stores them.
	refusals := []struct {
		name, subject, header string
		body                  []byte
		want                  func(error) bool
	}{
		{"unknown mode", "memory.acme.whenever.store", "", []byte(okStore), isNoStream},
		{"unknown op", "memory.acme.background.frobnicate", "", []byte(`{"coord":"1,2,3"}`), isNoStream},
		{"op in upper case", "memory.acme.fast_ack.STORE", "", []byte(okStore), isNoStream},
		{"wildcard op", "memory.acme.fast_ack.*", "", []byte(okStore), isNoStream},
		{"full wildcard op", "memory.acme.fast_ack.>", "", []byte(okStore), isNoStream},
		{"wildcard mode", "memory.acme.*.store", "", []byte(okStore), isNoStream},
		{"a fifth token picks a partition", "memory.acme.fast_ack.store.3", "", []byte(okStore), isNoStream},
		{"publishing a stored subject picks a partition", "memory.fast_ack.3.acme.store", "", []byte(okStore), isNoStream},
		{"a fifth token", "memory.acme.fast_ack.store.more", "", []byte(okStore), isNoStream},
		{"three tokens", "memory.acme.fast_ack", "", []byte(okStore), isNoStream},
		{"space in subject", "memory.acme fast_ack.store", "", []byte(okStore), isBadSubject},
		{"headers over 64 KiB", "memory.acme.fast_ack.store", strings.Repeat("r", 64<<10), []byte(okStore), isHeaderTooLarge},
		{"over the outbox's largest message", "memory.acme.fast_ack.store", "", make([]byte, h.nc.MaxPayload()-streams.DLQHeadroom+1), isTooLargeForStream},
		{"over the server's max payload", "memory.acme.fast_ack.store", "", make([]byte, h.nc.MaxPayload()+1), isMaxPayload},
	}
	for _, r := range refusals {
		m := nats.NewMsg(r.subject)
		m.Header.Set(headerCase, r.name)
		if r.header != "" {
			m.Header.Set(streams.HeaderRequestID, r.header)
		}
		m.Data = r.body
		if _, err := h.js.PublishMsg(ctx, m); !r.want(err) {
			t.Errorf("%s: publish to %s: err %v, want a clear refusal", r.name, r.subject, err)
		}
	}

	// A good write from another tenant, published after all the bad ones.
	good := nats.NewMsg("memory.fine.fast_ack.store")
	good.Data = []byte(`{"coord":"0.5,0.5,0.5","payload":{"ok":true}}`)
	if _, err := h.js.PublishMsg(ctx, good); err != nil {
		t.Fatalf("good write: %v", err)
	}

	want := len(cases)
	// Past the deadline, the checks below name the cases not dead-lettered.
	for deadline := time.Now().Add(15 * time.Second); len(h.deadLetters()) < want && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	waitFor(t, 5*time.Second, "the good write applied", func() bool { return len(h.faults.forTenant("fine")) == 1 })
	waitFor(t, 5*time.Second, "the write with the reused key applied", func() bool { return len(h.faults.forTenant("replayer")) == 2 })
	select {
	case err := <-worker.done:
		t.Fatalf("the worker stopped: %v", err)
	default:
	}
	// No forged reply subject was published to: the outbox is intact.
	if err := streams.Check(ctx, h.js, h.streams); err != nil {
		t.Fatalf("after forged Soma-Reply-To subjects: %v", err)
	}
	for _, r := range h.faults.log() {
		if r.Tenant != "fine" && r.Tenant != "replayer" {
			t.Errorf("a hostile write reached the memory API: %s %s for tenant %q", r.Method, r.Path, r.Tenant)
		}
	}
	if got := h.faults.forTenant("replayer"); len(got) != 2 || got[0].Status != 200 || got[1].Status != 200 {
		t.Errorf("reused key: memory API saw %+v, want both writes applied", got)
	}
	if m, found, _ := h.store.Get("replayer", "9,9,9"); !found || string(m.Payload) != `{"v":2}` {
		t.Errorf("reused key: memory 9,9,9 = %+v (found %v), want the second write applied", m, found)
	}

	dead := map[string]nats.Header{}
	for _, dl := range h.deadLetters() {
		dead[dl.Headers().Get(headerCase)] = dl.Headers()
	}
	if len(dead) != want {
		t.Errorf("%d dead letters, want %d", len(dead), want)
	}
	for _, c := range cases {
		checkDeadLetter(t, dead, c.name, streams.ClassBadInput, c.reason)
	}
	if _, ok := dead["idempotency key reused"]; ok {
		t.Errorf("reused key: dead-lettered, want applied")
	}
	if hd := dead["40 KiB Nats-Msg-Id"]; hd != nil {
		if got := hd.Get(streams.HeaderDLQShortened); got != "Soma-Dlq-Msg-Id, Soma-Idempotency-Key" {
			t.Errorf("40 KiB Nats-Msg-Id: %s %q, want both copies of the id named", streams.HeaderDLQShortened, got)
		}
		if n := len(hd.Get(streams.HeaderDLQMsgID)); n > 1024 {
			t.Errorf("40 KiB Nats-Msg-Id: the dead letter keeps %d bytes of it", n)
		}
	}
	if hd := dead["wildcard tenant token"]; hd != nil {
		if got := hd.Get(streams.HeaderDLQSubject); got != "memory.*.fast_ack.store" {
			t.Errorf("wildcard tenant token: stored subject %q", got)
		}
	}
	// The wildcard token and the two tokens longer than any tenant's.
	if n := h.deadLettersOn("memory_dlq.~.fast_ack.store"); n != 3 {
		t.Errorf("wildcard and overlong tenant tokens: %d dead letters under memory_dlq.~.fast_ack.store, want 3", n)
	}
	if hd := dead["message id of another tenant"]; hd != nil && hd.Get(streams.HeaderDLQMsgID) != "victim:req-1" {
		t.Errorf("message id of another tenant: the dead letter keeps id %q", hd.Get(streams.HeaderDLQMsgID))
	}
	if hd := dead["no Nats-Msg-Id nor key"]; hd != nil {
		if key := hd.Get(streams.HeaderIdempotencyKey); !strings.HasPrefix(key, "jetbox-seq-") || hd.Get(streams.HeaderDLQMsgID) != "" {
			t.Errorf("no Nats-Msg-Id: dead letter key %q, msg id %q; want the jetbox-seq- key and no id", key, hd.Get(streams.HeaderDLQMsgID))
		}
	}
}

func checkDeadLetter(t *testing.T, dead map[string]nats.Header, name string, class streams.DLQClass, reason string) {
	t.Helper()
	hd, ok := dead[name]
	if !ok {
		t.Errorf("%s: no dead letter", name)
		return
	}
	if got := hd.Get(streams.HeaderDLQClass); got != string(class) {
		t.Errorf("%s: class %q, want %q", name, got, class)
	}
	if got := hd.Get(streams.HeaderDLQError); !strings.Contains(got, reason) {
		t.Errorf("%s: reason %q does not say %q", name, got, reason)
	}
}

func isNoStream(err error) bool { return errors.Is(err, jetstream.ErrNoStreamResponse) }

func isBadSubject(err error) bool { return errors.Is(err, nats.ErrBadSubject) }

func isMaxPayload(err error) bool { return errors.Is(err, nats.ErrMaxPayload) }

func isTooLargeForStream(err error) bool {
	return isAPIError(err, jetstream.JSErrCodeStreamMessageExceedsMaximum)
}

// errCodeHeaderTooLarge is the server's "header size exceeds maximum
// allowed of 64k"; nats.go has no name for it.
const errCodeHeaderTooLarge jetstream.ErrorCode = 10097

func isHeaderTooLarge(err error) bool { return isAPIError(err, errCodeHeaderTooLarge) }

func isAPIError(err error, code jetstream.ErrorCode) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == code
}

// deadLettersOn counts the dead letters stored under a literal subject.
func (h *harness) deadLettersOn(subject string) uint64 {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := h.js.Stream(ctx, h.streams.DLQStream)
	if err != nil {
		h.t.Fatal(err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		h.t.Fatal(err)
	}
	return info.State.Subjects[subject]
}

// A connection the nats-server closes for good (here: a publish past its
// control line, which an unchecked reply subject used to cause) stops the
// worker with ErrConnectionClosed instead of leaving it running idle, and
// the worker is no longer ready.
func TestWorkerStopsWhenNATSClosesItsConnection(t *testing.T) {
	h := newHarness(t)
	rw := h.startWorker(h.workerConfig())
	if err := rw.nc.Publish("_INBOX."+strings.Repeat("x", 5000), nil); err != nil {
		t.Fatalf("publish: %v", err)
	}
	select {
	case err := <-rw.done:
		if !errors.Is(err, ErrConnectionClosed) {
			t.Fatalf("worker stopped with %v, want ErrConnectionClosed", err)
		}
		rw.done <- nil // the cleanup stops it again
	case <-time.After(15 * time.Second):
		t.Fatalf("the worker keeps running on a closed connection (closed: %v, last error: %v)", rw.nc.IsClosed(), rw.nc.LastError())
	}
	if err := rw.Ready(); err == nil {
		t.Fatal("worker ready on a closed connection")
	}
}
