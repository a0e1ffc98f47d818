package consumer

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/jetbox-dev/jetbox/internal/memapi"
	"github.com/jetbox-dev/jetbox/internal/natstest"
	"github.com/jetbox-dev/jetbox/producer"
	"github.com/jetbox-dev/jetbox/streams"
)

const testToken = "test-token-7f3a"

// harness is one jetbox on loopback: an embedded nats-server, the outbox,
// the development memory API behind a recorder that can inject faults, and
// workers.
type harness struct {
	t       *testing.T
	connect func(testing.TB, ...nats.Option) (*nats.Conn, jetstream.JetStream) // to the server or cluster
	nc      *nats.Conn
	js      jetstream.JetStream
	streams streams.Config
	store   *memapi.Store
	api     *httptest.Server
	faults  *faults
}

func newHarness(t *testing.T, adjust ...func(*streams.Config)) *harness {
	t.Helper()
	return setUpHarness(t, natstest.Start(t).Connect, streams.DefaultConfig(), adjust...)
}

// setUpHarness provisions the outbox through connect and puts the
// development memory API behind the fault injector.
func setUpHarness(t *testing.T, connect func(testing.TB, ...nats.Option) (*nats.Conn, jetstream.JetStream), cfg streams.Config, adjust ...func(*streams.Config)) *harness {
	t.Helper()
	// A worker that dies is replaced within seconds, not the default ten.
	cfg.MemberTTL = 2 * time.Second
	h := &harness{t: t, connect: connect, faults: newFaults(), streams: cfg}
	for _, a := range adjust {
		a(&h.streams)
	}
	h.nc, h.js = connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := streams.Provision(ctx, h.js, h.streams); err != nil {
		t.Fatalf("provision with %d replicas: %v", h.streams.Replicas, err)
	}
	store, err := memapi.Open(memapi.Options{Path: t.TempDir() + "/memapi.db", Token: testToken})
	if err != nil {
		t.Fatalf("open memory API store: %v", err)
	}
	t.Cleanup(func() { store.Close() })
	h.store = store
	h.api = httptest.NewServer(h.faults.wrap(store.Handler()))
	t.Cleanup(h.api.Close)
	return h
}

// workerConfig is a worker tuned for tests: short delays, same semantics.
func (h *harness) workerConfig() Config {
	return Config{
		Endpoint:         h.api.URL,
		Token:            testToken,
		Streams:          h.streams,
		Concurrency:      32,
		RequestTimeout:   2 * time.Second,
		BackoffBase:      50 * time.Millisecond,
		BackoffMax:       time.Second,
		FailureThreshold: 3,
		ResetInterval:    time.Second,
		ShutdownTimeout:  10 * time.Second,
		Log:              zerolog.New(zerolog.NewTestWriter(h.t)).Level(zerolog.WarnLevel),
	}
}

// runningWorker is a worker on its own NATS connection, as a separate
// process would have.
type runningWorker struct {
	*Worker
	nc     *nats.Conn
	cancel context.CancelFunc
	done   chan error
}

func (h *harness) startWorker(cfg Config) *runningWorker {
	h.t.Helper()
	nc, _ := h.connect(h.t)
	w, err := New(nc, cfg)
	if err != nil {
		h.t.Fatalf("new worker: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rw := &runningWorker{Worker: w, nc: nc, cancel: cancel, done: make(chan error, 1)}
	go func() { rw.done <- w.Run(ctx) }()
	h.t.Cleanup(func() { rw.stop(h.t) })
	waitFor(h.t, 10*time.Second, "worker ready", func() bool { return w.Ready() == nil })
	return rw
}

func (rw *runningWorker) stop(t *testing.T) {
	rw.cancel()
	select {
	case err := <-rw.done:
		if err != nil {
			t.Errorf("worker Run: %v", err)
		}
		rw.done <- nil // a second stop returns at once
	case <-time.After(30 * time.Second):
		t.Errorf("worker did not stop")
	}
}

func (h *harness) producer(cfg producer.Config) *producer.Producer {
	h.t.Helper()
	p, err := producer.New(h.nc, cfg)
	if err != nil {
		h.t.Fatalf("new producer: %v", err)
	}
	h.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		p.Close(ctx)
	})
	return p
}

