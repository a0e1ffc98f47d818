package producer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetbox-dev/jetbox/internal/natstest"
	"github.com/jetbox-dev/jetbox/streams"
)

func TestRefused(t *testing.T) {
	addr, err := streams.NewAddress("acme.eu", streams.ModeFastAck, streams.OpLink)
	if err != nil {
		t.Fatal(err)
	}
	api := func(code int, errCode jetstream.ErrorCode, desc string) error {
		return fmt.Errorf("nats: %w", &jetstream.APIError{Code: code, ErrorCode: errCode, Description: desc})
	}
	for name, c := range map[string]struct {
		err  error
		want error // nil: transient, retried
	}{
		"max msgs":           {api(503, 10077, "maximum messages exceeded"), ErrOutboxFull},
		"max bytes":          {api(503, 10077, "maximum bytes exceeded"), ErrOutboxFull},
		"max per subject":    {api(503, 10077, "maximum messages per subject exceeded"), ErrTenantBacklogFull},
		"account limits":     {api(400, 10002, "resource limits exceeded for account"), ErrOutboxFull},
		"server limits":      {api(503, 10023, "insufficient resources"), ErrOutboxFull},
		"stream max size":    {api(400, 10054, "message size exceeds maximum allowed"), ErrPayloadTooLarge},
		"store too large":    {api(503, 10077, "message too large"), ErrPayloadTooLarge},
		"client max payload": {nats.ErrMaxPayload, ErrPayloadTooLarge},
		"unavailable":        {api(503, 10008, "JetStream system temporarily unavailable"), nil},
		"store io error":     {api(503, 10077, "write error"), nil},
		"timeout":            {nats.ErrTimeout, nil},
		"deadline":           {context.DeadlineExceeded, nil},
		"no responders":      {jetstream.ErrNoStreamResponse, nil},
		"reconnecting":       {nats.ErrReconnectBufExceeded, nil},
		"ack timeout":        {jetstream.ErrAsyncPublishTimeout, nil},
		"disconnected":       {nats.ErrDisconnected, nil},
		"stalled":            {jetstream.ErrTooManyStalledMsgs, nil},
		"publisher closed":   {jetstream.ErrJetStreamPublisherClosed, ErrClosed},
	} {
		got := refused(c.err, 100, addr)
		if (got == nil) != (c.want == nil) || c.want != nil && !errors.Is(got, c.want) {
			t.Errorf("%s: refused = %v, want %v", name, got, c.want)
		}
	}
	// A full tenant backlog is not a full outbox, and names the tenant.
	got := refused(api(503, 10077, "maximum messages per subject exceeded"), 100, addr)
	var full *TenantBacklogFullError
	if errors.Is(got, ErrOutboxFull) || !errors.As(got, &full) || full.Tenant != "acme.eu" || full.Mode != streams.ModeFastAck || full.Op != streams.OpLink {
		t.Errorf("per-subject refusal = %#v, want a *TenantBacklogFullError for acme.eu fast_ack link only", got)
	}
	for name, err := range map[string]error{
		"sealed":            api(400, 10109, "invalid operation on sealed stream"),
		"wrong last seq":    api(400, 10071, "wrong last sequence: 3"),
		"connection closed": nats.ErrConnectionClosed,
	} {
		got := refused(err, 100, addr)
		if got == nil || errors.Is(got, ErrOutboxFull) || !errors.Is(got, err) {
			t.Errorf("%s: refused = %v, want a permanent error wrapping the cause", name, got)
		}
	}
}

func TestPublishAttempt(t *testing.T) {
	for timeout, want := range map[time.Duration]time.Duration{
		5 * time.Second:        1250 * time.Millisecond,
		500 * time.Millisecond: 125 * time.Millisecond,
		time.Minute:            2 * time.Second,
		200 * time.Millisecond: 100 * time.Millisecond,
		50 * time.Millisecond:  50 * time.Millisecond,
	} {
		if got := publishAttempt(timeout); got != want {
			t.Errorf("publishAttempt(%v) = %v, want %v", timeout, got, want)
		}
	}
	for attempt := range 10 {
		d := backoff(attempt)
		if d < 5*time.Millisecond || d > 500*time.Millisecond {
			t.Errorf("backoff(%d) = %v", attempt, d)
		}
	}
}

