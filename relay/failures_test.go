package relay

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jetbox-dev/jetbox/internal/natstest"
	"github.com/jetbox-dev/jetbox/producer"
	"github.com/jetbox-dev/jetbox/streams"
)

// Rows that cannot become writes are marked failed with the reason;
// rows of topics jetbox does not carry are left pending; the rows around
// them are relayed.
func TestUnmappableAndHugeRowsFailWithTheirReason(t *testing.T) {
	h := newHarness(t, natstest.WithMaxPayload(64<<10))
	h.startWorker()
	huge := strings.Repeat("x", 70<<10)
	h.insert([]testRow{
		{topic: TopicStore, dedupeKey: "ok-1", payload: map[string]any{"coord": coordList(1), "payload": map[string]any{}}},
		{topic: TopicStore, dedupeKey: "not-object", payload: []int{1, 2}},
		{topic: TopicStore, dedupeKey: "two-numbers", payload: map[string]any{"coord": []float64{1, 2}, "payload": map[string]any{}}},
		{topic: TopicStore, dedupeKey: "no-payload", payload: map[string]any{"coord": coordList(2)}},
		{topic: TopicDelete, dedupeKey: "bad-coord", payload: map[string]any{"coord": "1,2,inf"}},
		{topic: TopicLink, dedupeKey: "no-to", payload: map[string]any{"from_coord": coordList(1)}},
		{topic: TopicStore, dedupeKey: "huge", payload: map[string]any{"coord": coordList(3), "payload": map[string]any{"text": huge}}},
		{topic: TopicStore, dedupeKey: "bad-tenant", tenant: ptr("a\x01b"), payload: map[string]any{"coord": coordList(1), "payload": map[string]any{}}},
		{topic: "wm.persist", dedupeKey: "wm", payload: map[string]any{"x": 1}},
		{topic: "graph.delete_link", dedupeKey: "unlink", payload: map[string]any{"x": 1}},
		{topic: TopicLink, dedupeKey: "ok-2", payload: map[string]any{"from_coord": coordList(1), "to_coord": coordList(2)}},
	})
	stop := h.runRelay(h.newRelay(h.relayConfig()))
	waitFor(t, 20*time.Second, "the good rows sent", func() bool { return h.statusCounts()["sent"] == 2 })
	stop()
	for key, reason := range map[string]string{
		"not-object": "payload: must be a JSON object", "two-numbers": "coord: has 2 numbers, want 3",
		"no-payload": "payload: must be a JSON object", "bad-coord": "bad coord", "no-to": "to_coord: missing",
		"huge": "exceeds the max payload of 65536 bytes", "bad-tenant": "tenant",
	} {
		status, lastError := h.rowState(key)
		if status != "failed" || !strings.Contains(lastError, reason) {
			t.Errorf("row %s: %s %q, want failed with %q", key, status, lastError, reason)
		}
	}
	for _, key := range []string{"wm", "unlink"} {
		if status, _ := h.rowState(key); status != "pending" {
			t.Errorf("row %s of a topic jetbox does not carry: %s, want left pending", key, status)
		}
	}
	waitFor(t, 10*time.Second, "the link applied with SomaFractalMemory's defaults", func() bool {
		hist := h.store.History("public", producer.FormatCoord([3]float64(coordList(1))))
		return len(hist) == 2 && hist[1].Op == "link" && hist[1].IdempotencyKey == "ok-2"
	})

	cfg := h.relayConfig()
	cfg.FailUnknown = true
	stop = h.runRelay(h.newRelay(cfg))
	waitFor(t, 20*time.Second, "unknown topics failed", func() bool { return h.statusCounts()["pending"] == 0 })
	stop()
	if status, lastError := h.rowState("wm"); status != "failed" || !strings.Contains(lastError, `topic not carried by jetbox: "wm.persist"`) {
		t.Errorf("wm.persist with FailUnknown: %s %q", status, lastError)
	}
}

// While the NATS server is down nothing is marked sent and nothing is
// lost; once it is back the relay catches up, each write once.
func TestStreamUnavailableThenRecovered(t *testing.T) {
	dir := t.TempDir()
	addr := "127.0.0.1:" + freeTCPPort(t)
	h := newHarness(t, natstest.WithStoreDir(dir), natstest.WithListen(addr))
	h.startWorker()
	w := newWorkload(400, 4, 4)
	h.insert(w.rows[:200])
	h.runRelay(h.newRelay(h.relayConfig()))
	h.waitAllSent(200, 30*time.Second)

	h.ns.Shutdown()
	h.ns.WaitForShutdown()
	h.insert(w.rows[200:])
	time.Sleep(3 * time.Second) // the relay tries and fails meanwhile
	if n := h.statusCounts()["sent"]; n != 200 {
		t.Fatalf("%d rows sent while the stream was down, want 200", n)
	}
	restarted := natstest.Start(t, natstest.WithStoreDir(dir), natstest.WithListen(addr))
	defer restarted.Shutdown()
	start := time.Now()
	h.waitAllSent(400, 60*time.Second)
	t.Logf("sent %v after the restart", time.Since(start))
	h.waitApplied(w.writes, 60*time.Second)
	t.Logf("applied %v after the restart", time.Since(start))
	time.Sleep(500 * time.Millisecond)
	w.check(t, h)
}

