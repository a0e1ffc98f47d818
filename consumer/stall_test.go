package consumer

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetbox-dev/jetbox/streams"
)

// A hostile tenant publishes, as a raw client, writes that nats.go would
// read as the server's own messages: empty bodies with a Status header
// (409 Consumer Deleted used to end the partition's pull loop for good;
// other codes were swallowed and redelivered forever), and valid writes
// with a forged Nats-Pin-Id (the owner then pulled with the wrong pin and
// stalled). Each poison is dead-lettered as bad input, the forged-pin
// writes are applied, and then 30 writes of the attacker's own partition
// and 200 of other tenants are all applied within 20 s, by a worker that
// is still running and ready.
func TestStatusAndPinForgeriesStallNobody(t *testing.T) {
	h := newHarness(t)
	rw := h.startWorker(h.workerConfig())
	ctx := context.Background()
	publish := func(subject string, header map[string]string, body string) {
		t.Helper()
		m := nats.NewMsg(subject)
		for k, v := range header {
			m.Header.Set(k, v)
		}
		m.Data = []byte(body)
		if _, err := h.js.PublishMsg(ctx, m); err != nil {
			t.Fatalf("publish to %s: %v", subject, err)
		}
	}
	poisons := 0
	for _, status := range []string{"409", "400", "408", "404", "100", "423"} {
		for _, mode := range streams.Modes {
			publish("memory.mallory."+string(mode)+".store", map[string]string{"Status": status, "Description": "Consumer Deleted"}, "")
			poisons++
		}
	}
	for i := range 10 {
		publish("memory.mallory.fast_ack.store", map[string]string{"Nats-Pin-Id": "forged-pin-id"}, fmt.Sprintf(`{"coord":"%d,0,0","payload":{}}`, i))
	}
	start := time.Now()
	for i := range 30 {
		publish("memory.mallory.fast_ack.store", nil, fmt.Sprintf(`{"coord":"%d,1,0","payload":{}}`, i))
	}
	for i := range 200 {
		publish(fmt.Sprintf("memory.t%d.%s.store", i%20, streams.Modes[i%3]), nil, fmt.Sprintf(`{"coord":"%d,2,0","payload":{}}`, i))
	}
	waitFor(t, 20*time.Second, "every healthy write applied", func() bool {
		return h.store.TenantStats("mallory").Applied == 40 && h.totals().Applied == 240
	})
	t.Logf("240 healthy writes applied %s after the last poison", time.Since(start).Round(time.Millisecond))
	waitFor(t, 10*time.Second, "every poison dead-lettered", func() bool { return len(h.deadLetters()) == poisons })
	for _, dl := range h.deadLetters() {
		if hd := dl.Headers(); hd.Get(streams.HeaderDLQClass) != string(streams.ClassBadInput) || hd.Get(streams.HeaderDLQError) != "bad input: empty body" {
			t.Errorf("dead letter %s: class %q, reason %q", dl.Subject(), hd.Get(streams.HeaderDLQClass), hd.Get(streams.HeaderDLQError))
		}
	}
	select {
	case err := <-rw.done:
		t.Fatalf("the worker stopped: %v", err)
	default:
	}
	if err := rw.Ready(); err != nil {
		t.Fatalf("worker not ready: %v", err)
	}
	// Nothing is left pending: no partition holds a swallowed write. (The
	// last acks may still be on their way when the counts match.)
	for _, mode := range streams.Modes {
		for p := range h.streams.Partitions {
			c, err := h.js.Consumer(ctx, h.streams.Stream, streams.PartitionConsumerName(mode, p))
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, 10*time.Second, "nothing pending on "+streams.PartitionConsumerName(mode, p), func() bool {
				info, err := c.Info(ctx)
				return err == nil && info.NumAckPending == 0 && info.NumPending == 0
			})
		}
	}
}
