package jspull

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetbox-dev/jetbox/internal/natstest"
)

const testStream = "OUT"

type env struct {
	srv *natstest.Server
	nc  *nats.Conn
	js  jetstream.JetStream
}

func newEnv(t *testing.T, opts ...natstest.Option) *env {
	t.Helper()
	srv := natstest.Start(t, opts...)
	nc, js := srv.Connect(t)
	if _, err := js.CreateStream(ctxT(t), jetstream.StreamConfig{Name: testStream, Subjects: []string{"out.>"}}); err != nil {
		t.Fatal(err)
	}
	return &env{srv: srv, nc: nc, js: js}
}

// consumer creates a durable consumer; adjust changes its defaults
// (explicit acks, 30 s ack wait).
func (e *env) consumer(t *testing.T, name string, adjust ...func(*jetstream.ConsumerConfig)) jetstream.Consumer {
	t.Helper()
	cfg := jetstream.ConsumerConfig{Durable: name, AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second}
	for _, a := range adjust {
		a(&cfg)
	}
	c, err := e.js.CreateConsumer(ctxT(t), testStream, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func pinned(cfg *jetstream.ConsumerConfig) {
	cfg.PriorityPolicy = jetstream.PriorityPolicyPinned
	cfg.PriorityGroups = []string{"owner"}
	cfg.PinnedTTL = 20 * time.Second
}

// publish stores a write; an empty body with headers is what a hostile
// publisher stores to look like a server status.
func (e *env) publish(t *testing.T, data string, header nats.Header) uint64 {
	t.Helper()
	ack, err := e.js.PublishMsg(ctxT(t), &nats.Msg{Subject: "out.w", Data: []byte(data), Header: header})
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

func (e *env) publishN(t *testing.T, n int, format string) {
	t.Helper()
	for i := range n {
		e.publish(t, fmt.Sprintf(format, i), nil)
	}
}

func (e *env) messages(t *testing.T, consumer string, opts ...Option) *Iterator {
	t.Helper()
	it, err := Messages(e.nc, testStream, consumer, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(it.Stop)
	return it
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// next waits up to d for the iterator's next message.
func next(it *Iterator, d time.Duration) (jetstream.Msg, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return it.Next(ctx)
}

// mustNext returns the next message or fails the test.
func mustNext(t *testing.T, it *Iterator, d time.Duration) jetstream.Msg {
	t.Helper()
	m, err := next(it, d)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return m
}

func poisonHeader(status, description string) nats.Header {
	h := nats.Header{}
	h.Set("Status", status)
	if description != "" {
		h.Set("Description", description)
	}
	return h
}
