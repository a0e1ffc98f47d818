package frontdoor_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/jetbox-dev/jetbox/consumer"
	"github.com/jetbox-dev/jetbox/frontdoor"
	"github.com/jetbox-dev/jetbox/internal/memapi"
	"github.com/jetbox-dev/jetbox/internal/natstest"
	"github.com/jetbox-dev/jetbox/internal/testrig"
	"github.com/jetbox-dev/jetbox/producer"
	"github.com/jetbox-dev/jetbox/streams"
)

const (
	memoryToken  = "memory-api-token-2b7c" // the front door's and the workers' token at the memory API
	callerToken  = "somabrain-token-91fe"  // what SomaBrain sends
	acmeToken    = "acme-only-token-4d20"  // bound to tenant acme by the tokens file
	somaTenant   = "acme"                  // SomaBrain's X-Soma-Tenant
	somaNS       = "somabrain_ns:acme"     // SomaBrain's X-Soma-Namespace
	directTenant = "acme-direct"           // the conformance table's direct calls
)

// harness is jetbox on loopback with its front door: an embedded
// nats-server, the outbox, the development memory API behind a recorder,
// a worker when asked, a producer and the front door on a real listener.
type harness struct {
	t       *testing.T
	rig     *testrig.Rig
	nats    *natstest.Server
	nc      *nats.Conn
	streams streams.Config
	store   *memapi.Store
	rec     *recorder
	url     string // the front door
	client  *http.Client
}

type options struct {
	adjustStreams func(*streams.Config)
	producer      producer.Config
	frontdoor     frontdoor.Config
	server        frontdoor.ServerConfig
	worker        bool
}

func newHarness(t *testing.T, o options) *harness {
	t.Helper()
	cfg := testrig.Streams()
	cfg.Partitions = 4
	if o.adjustStreams != nil {
		o.adjustStreams(&cfg)
	}
	h := &harness{t: t, rec: newRecorder()}
	h.rig = testrig.Start(t, testrig.Options{Streams: cfg, Token: memoryToken, Wrap: h.rec.wrap})
	h.nats, h.nc, h.streams, h.store = h.rig.Server, h.rig.NC, h.rig.Streams, h.rig.API.Store
	if o.worker {
		h.startWorker()
	}

	if o.producer.SyncTimeout == 0 {
		o.producer.SyncTimeout = 5 * time.Second
	}
	if o.producer.PublishTimeout == 0 {
		o.producer.PublishTimeout = 2 * time.Second
	}
	o.producer.BufferFullError = true
	p := h.rig.Producer(o.producer)
	fc := o.frontdoor
	fc.Producer, fc.MemoryAPI, fc.MemoryToken = p, h.rig.API.URL, memoryToken
	if fc.Tokens.Service == "" && fc.Tokens.Tenant == nil {
		fc.Tokens = frontdoor.Tokens{Service: callerToken, Tenant: map[string]string{acmeToken: somaTenant}}
	}
	fc.Log = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	handler, err := frontdoor.New(fc)
	if err != nil {
		t.Fatal(err)
	}
	sc := o.server
	sc.Addr = "127.0.0.1:0"
	srv, err := frontdoor.Listen(sc, handler, fc.Log)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	h.url = "http://" + srv.Addr()
	h.client = &http.Client{Timeout: 30 * time.Second}
	return h
}

// startWorker runs a jetbox worker on its own connection until the test
// ends.
func (h *harness) startWorker() {
	h.t.Helper()
	h.rig.StartWorker(func(nc *nats.Conn) (testrig.Worker, error) {
		return consumer.New(nc, consumer.Config{
			Endpoint: h.rig.API.URL, Token: memoryToken, Streams: h.streams, Concurrency: 16,
			RequestTimeout: 2 * time.Second, BackoffBase: 50 * time.Millisecond, BackoffMax: 300 * time.Millisecond,
			FailureThreshold: 1000, ResetInterval: time.Second, ShutdownTimeout: 5 * time.Second,
			Log: zerolog.New(zerolog.NewTestWriter(h.t)).Level(zerolog.ErrorLevel),
		})
	})
}

