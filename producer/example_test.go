package producer_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetbox-dev/jetbox/producer"
	"github.com/jetbox-dev/jetbox/streams"
)

// startOutbox runs a throwaway nats-server with the outbox provisioned on
// a loopback port, as `jetbox run` would, and returns a connection to it.
func startOutbox() (*nats.Conn, func()) {
	dir, err := os.MkdirTemp("", "jetbox-example-")
	if err != nil {
		log.Fatal(err)
	}
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
	if err != nil {
		log.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		log.Fatal("nats-server not ready")
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		log.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := streams.Provision(ctx, js, streams.DefaultConfig()); err != nil {
		log.Fatal(err)
	}
	return nc, func() { nc.Close(); srv.Shutdown(); srv.WaitForShutdown(); os.RemoveAll(dir) }
}

// A service stores a memory and waits until the outbox has it (fast_ack):
// the write is durable, and workers apply it to the memory API.
func Example() {
	nc, stop := startOutbox()
	defer stop()
	ctx := context.Background()

	p, err := producer.New(nc, producer.Config{Mode: streams.ModeFastAck})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close(ctx)

	res, err := p.Store(ctx, producer.StoreRequest{
		Namespace: "memory:sandbox-tenant", // the tenant is its last segment
		Key:       "user-42/likes",         // the coord is derived from the key
		Payload:   map[string]any{"text": "likes tea"},
	}, producer.WithRequestID("req-1"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Subject, res.Sequence, res.Duplicate)
	// Output: memory.sandbox-tenant.fast_ack.store 1 false
}

// The same write retried with the same request id (a caller retrying after
// a lost answer, in this process or another) is stored once.
func ExampleProducer_Store_retry() {
	nc, stop := startOutbox()
	defer stop()
	ctx := context.Background()
	p, err := producer.New(nc, producer.Config{Mode: streams.ModeFastAck})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close(ctx)

	req := producer.StoreRequest{Tenant: "acme", Coord: "0.1,0.2,0.3", Payload: map[string]any{"n": 1}}
	first, _ := p.Store(ctx, req, producer.WithRequestID("req-7"))
	again, _ := p.Store(ctx, req, producer.WithRequestID("req-7"))
	fmt.Println(first.Duplicate, again.Duplicate, first.MsgID == again.MsgID)
	// Output: false true true
}

// A link with SomaFractalMemory's fields: strength (0 included) and
// metadata.
func ExampleProducer_Link() {
	nc, stop := startOutbox()
	defer stop()
	ctx := context.Background()
	p, err := producer.New(nc, producer.Config{Mode: streams.ModeFastAck})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close(ctx)

	strength := 0.25
	res, err := p.Link(ctx, producer.LinkRequest{
		Tenant: "acme", FromKey: "tea", ToKey: "green tea",
		LinkType: "related", Strength: &strength, Metadata: map[string]any{"source": "chat"},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Subject)
	// Output: memory.acme.fast_ack.link
}

// Bad input is a typed error at the call, and nothing is published.
func ExampleInvalidRequestError() {
	nc, stop := startOutbox()
	defer stop()
	ctx := context.Background()
	p, err := producer.New(nc, producer.Config{Mode: streams.ModeFastAck})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close(ctx)

	_, err = p.Store(ctx, producer.StoreRequest{Tenant: "acme", Coord: "1,2", Payload: map[string]any{}})
	var invalid *producer.InvalidRequestError
	fmt.Println(errors.As(err, &invalid), errors.Is(err, producer.ErrInvalidRequest), invalid.Field)
	// Output: true true coord
}