// silentOutbox is a server whose "outbox" takes every write and never acks
// it: a core subscriber on memory.> instead of the stream, so that a publish
// finds a responder (no "no responders") and its ack never comes.
type silentOutbox struct {
	nc *nats.Conn

	mu  sync.Mutex
	ids []string // Nats-Msg-Id of every publish received, in order
}

func newSilentOutbox(t *testing.T) *silentOutbox {
	t.Helper()
	srv := natstest.Start(t)
	s := &silentOutbox{}
	listener, _ := srv.Connect(t)
	sub, err := listener.Subscribe("memory.>", func(m *nats.Msg) {
		s.mu.Lock()
		s.ids = append(s.ids, m.Header.Get(streams.HeaderMsgID))
		s.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := listener.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	s.nc, _ = srv.Connect(t)
	return s
}

func (s *silentOutbox) received() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ids...)
}

func TestFastAckAckNeverComes(t *testing.T) {
	out := newSilentOutbox(t)
	p := newProducer(t, out.nc, Config{Mode: streams.ModeFastAck, PublishTimeout: time.Second})
	start := time.Now()
	res, err := p.Store(ctxT(t), StoreRequest{Tenant: "acme", Key: "k", Payload: json.RawMessage(`{}`)}, WithIdempotencyKey("once"))
	took := time.Since(start)
	if !errors.Is(err, ErrPublishTimeout) {
		t.Fatalf("err %v, want ErrPublishTimeout", err)
	}
	if took < 900*time.Millisecond || took > 2*time.Second {
		t.Fatalf("returned after %v, want about the 1s publish timeout", took)
	}
	// Each attempt waited its 250ms ack timeout, then was sent again with
	// the same Nats-Msg-Id.
	ids := out.received()
	if len(ids) < 2 {
		t.Fatalf("%d attempts, want several", len(ids))
	}
	want := "acme:" + DeriveIdempotencyKey(streams.OpStore, "acme", "once", []byte(`{"coord":"`+CoordFromKey("real", "k")+`","payload":{},"memory_type":"episodic"}`))
	for i, id := range ids {
		if id != want || id != res.MsgID {
			t.Fatalf("attempt %d has Nats-Msg-Id %q, want %q (result %q)", i, id, want, res.MsgID)
		}
	}
}

func TestFastAckCanceledWhileAwaitingAck(t *testing.T) {
	out := newSilentOutbox(t)
	p := newProducer(t, out.nc, Config{Mode: streams.ModeFastAck, PublishTimeout: 5 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err := p.Store(ctx, StoreRequest{Key: "k", Payload: json.RawMessage(`{}`)})
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrPublishTimeout) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Fatalf("returned %v after the call, want soon after its context was canceled", took)
	}

	// The caller's deadline is a publish timeout.
	ctx, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := p.Store(ctx, StoreRequest{Key: "k", Payload: json.RawMessage(`{}`)}); !errors.Is(err, ErrPublishTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want ErrPublishTimeout wrapping context.DeadlineExceeded", err)
	}
}

func TestCloseEndsWritesAwaitingAck(t *testing.T) {
	out := newSilentOutbox(t)
	subs := out.nc.NumSubscriptions()
	p := newProducer(t, out.nc, Config{Mode: streams.ModeFastAck, PublishTimeout: 10 * time.Second})
	done := make(chan error, 1)
	go func() {
		_, err := p.Store(ctxT(t), StoreRequest{Key: "k", Payload: json.RawMessage(`{}`)})
		done <- err
	}()
	for len(out.received()) == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	if err := p.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("err %v, want ErrClosed", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("a write awaiting its ack outlived Close")
	}
	if n := out.nc.NumSubscriptions(); n != subs {
		t.Fatalf("%d subscriptions after Close, %d before New", n, subs)
	}
}
