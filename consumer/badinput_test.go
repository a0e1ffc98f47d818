package consumer

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetbox-dev/jetbox/streams"
)

// A raw NATS client can publish anything the stream's subjects accept. Each
// kind of bad message is dead-lettered with its reason, never sent to the
// memory API, and blocks nobody.
func TestBadInputFromARawClientIsDeadLetteredWithItsReason(t *testing.T) {
	h := newHarness(t)
	h.startWorker(h.workerConfig())
	ctx := context.Background()

	cases := []struct {
		name, subject string
		header        map[string]string
		body          string
		reason        string
	}{
		{"body not JSON", "memory.acme.fast_ack.store", nil, `{"coord":`, "not valid JSON"},
		{"empty body", "memory.acme.fast_ack.store", nil, ``, "empty body"},
		{"tenant header disagrees", "memory.acme.fast_ack.store", map[string]string{streams.HeaderTenant: "other"}, `{"coord":"1,2,3","payload":{}}`, "disagrees"},
		{"unknown op", "memory.acme.background.frobnicate", nil, `{"coord":"1,2,3"}`, "unknown op"},
		{"undecodable tenant token", "memory.acme~2.fast_ack.store", nil, `{"coord":"1,2,3","payload":{}}`, "invalid tenant"},
		{"store without coord", "memory.acme.fast_ack.store", nil, `{"payload":{}}`, "coord is required"},
		{"payload not an object", "memory.acme.fast_ack.store", nil, `{"coord":"1,2,3","payload":[1]}`, "payload must be a JSON object"},
		{"coord not numbers", "memory.acme.fast_ack.delete", nil, `{"coord":"a,b,c"}`, "not a finite decimal number"},
		{"link without type", "memory.acme.fast_ack.link", nil, `{"from_coord":"1,2,3","to_coord":"3,2,1"}`, "link_type is required"},
		{"forged reply subject", "memory.acme.sync.store", map[string]string{streams.HeaderReplyTo: "$JS.API.STREAM.DELETE.MEMORY"}, `{"coord":"1,2,3","payload":{}}`, "reserved"},
		{"control character in idempotency key", "memory.acme.fast_ack.store", map[string]string{streams.HeaderIdempotencyKey: "a\x01b"}, `{"coord":"1,2,3","payload":{}}`, "control character"},
	}
	for i, c := range cases {
		m := nats.NewMsg(c.subject)
		for k, v := range c.header {
			m.Header.Set(k, v)
		}
		m.Data = []byte(c.body)
		if _, err := h.js.PublishMsg(ctx, m, jetstream.WithMsgID("bad-"+c.name)); err != nil {
			t.Fatalf("case %d (%s): publish: %v", i, c.name, err)
		}
	}
	// A good write from another tenant, published after all the bad ones.
	good := nats.NewMsg("memory.fine.fast_ack.store")
	good.Data = []byte(`{"coord":"0.5,0.5,0.5","payload":{"ok":true}}`)
	if _, err := h.js.PublishMsg(ctx, good); err != nil {
		t.Fatalf("good write: %v", err)
	}

	waitFor(t, 15*time.Second, "every bad message dead-lettered", func() bool { return len(h.deadLetters()) == len(cases) })
	h.waitApplied(1, 5*time.Second)
	// The forged reply subject was never published to: the outbox is intact.
	if err := streams.Check(ctx, h.js, h.streams); err != nil {
		t.Fatalf("after a forged Soma-Reply-To: %v", err)
	}
	if n := len(h.faults.forTenant("acme")); n != 0 {
		t.Fatalf("%d bad messages reached the memory API", n)
	}
	byID := map[string]nats.Header{}
	for _, dl := range h.deadLetters() {
		byID[dl.Headers().Get(streams.HeaderDLQMsgID)] = dl.Headers()
	}
	for _, c := range cases {
		hd, ok := byID["bad-"+c.name]
		if !ok {
			t.Errorf("%s: no dead letter", c.name)
			continue
		}
		if hd.Get(streams.HeaderDLQClass) != string(streams.ClassBadInput) {
			t.Errorf("%s: class %q", c.name, hd.Get(streams.HeaderDLQClass))
		}
		if reason := hd.Get(streams.HeaderDLQError); !strings.Contains(reason, c.reason) {
			t.Errorf("%s: reason %q does not say %q", c.name, reason, c.reason)
		}
	}

	// An unknown mode has no consumer group: the stream refuses it at once
	// rather than keep a write nobody would apply. So does a fifth token: a
	// client cannot pick its partition.
	for _, subject := range []string{"memory.acme.whenever.store", "memory.acme.fast_ack.store.more", "memory.acme.fast_ack.store.3"} {
		if _, err := h.js.Publish(ctx, subject, []byte(`{"coord":"1,2,3","payload":{}}`)); err == nil {
			t.Fatalf("a write to %s was stored", subject)
		}
	}
}
