package jspull

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// With Hold, the iterator takes no more writes than the caller can use: it
// stops pulling while the caller's count is at the limit, and takes more
// once the caller has let half of them go and poked it. Nothing is lost on
// the way.
func TestHoldTakesNoMoreThanTheCallerCanUse(t *testing.T) {
	e := newEnv(t)
	c := e.consumer(t, "C")
	const n, limit = 60, 10
	e.publishN(t, n, "w%d")
	var holding atomic.Int64
	it := e.messages(t, "C", MaxMessages(100), Expiry(2*time.Second), Hold(func() (int, int) { return limit, int(holding.Load()) }))

	var held []jetstream.Msg
	seen := 0
	for seen < n {
		m, err := next(it, 300*time.Millisecond)
		if err != nil {
			// Held back: the server delivered no more than the caller can use.
			info, err := c.Info(ctxT(t))
			if err != nil {
				t.Fatal(err)
			}
			if len(held) <= limit/2 || info.NumAckPending > limit {
				t.Fatalf("stalled after %d writes: holding %d, %d delivered and unacked, want %d to %d", seen, len(held), info.NumAckPending, limit/2+1, limit)
			}
			// Let go of more than half, and say so.
			for _, h := range held[:limit/2+1] {
				if err := h.Ack(); err != nil {
					t.Fatal(err)
				}
			}
			held = held[limit/2+1:]
			holding.Store(int64(len(held)))
			it.Poke()
			continue
		}
		seen++
		held = append(held, m)
		holding.Store(int64(len(held)))
		if len(held) > limit {
			t.Fatalf("the iterator handed out %d writes while the caller held %d, over the limit %d", seen, len(held)-1, limit)
		}
	}
}

// An iterator held back by Hold keeps its pin: it asks for one write every
// Expiry, so the server neither unpins it (the pin's time-out here is
// shorter than the test) nor lets writes pile up in it.
func TestHoldKeepsThePin(t *testing.T) {
	e := newEnv(t)
	const ttl, expiry = 1500 * time.Millisecond, 500 * time.Millisecond
	c := e.consumer(t, "C", func(cfg *jetstream.ConsumerConfig) {
		pinned(cfg)
		cfg.PinnedTTL = ttl
	})
	e.publishN(t, 100, "w%d")
	var holding atomic.Int64
	const limit = 4
	it := e.messages(t, "C", MaxMessages(50), Expiry(expiry), Heartbeat(expiry/4), PinnedGroup("owner"),
		Hold(func() (int, int) { return limit, int(holding.Load()) }))
	// The caller takes writes and never gets them going.
	for range limit {
		mustNext(t, it, 5*time.Second)
		holding.Add(1)
	}
	pin := it.PinID()
	if pin == "" {
		t.Fatal("no pin id after the first writes")
	}
	const wait = 3 * ttl
	deadline := time.Now().Add(wait)
	extra := 0
	for time.Now().Before(deadline) {
		if _, err := next(it, time.Until(deadline)); err == nil {
			extra++
			holding.Add(1)
		}
	}
	info, err := c.Info(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	var pinnedTo string
	for _, g := range info.PriorityGroups {
		if g.Group == "owner" {
			pinnedTo = g.PinnedClientID
		}
	}
	if pinnedTo != pin || it.PinID() != pin {
		t.Fatalf("after %s held back (pin time-out %s): pinned to %q, iterator's pin %q, want both %q", wait, ttl, pinnedTo, it.PinID(), pin)
	}
	// One write per Expiry at most, and at least one: the pin was kept by
	// asking.
	if most := int(wait/expiry) + 1; extra < 1 || extra > most {
		t.Fatalf("held back for %s, the iterator took %d more writes, want 1 to %d", wait, extra, most)
	}
}