// The trigger in deploy/postgres, which docker-compose's PostgreSQL runs,
// is the one 'jetbox relay --install-trigger' installs.
func TestDeployedTriggerIsTheRelaysTrigger(t *testing.T) {
	b, err := os.ReadFile("../deploy/postgres/02-jetbox-relay-trigger.sql")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), TriggerSQL) {
		t.Fatalf("deploy/postgres/02-jetbox-relay-trigger.sql differs from relay.TriggerSQL:\n%s", TriggerSQL)
	}
}

// Rows map to the bodies SomaFractalMemory takes: coords from number
// lists as Python's str(float), strength (not weight), absent optional
// fields left out, and SomaBrain's fast-ack rows by key.
func TestRowsMapToSomaFractalMemoryBodies(t *testing.T) {
	m := mapper{mode: streams.ModeSync, universe: "real", maxPayload: func() int64 { return 1 << 20 }}
	cases := []struct {
		topic, payload, subject, body string
	}{
		{TopicStore, `{"coord": [1, 0.1, 1e-05], "payload": {"a": "<&>"}, "request_id": "r1"}`,
			"memory.acme.sync.store", `{"coord":"1.0,0.1,1e-05","payload":{"a":"<&>"},"memory_type":"episodic"}`},
		{TopicStore, `{"key": "hello", "payload": {"universe": "real", "memory_type": "semantic"}}`,
			"memory.acme.sync.store", `{"coord":"-0.12503166683018208,-0.7219827054068446,0.24664257746189833","payload":{"universe":"real","memory_type":"semantic"},"memory_type":"semantic"}`},
		{TopicDelete, `{"coord": "1,2,3"}`, "memory.acme.sync.delete", `{"coord":"1,2,3"}`},
		{TopicLink, `{"from_coord": [1, 2, 3], "to_coord": [4, 5, 6], "link_type": null, "strength": 0.25, "metadata": null}`,
			"memory.acme.sync.link", `{"from_coord":"1.0,2.0,3.0","to_coord":"4.0,5.0,6.0","link_type":"related","strength":0.25}`},
		{TopicLink, `{"from_coord": [1, 2, 3], "to_coord": [4, 5, 6], "link_type": "cites", "metadata": {"k": 1}}`,
			"memory.acme.sync.link", `{"from_coord":"1.0,2.0,3.0","to_coord":"4.0,5.0,6.0","link_type":"cites","metadata":{"k":1}}`},
	}
	for _, c := range cases {
		ws, err := m.mapRow(row{id: 1, topic: c.topic, payload: []byte(c.payload), dedupeKey: "dk", tenant: "acme"})
		if err != nil || len(ws) != 1 {
			t.Fatalf("%s %s: %d writes, %v", c.topic, c.payload, len(ws), err)
		}
		msg := ws[0].msg
		if msg.Subject != c.subject || string(msg.Data) != c.body {
			t.Errorf("%s %s:\n got %s %s\nwant %s %s", c.topic, c.payload, msg.Subject, msg.Data, c.subject, c.body)
		}
		if msg.Header.Get("Nats-Msg-Id") != "acme:dk" || msg.Header.Get("Soma-Idempotency-Key") != "dk" ||
			msg.Header.Get("Soma-Tenant") != "acme" || msg.Header.Get("Soma-Reply-To") != "" {
			t.Errorf("%s: headers %v", c.topic, msg.Header)
		}
	}
	ws, err := m.mapRow(row{id: 2, topic: TopicBulkStore, dedupeKey: "bk", tenant: "acme.eu",
		payload: []byte(`{"request_id": "r", "items": [{"coord": [1,2,3], "payload": {}}, {"key": "k", "value": {"v": 1}, "universe": "u"}]}`)})
	if err != nil || len(ws) != 2 {
		t.Fatalf("bulk: %d writes, %v", len(ws), err)
	}
	for i, w := range ws {
		idx := []string{"0", "1"}[i]
		if w.msg.Header.Get("Nats-Msg-Id") != "acme~2Eeu:bk:"+idx || w.msg.Header.Get("X-Request-ID") != "r:"+idx {
			t.Errorf("bulk item %d: headers %v", i, w.msg.Header)
		}
	}
	if want := producer.CoordFromKey("u", "k"); !strings.Contains(string(ws[1].msg.Data), want) {
		t.Errorf("bulk item by key in universe u: %s, want coord %s", ws[1].msg.Data, want)
	}
	if _, err := m.mapRow(row{topic: "wm.evict", payload: []byte(`{}`)}); !errors.Is(err, ErrUnknownTopic) {
		t.Errorf("wm.evict: %v, want ErrUnknownTopic", err)
	}
}

func freeTCPPort(t *testing.T) string {
	t.Helper()
	s := natstest.Start(t) // a port the kernel just handed out, freed at once
	port := strings.TrimPrefix(s.ClientURL(), "nats://127.0.0.1:")
	s.Shutdown()
	s.WaitForShutdown()
	return port
}