// totals sums the memory API's counters over all tenants.
func (h *harness) totals() memapi.TenantStats {
	var sum memapi.TenantStats
	for _, s := range h.store.Stats().Tenants {
		sum.Applied += s.Applied
		sum.Repeated += s.Repeated
	}
	return sum
}

// waitTenantApplied waits until the memory API has applied n writes of
// tenant and the fault proxy has recorded its answer to the last of them:
// the proxy records a call once the memory API has answered it, a moment
// after the write counts as applied.
func (h *harness) waitTenantApplied(tenant string, n uint64, within time.Duration) {
	h.t.Helper()
	waitFor(h.t, within, fmt.Sprintf("%d writes of %s applied, and the answer recorded", n, tenant), func() bool {
		reqs := h.faults.forTenant(tenant)
		return h.store.TenantStats(tenant).Applied == n && len(reqs) > 0 && reqs[len(reqs)-1].Status == http.StatusOK
	})
}

func (h *harness) waitApplied(n uint64, within time.Duration) {
	h.t.Helper()
	// Distinct writes: a redelivery after a crash is applied again.
	waitFor(h.t, within, fmt.Sprintf("%d writes applied", n), func() bool {
		got := h.totals()
		return got.Applied-got.Repeated >= n
	})
}

func (h *harness) deadLetters() []jetstream.Msg {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := h.js.Stream(ctx, h.streams.DLQStream)
	if err != nil {
		h.t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	var out []jetstream.Msg
	if info.State.Msgs == 0 {
		return nil
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		h.t.Fatal(err)
	}
	for uint64(len(out)) < info.State.Msgs {
		m, err := c.Next(jetstream.FetchMaxWait(2 * time.Second))
		if err != nil {
			h.t.Fatalf("read dead letters: %v", err)
		}
		out = append(out, m)
	}
	return out
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// faults sits in front of the memory API: it records what arrived and can
// make a tenant's requests fail.
type faults struct {
	mu       sync.Mutex
	byTenant map[string]func(n int) (status int, retryAfter string) // n: the tenant's request count so far
	down     bool                                                   // every request's connection is dropped
	requests []recorded
	count    map[string]int
	onApply  func(r recorded) // called after the memory API answered
}

type recorded struct {
	At     time.Time
	Tenant string
	Method string
	Path   string
	Header http.Header
	Body   []byte
	Status int
}

func newFaults() *faults {
	return &faults{byTenant: map[string]func(int) (int, string){}, count: map[string]int{}}
}

func (f *faults) set(tenant string, fn func(n int) (int, string)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fn == nil {
		delete(f.byTenant, tenant)
		return
	}
	f.byTenant[tenant] = fn
}

func (f *faults) setDown(down bool) {
	f.mu.Lock()
	f.down = down
	f.mu.Unlock()
}

func (f *faults) log() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recorded(nil), f.requests...)
}

func (f *faults) forTenant(tenant string) []recorded {
	var out []recorded
	for _, r := range f.log() {
		if r.Tenant == tenant {
			out = append(out, r)
		}
	}
	return out
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (f *faults) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			next.ServeHTTP(w, r)
			return
		}
		tenant := r.Header.Get("X-Soma-Tenant")
		f.mu.Lock()
		down := f.down
		fault := f.byTenant[tenant]
		n := f.count[tenant]
		f.count[tenant]++
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := recorded{At: time.Now(), Tenant: tenant, Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body}
		f.mu.Unlock()
		if down {
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					conn.Close()
				}
			}
			return
		}
		if fault != nil {
			if status, retryAfter := fault(n); status != 0 {
				if retryAfter != "" {
					w.Header().Set("Retry-After", retryAfter)
				}
				rec.Status = status
				f.record(rec)
				http.Error(w, `{"error":"injected"}`, status)
				return
			}
		}
		sr := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sr, r)
		rec.Status = sr.status
		f.record(rec)
		f.mu.Lock()
		onApply := f.onApply
		f.mu.Unlock()
		if onApply != nil {
			onApply(rec)
		}
	})
}

func (f *faults) record(r recorded) {
	f.mu.Lock()
	f.requests = append(f.requests, r)
	f.mu.Unlock()
}
