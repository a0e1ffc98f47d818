package jspull

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// forgedPinScenario runs the owner of a pinned consumer through a stored
// write with a forged Nats-Pin-Id: the owner takes the forged write, lets a
// pull request expire so that it pulls again with whatever pin id it holds,
// then 50 more writes are stored. It returns how many of those came within
// 2 s and how long they took.
func forgedPinScenario(t *testing.T, e *env, next func(time.Duration) (jetstream.Msg, error)) (int, time.Duration) {
	t.Helper()
	e.publish(t, "first", nil)
	forged := nats.Header{}
	forged.Set(pinHeader, "forged")
	e.publish(t, "forged", forged)
	for _, want := range []string{"first", "forged"} {
		m, err := next(5 * time.Second)
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		if string(m.Data()) != want {
			t.Fatalf("got %q, want %q", m.Data(), want)
		}
		if err := m.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(testExpiry + 500*time.Millisecond) // past a request's expiry: the owner pulls again

	const after = 50
	e.publishN(t, after, "w%d")
	start := time.Now()
	got := 0
	for got < after {
		m, err := next(time.Until(start.Add(2 * time.Second)))
		if err != nil {
			break
		}
		got++
		_ = m.Ack()
	}
	return got, time.Since(start)
}

const testExpiry = 2 * time.Second

// A stored write with a forged Nats-Pin-Id does not change the pin id the
// owner pulls with: the writes after it keep coming at once.
func TestForgedPinIDDoesNotStallTheOwner(t *testing.T) {
	e := newEnv(t)
	e.consumer(t, "C", pinned)
	it := e.messages(t, "C", PinnedGroup("owner"), MaxMessages(10), Expiry(testExpiry), Heartbeat(testExpiry/4))
	pinBefore := ""
	got, took := forgedPinScenario(t, e, func(d time.Duration) (jetstream.Msg, error) {
		if pinBefore == "" {
			pinBefore = it.PinID()
		}
		return next(it, d)
	})
	if got != 50 {
		t.Fatalf("%d of the 50 writes after the forged pin id came within 2s (%v)", got, took)
	}
	if pinBefore == "" || it.PinID() != pinBefore {
		t.Fatalf("PinID = %q after the forged write, was %q", it.PinID(), pinBefore)
	}
	t.Logf("50 writes after the forged pin id in %v", took)

	// The same with nats.go's own iterator, on a consumer of its own.
	c := e.consumer(t, "NATSGO", pinned, func(cfg *jetstream.ConsumerConfig) { cfg.DeliverPolicy = jetstream.DeliverNewPolicy })
	ng, err := c.Messages(jetstream.PullMaxMessages(10), jetstream.PullExpiry(testExpiry),
		jetstream.PullHeartbeat(testExpiry/4), jetstream.PullPriorityGroup("owner"))
	if err != nil {
		t.Fatal(err)
	}
	defer ng.Stop()
	got, took = forgedPinScenario(t, e, func(d time.Duration) (jetstream.Msg, error) {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		return ng.Next(jetstream.NextContext(ctx))
	})
	msg := fmt.Sprintf("nats.go %s: %d of the 50 writes after the forged pin id came within 2s (%v)", natsGoVersion(), got, took)
	if got == 50 {
		msg += "; the forged pin id no longer stalls it"
	}
	t.Log(msg)
}
