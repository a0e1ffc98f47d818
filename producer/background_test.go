package producer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/jetbox-dev/jetbox/internal/natstest"
	"github.com/jetbox-dev/jetbox/streams"
)

// failures collects OnBackgroundError reports.
type failures struct {
	mu   sync.Mutex
	list []BackgroundFailure
}

func (f *failures) record(bf BackgroundFailure) {
	f.mu.Lock()
	f.list = append(f.list, bf)
	f.mu.Unlock()
}

func (f *failures) all() []BackgroundFailure {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]BackgroundFailure(nil), f.list...)
}

// takeMsgIDs reads the Nats-Msg-Id of every message of a mode through its
// consumer group, and acks them, which empties the outbox.
func (e *env) takeMsgIDs(t *testing.T, mode streams.Mode) map[string]bool {
	t.Helper()
	total := e.count(t)
	ids := map[string]bool{}
	for uint64(len(ids)) < total {
		n := 0
		for _, c := range e.top.Consumers[mode] {
			info, err := c.Info(ctxT(t))
			if err != nil {
				t.Fatal(err)
			}
			if info.NumPending == 0 {
				continue // an empty partition would only make Fetch wait
			}
			batch, err := c.Fetch(1000, jetstream.FetchMaxWait(100*time.Millisecond), jetstream.FetchPriorityGroup(streams.OwnerGroup))
			if err != nil {
				t.Fatal(err)
			}
			for m := range batch.Messages() {
				ids[m.Headers().Get(streams.HeaderMsgID)] = true
				n++
				if err := m.Ack(); err != nil {
					t.Fatal(err)
				}
			}
		}
		if n == 0 {
			t.Fatalf("read %d of %d messages", len(ids), total)
		}
	}
	return ids
}

var payload = json.RawMessage(`{"text":"a background memory"}`)

func TestBackgroundStoresEverything(t *testing.T) {
	reg := prometheus.NewRegistry()
	var failed failures
	e := newEnv(t, Config{Mode: streams.ModeBackground, Registerer: reg, OnBackgroundError: failed.record})
	ctx := ctxT(t)
	const n = 10000
	sent := map[string]bool{}
	for i := range n {
		res, err := e.p.Store(ctx, StoreRequest{Tenant: "bg", Key: fmt.Sprint("key-", i), Payload: payload})
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		if res.Sequence != 0 || res.MsgID == "" || res.Subject != "memory.bg.background.store" {
			t.Fatalf("result %+v", res)
		}
		sent[res.MsgID] = true
	}
	if err := e.p.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := e.count(t); got != n {
		t.Fatalf("%d messages in the outbox, want %d", got, n)
	}
	ids := e.takeMsgIDs(t, streams.ModeBackground)
	if len(ids) != n {
		t.Fatalf("%d distinct ids, want %d", len(ids), n)
	}
	for id := range sent {
		if !ids[id] {
			t.Fatalf("write %s missing", id)
		}
	}
	if f := failed.all(); len(f) != 0 {
		t.Fatalf("%d failures, first %v", len(f), f[0].Err)
	}
	// A retry after a lost ack is answered as a duplicate of the stored
	// write: on a loaded machine some are.
	stored := metricValue(t, reg, "jetbox_producer_writes_total", "background", "stored")
	dup := metricValue(t, reg, "jetbox_producer_writes_total", "background", "duplicate")
	if stored+dup != n {
		t.Errorf("writes_total{background} stored %v + duplicate %v, want %d", stored, dup, n)
	}
	if got := metricValue(t, reg, "jetbox_producer_background_buffered"); got != 0 {
		t.Errorf("background_buffered = %v, want 0", got)
	}
	if got := metricValue(t, reg, "jetbox_producer_publish_seconds", "background"); got != n {
		t.Errorf("publish_seconds{background} count = %v, want %d", got, n)
	}
}

func TestBackgroundFlush(t *testing.T) {
	e := newEnv(t, Config{Mode: streams.ModeBackground})
	ctx := ctxT(t)
	for round := 1; round <= 3; round++ {
		for range 500 {
			if _, err := e.p.Link(ctx, LinkRequest{FromKey: "a", ToKey: "b"}); err != nil {
				t.Fatal(err)
			}
		}
		if err := e.p.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if got := e.count(t); got != uint64(500*round) {
			t.Fatalf("after flush %d: %d messages", round, got)
		}
	}
}

// stoppedServer is a producer whose server has gone away.
func stoppedServer(t *testing.T, cfg Config) *env {
	t.Helper()
	e := newEnv(t, cfg)
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
	return e
}

func TestBackgroundBufferFullError(t *testing.T) {
	var failed failures
	e := stoppedServer(t, Config{Mode: streams.ModeBackground, BufferSize: 10, MaxInFlight: 1, BufferFullError: true,
		PublishTimeout: time.Minute, OnBackgroundError: failed.record})
	accepted := 0
	var err error
	for range 100 {
		if _, err = e.p.Store(context.Background(), StoreRequest{Key: "k", Payload: payload}); err != nil {
			break
		}
		accepted++
	}
	if !errors.Is(err, ErrBufferFull) {
		t.Fatalf("err %v after %d writes, want ErrBufferFull", err, accepted)
	}
	// The buffer, the one publish in flight and the one waiting for a slot.
	if accepted < 10 || accepted > 12 {
		t.Fatalf("ErrBufferFull after %d writes, want 10 to 12", accepted)
	}

	// Close gives up what it cannot store in time, and reports every write.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := e.p.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close: %v, want the context's error", err)
	}
	f := failed.all()
	if len(f) != accepted {
		t.Fatalf("%d failures reported, want %d", len(f), accepted)
	}
	for _, bf := range f {
		if !errors.Is(bf.Err, ErrClosed) || bf.MsgID == "" || bf.IdempotencyKey == "" || bf.Subject != "memory.public.background.store" {
			t.Fatalf("failure %+v", bf)
		}
	}
}

