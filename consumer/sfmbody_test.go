package consumer

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// Raw clients publish bodies per the contract; the memory API receives
// SomaFractalMemory's own fields and nothing else: a link's strength
// (0.25, and a weight stored under the earlier contract, sent as strength),
// no link_type when none was given (SFM makes it "related"), and no field
// a tenant slipped in.
func TestMemoryAPIReceivesOnlyItsOwnFields(t *testing.T) {
	h := newHarness(t)
	h.startWorker(h.workerConfig())
	ctx := context.Background()
	publish := func(subject, body string) {
		t.Helper()
		m := nats.NewMsg(subject)
		m.Data = []byte(body)
		if _, err := h.js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	publish("memory.strength.fast_ack.link", `{"from_coord":"1,2,3","to_coord":"4,5,6","strength":0.25}`)
	publish("memory.weight.fast_ack.link", `{"from_coord":"1,2,3","to_coord":"4,5,6","link_type":"causes","weight":0.5}`)
	publish("memory.extra.fast_ack.store", `{"coord":"1,2,3","payload":{"a":1},"tenant":"other","namespace":"memory:other"}`)
	publish("memory.meta.fast_ack.link", `{"from_coord":"1,2,3","to_coord":"4,5,6","strength":0,"metadata":{"why":"tea"}}`)

	want := map[string]map[string]string{
		"strength": {"from_coord": `"1,2,3"`, "to_coord": `"4,5,6"`, "strength": "0.25"},
		"weight":   {"from_coord": `"1,2,3"`, "to_coord": `"4,5,6"`, "link_type": `"causes"`, "strength": "0.5"},
		"extra":    {"coord": `"1,2,3"`, "payload": `{"a":1}`},
		"meta":     {"from_coord": `"1,2,3"`, "to_coord": `"4,5,6"`, "strength": "0", "metadata": `{"why":"tea"}`},
	}
	for tenant, fields := range want {
		waitFor(t, 10*time.Second, tenant+" applied", func() bool { return len(h.faults.forTenant(tenant)) == 1 })
		r := h.faults.forTenant(tenant)[0]
		var got map[string]json.RawMessage
		if err := json.Unmarshal(r.Body, &got); err != nil || r.Status != 200 {
			t.Fatalf("%s: status %d body %s: %v", tenant, r.Status, r.Body, err)
		}
		if len(got) != len(fields) {
			t.Errorf("%s: the memory API received %s, want exactly %v", tenant, r.Body, fields)
		}
		for f, v := range fields {
			if string(got[f]) != v {
				t.Errorf("%s: %s = %s, want %s (body %s)", tenant, f, got[f], v, r.Body)
			}
		}
	}
	if dl := h.deadLetters(); len(dl) != 0 {
		t.Fatalf("%d dead letters", len(dl))
	}
}
