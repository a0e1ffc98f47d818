package jspull

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetbox-dev/jetbox/internal/natstest"
)

// With a byte bound, the writes handed out and not yet settled never add up
// to more than the bound; settling them lets the rest come.
func TestByteBoundHoldsWhatTheCallerHolds(t *testing.T) {
	e := newEnv(t)
	e.consumer(t, "C")
	const n, body, bound = 40, 1000, 5000
	e.publishN(t, n, "%0"+fmt.Sprint(body)+"d")
	it := e.messages(t, "C", MaxBytes(bound), MaxMessages(100), Expiry(2*time.Second))

	var held []jetstream.Msg
	delivered := 0
	for delivered < n {
		m, err := next(it, 300*time.Millisecond)
		if errors.Is(err, context.DeadlineExceeded) {
			if len(held) == 0 {
				t.Fatalf("stalled after %d of %d writes with nothing held", delivered, n)
			}
			// Everything the bound allows is out: settle it.
			for _, h := range held {
				if err := h.Ack(); err != nil {
					t.Fatal(err)
				}
			}
			held = held[:0]
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		delivered++
		held = append(held, m)
		// The smallest a write can weigh against the bound: subject, ack
		// reply subject and body.
		bytes := 0
		for _, h := range held {
			bytes += len(h.Subject()) + len(h.Reply()) + len(h.Data())
		}
		if bytes > bound {
			t.Fatalf("holding %d writes, at least %d bytes, over the %d bound", len(held), bytes, bound)
		}
	}
}

// Ack, Nak, NakWithDelay, InProgress and Term do to the server what their
// names say, and a second terminal acknowledgement is refused.
func TestAcknowledgements(t *testing.T) {
	e := newEnv(t)
	e.consumer(t, "C", func(cfg *jetstream.ConsumerConfig) { cfg.AckWait = time.Second })
	it := e.messages(t, "C", Expiry(2*time.Second), MaxMessages(1))
	deliver := func(data string) jetstream.Msg {
		t.Helper()
		m := mustNext(t, it, 5*time.Second)
		if string(m.Data()) != data {
			t.Fatalf("got %q, want %q", m.Data(), data)
		}
		return m
	}
	quiet := func(d time.Duration) {
		t.Helper()
		if m, err := next(it, d); err == nil {
			t.Fatalf("unexpected delivery of %q", m.Data())
		}
	}

	t.Run("Ack", func(t *testing.T) {
		seq := e.publish(t, "ack", nil)
		m := deliver("ack")
		meta, err := m.Metadata()
		if err != nil {
			t.Fatal(err)
		}
		if meta.Stream != testStream || meta.Consumer != "C" || meta.Sequence.Stream != seq || meta.NumDelivered != 1 || meta.NumPending != 0 ||
			time.Since(meta.Timestamp) > 10*time.Second {
			t.Fatalf("metadata %+v", meta)
		}
		if err := m.Ack(); err != nil {
			t.Fatal(err)
		}
		if err := m.Ack(); !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
			t.Fatalf("second Ack: %v, want ErrMsgAlreadyAckd", err)
		}
		if err := m.InProgress(); !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
			t.Fatalf("InProgress after Ack: %v, want ErrMsgAlreadyAckd", err)
		}
		quiet(1500 * time.Millisecond) // past the ack wait: not redelivered
	})
	t.Run("Nak", func(t *testing.T) {
		e.publish(t, "nak", nil)
		if err := deliver("nak").Nak(); err != nil {
			t.Fatal(err)
		}
		m := deliver("nak")
		if meta, _ := m.Metadata(); meta.NumDelivered != 2 {
			t.Fatalf("redelivered with NumDelivered %d, want 2", meta.NumDelivered)
		}
		if err := m.DoubleAck(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("NakWithDelay", func(t *testing.T) {
		e.publish(t, "delay", nil)
		start := time.Now()
		if err := deliver("delay").NakWithDelay(800 * time.Millisecond); err != nil {
			t.Fatal(err)
		}
		m := deliver("delay")
		if took := time.Since(start); took < 700*time.Millisecond {
			t.Fatalf("redelivered after %v, want the 800ms delay", took)
		}
		if err := m.Term(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("InProgress", func(t *testing.T) {
		e.publish(t, "slow", nil)
		m := deliver("slow")
		for range 5 { // 1.5 s, past the 1 s ack wait
			time.Sleep(300 * time.Millisecond)
			if err := m.InProgress(); err != nil {
				t.Fatal(err)
			}
		}
		quiet(300 * time.Millisecond)
		deliver("slow").Ack() // once the reports stop, the ack wait runs out
	})
	t.Run("Term", func(t *testing.T) {
		e.publish(t, "term", nil)
		m := deliver("term")
		if err := m.TermWithReason("poison"); err != nil {
			t.Fatal(err)
		}
		if err := m.Nak(); !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
			t.Fatalf("Nak after Term: %v, want ErrMsgAlreadyAckd", err)
		}
		quiet(1500 * time.Millisecond)
	})
}

// After the nats-server restarts on the same port and data, the iterator
// pulls again by itself and the writes stored since come.
func TestIteratorResumesAfterServerRestart(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, natstest.WithStoreDir(dir))
	addr := e.srv.Addr().String()
	e.consumer(t, "C")
	it := e.messages(t, "C", Expiry(2*time.Second), Heartbeat(250*time.Millisecond), MaxMessages(10))
	e.publish(t, "before", nil)
	if err := mustNext(t, it, 5*time.Second).Ack(); err != nil {
		t.Fatal(err)
	}

	e.srv.Shutdown()
	e.srv.WaitForShutdown()
	srv := natstest.Start(t, natstest.WithStoreDir(dir), natstest.WithListen(addr))
	_, js := srv.Connect(t)
	if _, err := js.Publish(ctxT(t), "out.w", []byte("after")); err != nil {
		t.Fatal(err)
	}
	// Heartbeats lost during the restart may be reported; pulling goes on.
	var m jetstream.Msg
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if m, err = next(it, time.Until(deadline)); !errors.Is(err, jetstream.ErrNoHeartbeat) {
			break
		}
	}
	if err != nil {
		t.Fatalf("Next after the restart: %v", err)
	}
	if string(m.Data()) != "after" {
		t.Fatalf("got %q, want the write stored after the restart", m.Data())
	}
	if err := m.Ack(); err != nil {
		t.Fatal(err)
	}
}

// Drain hands out what is buffered and then ends; Stop ends at once. Neither
// leaves a goroutine behind.
func TestDrainAndStopEnd(t *testing.T) {
	e := newEnv(t)
	e.consumer(t, "C")
	e.consumer(t, "D")
	e.publishN(t, 3, "w%d")
	before := runtime.NumGoroutine()

	drained := e.messages(t, "C", Expiry(2*time.Second), MaxMessages(10))
	mustNext(t, drained, 5*time.Second)
	// All three are on their way to this client before the drain: a
	// write the server sends after it is redelivered, not drained.
	c := e.consumer(t, "C")
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		info, err := c.Info(context.Background())
		if err == nil && info.NumAckPending == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the three writes were not all delivered: %+v, %v", info, err)
		}
	}
	drained.Drain()
	for i := 1; i < 3; i++ {
		if m := mustNext(t, drained, 5*time.Second); string(m.Data()) != fmt.Sprintf("w%d", i) {
			t.Fatalf("drained %q, want w%d", m.Data(), i)
		}
	}
	if _, err := next(drained, 5*time.Second); !errors.Is(err, ErrIteratorClosed) {
		t.Fatalf("Next after the drain: %v, want ErrIteratorClosed", err)
	}

	stopped := e.messages(t, "D", Expiry(2*time.Second), MaxMessages(10))
	mustNext(t, stopped, 5*time.Second)
	stopped.Stop()
	if _, err := next(stopped, time.Second); !errors.Is(err, ErrIteratorClosed) {
		t.Fatalf("Next after Stop: %v, want ErrIteratorClosed", err)
	}

	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if now := runtime.NumGoroutine(); now > before {
		buf := make([]byte, 1<<16)
		stacks := string(buf[:runtime.Stack(buf, true)])
		t.Fatalf("%d goroutines after Drain and Stop, %d before:\n%s", now, before, stacks[:min(len(stacks), 4000)])
	}
}