// answer is an HTTP answer.
type answer struct {
	status int
	header http.Header
	body   string
}

// somaBrain sends a request exactly as SomaBrain's memory client does:
// its token as bearer, X-API-Key and X-Auth-Token, its namespace and
// tenant, a request id of its own; extra headers are set last.
func (h *harness) somaBrain(method, path, body string, extra ...string) answer {
	h.t.Helper()
	hdr := map[string]string{
		"Authorization": "Bearer " + callerToken, "X-API-Key": callerToken, "X-Auth-Token": callerToken,
		"X-Soma-Namespace": somaNS, "X-Soma-Tenant": somaTenant,
		"X-Request-ID": fmt.Sprintf("req-%d", requestIDs.Add(1)), "Content-Type": "application/json",
	}
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i+1] == "" {
			delete(hdr, extra[i])
		} else {
			hdr[extra[i]] = extra[i+1]
		}
	}
	return h.do(h.url, method, path, body, hdr)
}

var requestIDs atomic.Int64

// direct sends a request straight to the memory API, as a worker would.
func (h *harness) direct(method, path, body, tenant string) answer {
	h.t.Helper()
	return h.do(h.rig.API.URL, method, path, body, map[string]string{
		"Authorization": "Bearer " + memoryToken, "X-Soma-Tenant": tenant, "Content-Type": "application/json",
	})
}

func (h *harness) do(base, method, path, body string, hdr map[string]string) answer {
	h.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// memory reads a memory from the store, as the memory API holds it.
func (h *harness) memory(tenant, coord string) (memapi.Memory, bool) {
	h.t.Helper()
	m, found, err := h.store.Get(tenant, coord)
	if err != nil {
		h.t.Fatal(err)
	}
	return m, found
}

// ops lists what the memory API applied to a memory, in order.
func (h *harness) ops(tenant, coord string) []string {
	var ops []string
	for _, e := range h.store.History(tenant, coord) {
		ops = append(ops, e.Op)
	}
	return ops
}

// outboxMessages is how many writes the outbox holds.
func (h *harness) outboxMessages() uint64 {
	h.t.Helper()
	js, err := jetstream.New(h.nc)
	if err != nil {
		h.t.Fatal(err)
	}
	s, err := js.Stream(context.Background(), h.streams.Stream)
	if err != nil {
		h.t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	return info.State.Msgs
}

// waitFor is testrig.WaitFor by the name the tests use.
var waitFor = testrig.WaitFor

// recorder stands before the memory API: it notes every request's
// credentials and tenant, answers the read routes the development memory
// API lacks with SFM-shaped bodies, and can play the memory API down.
type recorder struct {
	mu       sync.Mutex
	requests []recorded
	down     atomic.Bool
}

type recorded struct {
	method, path, query, body      string
	authorization, apiKey, authTok string
	tenant, namespace, requestID   string
	traceparent                    string
}

func newRecorder() *recorder { return &recorder{} }

func (rc *recorder) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		rc.mu.Lock()
		rc.requests = append(rc.requests, recorded{
			method: r.Method, path: r.URL.Path, query: r.URL.RawQuery, body: string(body),
			authorization: r.Header.Get("Authorization"), apiKey: r.Header.Get("X-API-Key"), authTok: r.Header.Get("X-Auth-Token"),
			tenant: r.Header.Get("X-Soma-Tenant"), namespace: r.Header.Get("X-Soma-Namespace"), requestID: r.Header.Get("X-Request-ID"),
			traceparent: r.Header.Get("traceparent"),
		})
		rc.mu.Unlock()
		if rc.down.Load() {
			http.Error(w, `{"detail": "down"}`, http.StatusServiceUnavailable)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (rc *recorder) all() []recorded {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]recorded(nil), rc.requests...)
}

// last is the last request to path.
func (rc *recorder) last(method, path string) (recorded, bool) {
	all := rc.all()
	for i := len(all) - 1; i >= 0; i-- {
		if all[i].method == method && all[i].path == path {
			return all[i], true
		}
	}
	return recorded{}, false
}
