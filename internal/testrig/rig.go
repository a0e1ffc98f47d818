package testrig

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetbox-dev/jetbox/internal/clustertest"
	"github.com/jetbox-dev/jetbox/internal/memapi"
	"github.com/jetbox-dev/jetbox/internal/natstest"
	"github.com/jetbox-dev/jetbox/producer"
	"github.com/jetbox-dev/jetbox/streams"
)

// Streams is the outbox's layout for tests: the default, except that a
// worker that dies is replaced within seconds, not the default ten.
func Streams() streams.Config {
	cfg := streams.DefaultConfig()
	cfg.MemberTTL = 2 * time.Second
	return cfg
}

// Options is what a test's rig is made of.
type Options struct {
	// Cluster runs the outbox on a 3-node cluster (internal/clustertest)
	// instead of one embedded nats-server.
	Cluster bool
	// NATS adjusts the one embedded nats-server; unused with Cluster.
	NATS []natstest.Option
	// Streams is the outbox to provision, Streams() or adjusted from it.
	Streams streams.Config
	// Token is the memory API's bearer token.
	Token string
	// Wrap puts a recorder or a fault injector in front of the memory API.
	Wrap func(http.Handler) http.Handler
}

// Rig is one jetbox on loopback for a test.
type Rig struct {
	t       testing.TB
	Server  *natstest.Server     // nil on a cluster
	Cluster *clustertest.Cluster // nil on one server
	NC      *nats.Conn           // the test's own connection
	JS      jetstream.JetStream
	Streams streams.Config // as provisioned
	API     *MemoryAPI
}

// Start starts the NATS side, provisions the outbox and opens the memory
// API. Everything stops when the test ends.
func Start(t testing.TB, o Options) *Rig {
	t.Helper()
	r := &Rig{t: t, Streams: o.Streams}
	if o.Cluster {
		r.Cluster = clustertest.Start(t)
	} else {
		r.Server = natstest.Start(t, o.NATS...)
	}
	r.NC, r.JS = r.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := streams.Provision(ctx, r.JS, r.Streams); err != nil {
		t.Fatalf("provision with %d replicas: %v", r.Streams.Replicas, err)
	}
	api, err := OpenMemoryAPI(MemoryAPIOptions{Store: memapi.Options{Path: t.TempDir() + "/memapi.db", Token: o.Token}, Wrap: o.Wrap})
	if err != nil {
		t.Fatalf("open memory API: %v", err)
	}
	t.Cleanup(api.Close)
	r.API = api
	return r
}

// Connect opens a connection to the server or the cluster, closed when the
// test ends.
func (r *Rig) Connect(t testing.TB, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	if r.Cluster != nil {
		return r.Cluster.Connect(t, opts...)
	}
	return r.Server.Connect(t, opts...)
}

// Worker is what the rig needs of a worker: consumer.Worker is one.
type Worker interface {
	Run(ctx context.Context) error
	Ready() error
}

// RunningWorker is a worker running on its own NATS connection, as a
// separate process would have.
type RunningWorker struct {
	NC *nats.Conn
	// Done receives what Run returned. A test that takes it puts nil back,
	// so that Stop, at the test's end, returns at once.
	Done   chan error
	cancel context.CancelFunc
}

// ErrWorkerDidNotStop is what Stop returns when Run has not returned
// within stopWithin.
var ErrWorkerDidNotStop = errors.New("worker did not stop")

const (
	readyWithin = 15 * time.Second
	stopWithin  = 30 * time.Second
)

// StartWorker builds a worker with newWorker on a connection of its own,
// runs it until the test ends (or Stop) and waits until it is ready.
func (r *Rig) StartWorker(newWorker func(nc *nats.Conn) (Worker, error)) *RunningWorker {
	r.t.Helper()
	nc, _ := r.Connect(r.t)
	w, err := newWorker(nc)
	if err != nil {
		r.t.Fatalf("new worker: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rw := &RunningWorker{NC: nc, Done: make(chan error, 1), cancel: cancel}
	go func() { rw.Done <- w.Run(ctx) }()
	r.t.Cleanup(func() { _ = rw.Stop() })
	WaitFor(r.t, readyWithin, "worker ready", func() bool { return w.Ready() == nil })
	return rw
}

// Stop cancels the worker's Run and returns what Run returned, or
// ErrWorkerDidNotStop. A second Stop returns nil at once.
func (rw *RunningWorker) Stop() error {
	rw.cancel()
	select {
	case err := <-rw.Done:
		rw.Done <- nil
		return err
	case <-time.After(stopWithin):
		return ErrWorkerDidNotStop
	}
}

// Producer is a producer on the rig's connection, closed when the test
// ends.
func (r *Rig) Producer(cfg producer.Config) *producer.Producer {
	r.t.Helper()
	p, err := producer.New(r.NC, cfg)
	if err != nil {
		r.t.Fatalf("new producer: %v", err)
	}
	r.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		p.Close(ctx)
	})
	return p
}

// WaitApplied waits until the memory API has applied n distinct writes: a
// redelivery after a crash is applied again.
func (r *Rig) WaitApplied(n uint64, within time.Duration) {
	r.t.Helper()
	WaitFor(r.t, within, fmt.Sprintf("%d writes applied", n), func() bool {
		return r.API.Totals().Distinct() >= n
	})
}

// DeadLetters reads every write in the dead-letter stream.
func (r *Rig) DeadLetters() []jetstream.Msg {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := r.JS.Stream(ctx, r.Streams.DLQStream)
	if err != nil {
		r.t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		r.t.Fatal(err)
	}
	if info.State.Msgs == 0 {
		return nil
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		r.t.Fatal(err)
	}
	var out []jetstream.Msg
	for uint64(len(out)) < info.State.Msgs {
		m, err := c.Next(jetstream.FetchMaxWait(2 * time.Second))
		if err != nil {
			r.t.Fatalf("read dead letters: %v", err)
		}
		out = append(out, m)
	}
	return out
}

// WaitFor polls cond every 20 ms and fails the test if it is not true
// within the given time.
func WaitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