func TestBackgroundBufferFullBlocks(t *testing.T) {
	e := stoppedServer(t, Config{Mode: streams.ModeBackground, BufferSize: 10, MaxInFlight: 1, PublishTimeout: time.Minute,
		OnBackgroundError: func(BackgroundFailure) {}})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	var err error
	for range 100 {
		if _, err = e.p.Store(ctx, StoreRequest{Key: "k", Payload: payload}); err != nil {
			break
		}
	}
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrBufferFull) {
		t.Fatalf("err %v, want the context's error", err)
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("returned after %v: did not block", d)
	}
	closeCtx, cancelClose := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancelClose()
	_ = e.p.Close(closeCtx)
}

func TestBackgroundFailuresReported(t *testing.T) {
	reg := prometheus.NewRegistry()
	var failed failures
	e := stoppedServer(t, Config{Mode: streams.ModeBackground, PublishTimeout: 500 * time.Millisecond,
		Registerer: reg, OnBackgroundError: failed.record})
	const n = 50
	keys := map[string]bool{}
	for i := range n {
		res, err := e.p.Store(ctxT(t), StoreRequest{Key: "k", Payload: payload}, WithIdempotencyKey(fmt.Sprint("fail-", i)))
		if err != nil {
			t.Fatal(err)
		}
		keys[res.IdempotencyKey] = true
	}
	start := time.Now()
	if err := e.p.Flush(ctxT(t)); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Flush took %v with a 500ms publish timeout", d)
	}
	f := failed.all()
	if len(f) != n {
		t.Fatalf("%d failures, want %d", len(f), n)
	}
	for _, bf := range f {
		if !errors.Is(bf.Err, ErrPublishTimeout) || !keys[bf.IdempotencyKey] || !strings.HasPrefix(bf.MsgID, "public:") || len(bf.MsgID) != len("public:")+32 {
			t.Fatalf("failure %+v", bf)
		}
		delete(keys, bf.IdempotencyKey)
	}
	if got := metricValue(t, reg, "jetbox_producer_background_failures_total"); got != n {
		t.Errorf("background_failures_total = %v, want %d", got, n)
	}
	if got := metricValue(t, reg, "jetbox_producer_writes_total", "background", "error"); got != n {
		t.Errorf("writes_total{background,error} = %v, want %d", got, n)
	}
}

func TestBackgroundSurvivesRestart(t *testing.T) {
	var failed failures
	dir := t.TempDir()
	srv := natstest.Start(t, natstest.WithStoreDir(dir))
	addr := srv.Addr().String()
	nc, js := srv.Connect(t)
	if _, err := streams.Provision(ctxT(t), js, streams.DefaultConfig()); err != nil {
		t.Fatal(err)
	}
	p := newProducer(t, nc, Config{Mode: streams.ModeBackground, PublishTimeout: 20 * time.Second, OnBackgroundError: failed.record})
	ctx := ctxT(t)
	const n = 2000
	for i := range n {
		if i == n/4 {
			srv.Shutdown()
			srv.WaitForShutdown()
		}
		if _, err := p.Store(ctx, StoreRequest{Key: fmt.Sprint(i), Payload: payload}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	srv2 := natstest.Start(t, natstest.WithStoreDir(dir), natstest.WithListen(addr))
	if err := p.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if f := failed.all(); len(f) != 0 {
		t.Fatalf("%d failures, first %v", len(f), f[0].Err)
	}
	_, js2 := srv2.Connect(t)
	s, err := js2.Stream(ctx, "MEMORY")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != n {
		t.Fatalf("%d messages after the restart, want %d", info.State.Msgs, n)
	}
}

func TestBackgroundConcurrentWritersAndFlushes(t *testing.T) {
	var failed failures
	e := newEnv(t, Config{Mode: streams.ModeBackground, BufferSize: 100, MaxInFlight: 64, OnBackgroundError: failed.record})
	ctx := ctxT(t)
	const writers, each = 8, 500
	var wg sync.WaitGroup
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				payload := []byte(fmt.Sprintf(`{"writer":%d,"i":%d}`, g, i))
				if _, err := e.p.Store(ctx, StoreRequest{Tenant: fmt.Sprint("t", g), Key: fmt.Sprint(i), Payload: payload}); err != nil {
					t.Error(err)
					return
				}
				copy(payload, "garbage") // the caller may reuse its buffer at once
				if i%100 == 0 {
					if err := e.p.Flush(ctx); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	if err := e.p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if f := failed.all(); len(f) != 0 {
		t.Fatalf("%d failures, first %v", len(f), f[0].Err)
	}
	msgs := e.stored(t)
	if len(msgs) != writers*each {
		t.Fatalf("%d messages, want %d", len(msgs), writers*each)
	}
	seen := map[string]bool{}
	for _, m := range msgs {
		var body struct {
			Payload struct{ Writer, I int } `json:"payload"`
		}
		if err := json.Unmarshal(m.Data, &body); err != nil {
			t.Fatalf("body %s: %v", m.Data, err)
		}
		if want := fmt.Sprint("memory.t", body.Payload.Writer, ".background.store"); streams.PublishSubject(m.Subject) != want {
			t.Fatalf("body %s on %s", m.Data, m.Subject)
		}
		seen[fmt.Sprint(body.Payload.Writer, "/", body.Payload.I)] = true
	}
	if len(seen) != writers*each {
		t.Fatalf("%d distinct payloads, want %d", len(seen), writers*each)
	}
}
