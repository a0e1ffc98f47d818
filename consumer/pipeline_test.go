package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/jetbox-dev/jetbox/dlq"
	"github.com/jetbox-dev/jetbox/producer"
	"github.com/jetbox-dev/jetbox/streams"
)

func TestEveryModeAppliesEachWriteOnceWithContractHeaders(t *testing.T) {
	h := newHarness(t)
	h.startWorker(h.workerConfig())
	// 3,000 calls at once: on a loaded machine the outbox's acks can take
	// longer than the default publish timeout.
	p := h.producer(producer.Config{SyncTimeout: 20 * time.Second, PublishTimeout: 20 * time.Second})
	ctx := context.Background()

	const tenants, perMode = 50, 1000
	var wg sync.WaitGroup
	errs := make(chan error, perMode*3)
	for _, mode := range streams.Modes {
		for i := 0; i < perMode; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := p.Store(ctx, producer.StoreRequest{
					Tenant:    fmt.Sprintf("tenant.%02d", i%tenants), // a dot must survive the subject encoding
					Namespace: fmt.Sprintf("memory:tenant.%02d", i%tenants),
					Key:       fmt.Sprintf("%s-%d", mode, i),
					Payload:   map[string]any{"i": i, "mode": string(mode)},
				}, producer.WithMode(mode), producer.WithRequestID(fmt.Sprintf("req-%s-%d", mode, i)))
				if err != nil {
					errs <- fmt.Errorf("%s write %d: %w", mode, i, err)
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	h.waitApplied(3*perMode, 60*time.Second)
	time.Sleep(200 * time.Millisecond) // let any stray duplicate show up
	if got := h.totals(); got.Applied != 3*perMode || got.Repeated != 0 {
		t.Fatalf("memory API counted %+v, want exactly %d applied, none twice", got, 3*perMode)
	}
	if n := len(h.store.Stats().Tenants); n != tenants {
		t.Fatalf("writes landed under %d tenants, want %d", n, tenants)
	}
	keys := map[string]bool{}
	for _, r := range h.faults.log() {
		hd := r.Header
		if hd.Get("Authorization") != "Bearer "+testToken {
			t.Fatalf("request without the bearer token: %q", hd.Get("Authorization"))
		}
		if hd.Get("Content-Type") != "application/json" {
			t.Fatalf("Content-Type %q", hd.Get("Content-Type"))
		}
		if len(r.Tenant) != len("tenant.00") || r.Tenant[:7] != "tenant." {
			t.Fatalf("X-Soma-Tenant %q is not the raw tenant", r.Tenant)
		}
		if hd.Get("X-Soma-Namespace") != "memory:"+r.Tenant {
			t.Fatalf("X-Soma-Namespace %q for tenant %q", hd.Get("X-Soma-Namespace"), r.Tenant)
		}
		key := hd.Get("X-Idempotency-Key")
		if len(key) != 32 || !strings.HasPrefix(hd.Get("X-Request-ID"), "req-") {
			t.Fatalf("X-Idempotency-Key %q, X-Request-ID %q: want a derived key and the caller's request id", key, hd.Get("X-Request-ID"))
		}
		if keys[key] {
			t.Fatalf("idempotency key %q sent twice", key)
		}
		keys[key] = true
	}
}

func TestSyncReturnsTheAnswerAndQueuesWhileTheAPIIsDown(t *testing.T) {
	h := newHarness(t)
	h.startWorker(h.workerConfig())
	p := h.producer(producer.Config{SyncTimeout: 2 * time.Second})
	ctx := context.Background()

	res, err := p.Store(ctx, producer.StoreRequest{Tenant: "acme", Coord: "0.1,0.2,0.3", Payload: map[string]any{"a": 1}}, producer.WithMode(streams.ModeSync))
	if err != nil {
		t.Fatalf("sync store: %v", err)
	}
	var answer struct{ Coord, MemoryType string }
	if res.Status != 200 || json.Unmarshal(res.Body, &struct {
		Coord      *string `json:"coord"`
		MemoryType *string `json:"memory_type"`
	}{&answer.Coord, &answer.MemoryType}) != nil || answer.Coord != "0.1,0.2,0.3" || answer.MemoryType != "episodic" {
		t.Fatalf("sync result %d %s, want the memory API's answer", res.Status, res.Body)
	}

	h.faults.setDown(true)
	start := time.Now()
	res, err = p.Store(ctx, producer.StoreRequest{Tenant: "acme", Coord: "0.4,0.5,0.6", Payload: map[string]any{"b": 2}}, producer.WithMode(streams.ModeSync))
	var queued *producer.QueuedError
	if !errors.As(err, &queued) || !errors.Is(err, producer.ErrQueued) {
		t.Fatalf("with the memory API down: %v, want a queued error", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("queued after %s, want within the 2s sync timeout", took)
	}
	if queued.Sequence == 0 || queued.Sequence != res.Sequence {
		t.Fatalf("queued sequence %d (result %d)", queued.Sequence, res.Sequence)
	}
	if _, found, _ := h.store.Get("acme", "0.4,0.5,0.6"); found {
		t.Fatal("applied while the memory API was down")
	}
	h.faults.setDown(false)
	waitFor(t, 20*time.Second, "queued write applied", func() bool {
		_, found, _ := h.store.Get("acme", "0.4,0.5,0.6")
		return found
	})
	if got := h.store.TenantStats("acme"); got.Applied != 2 {
		t.Fatalf("applied %d, want 2", got.Applied)
	}
}

// A sync write's outcome is published before its ack: the caller waits for
// the answer alone, and the server's work on the ack comes after it. The
// ack still follows, so acks keep the order of the writes to a memory.
func TestSyncOutcomeGoesOutBeforeTheAck(t *testing.T) {
	h := newHarness(t)
	h.startWorker(h.workerConfig())
	ctx := context.Background()

	// One subscriber connection receives both in the order the worker's
	// connection sent them.
	const replyTo = streams.DefaultReplyPrefix + "order.1"
	seen := make(chan *nats.Msg, 64)
	for _, subject := range []string{replyTo, "$JS.ACK." + h.streams.Stream + ".>"} {
		sub, err := h.nc.ChanSubscribe(subject, seen)
		if err != nil {
			t.Fatalf("subscribe %s: %v", subject, err)
		}
		t.Cleanup(func() { _ = sub.Unsubscribe() })
	}
	if err := h.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	m := nats.NewMsg("memory.acme.sync.store")
	m.Header.Set(streams.HeaderReplyTo, replyTo)
	m.Data = []byte(`{"coord":"1,2,3","payload":{"a":1}}`)
	stored, err := h.js.PublishMsg(ctx, m)
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	var order []string
	timeout := time.After(10 * time.Second)
	for len(order) < 2 {
		select {
		case got := <-seen:
			switch {
			case got.Subject == replyTo:
				order = append(order, "outcome")
			case string(got.Data) == "+ACK" && ackedSequence(got.Subject) == strconv.FormatUint(stored.Sequence, 10):
				order = append(order, "ack")
			}
		case <-timeout:
			t.Fatalf("saw %v, want the outcome and the ack", order)
		}
	}
	if order[0] != "outcome" || order[1] != "ack" {
		t.Fatalf("order %v, want the outcome before the ack", order)
	}
}

// ackedSequence is the stream sequence in an ack subject,
// $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>.
func ackedSequence(subject string) string {
	tokens := strings.Split(subject, ".")
	if len(tokens) != 9 {
		return ""
	}
	return tokens[5]
}

func TestSyncRejectionCarriesStatusAndBody(t *testing.T) {
	h := newHarness(t)
	h.startWorker(h.workerConfig())
	p := h.producer(producer.Config{SyncTimeout: 5 * time.Second})
	h.faults.set("strict", func(int) (int, string) { return 422, "" })
	_, err := p.Store(context.Background(), producer.StoreRequest{Tenant: "strict", Coord: "1,2,3", Payload: map[string]any{}}, producer.WithMode(streams.ModeSync))
	var rej *producer.RejectedError
	if !errors.As(err, &rej) || rej.Status != 422 || rej.Outcome != streams.OutcomeRejected || len(rej.Body) == 0 {
		t.Fatalf("got %v, want a rejection with status 422 and the answer", err)
	}
	if dl := h.deadLetters(); len(dl) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dl))
	}
}

func TestFastAckWrittenWithoutWorkersIsAppliedOnceAWorkerStarts(t *testing.T) {
	h := newHarness(t)
	p := h.producer(producer.Config{})
	res, err := p.Store(context.Background(), producer.StoreRequest{Tenant: "late", Key: "k", Payload: map[string]any{"x": 1}}, producer.WithMode(streams.ModeFastAck))
	if err != nil || res.Sequence == 0 {
		t.Fatalf("fast_ack: %+v %v", res, err)
	}
	time.Sleep(200 * time.Millisecond)
	if h.totals().Applied != 0 {
		t.Fatal("applied without a worker")
	}
	h.startWorker(h.workerConfig())
	h.waitApplied(1, 10*time.Second)
	if _, found, _ := h.store.Get("late", res.Coord); !found {
		t.Fatalf("memory at %s not found", res.Coord)
	}
}

func TestBackgroundTenThousandThenCloseAreAllApplied(t *testing.T) {
	h := newHarness(t)
	h.startWorker(h.workerConfig())
	p, err := producer.New(h.nc, producer.Config{Mode: streams.ModeBackground})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const n = 10000
	for i := 0; i < n; i++ {
		if _, err := p.Store(ctx, producer.StoreRequest{Tenant: "t" + strconv.Itoa(i%20), Key: strconv.Itoa(i), Payload: map[string]any{"i": i}}); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if err := p.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	h.waitApplied(n, 120*time.Second)
	if got := h.totals(); got.Applied != n || got.Repeated != 0 {
		t.Fatalf("memory API counted %+v, want %d applied once each", got, n)
	}
}

// The memory API reads no idempotency key (SFM does not): a write
// redelivered after a crash between its apply and its ack is applied again,
// with the same key, before any later write to the memory. For a store
// that is an upsert of the same content, so nothing changes.
func TestRedeliveryAfterACrashBeforeTheAckIsAppliedAgainWithTheSameKey(t *testing.T) {
	h := newHarness(t, func(c *streams.Config) { c.AckWait = time.Second })
	cfg := h.workerConfig()
	cfg.RequestTimeout = 500 * time.Millisecond
	first := h.startWorker(cfg)
	// The first worker "dies" right after the memory API applied the write:
	// its connection goes away before it can ack.
	var once sync.Once
	h.faults.mu.Lock()
	h.faults.onApply = func(recorded) { once.Do(first.nc.Close) }
	h.faults.mu.Unlock()

	p := h.producer(producer.Config{})
	if _, err := p.Store(context.Background(), producer.StoreRequest{Tenant: "crash", Coord: "0,0,0", Payload: map[string]any{"v": 1}}, producer.WithMode(streams.ModeFastAck)); err != nil {
		t.Fatal(err)
	}
	h.startWorker(cfg)
	waitFor(t, 15*time.Second, "redelivery reached the memory API", func() bool { return len(h.faults.forTenant("crash")) >= 2 })
	reqs := h.faults.forTenant("crash")
	if k1, k2 := reqs[0].Header.Get("X-Idempotency-Key"), reqs[1].Header.Get("X-Idempotency-Key"); k1 == "" || k1 != k2 {
		t.Fatalf("redelivery used idempotency key %q, first delivery %q", k2, k1)
	}
	waitFor(t, 5*time.Second, "the repeat applied", func() bool { return h.store.TenantStats("crash").Repeated >= 1 })
	if got := h.store.TenantStats("crash"); got.Distinct() != 1 {
		t.Fatalf("memory API counted %+v, want one write (applied more than once)", got)
	}
	hist := h.store.History("crash", "0,0,0")
	for _, e := range hist {
		if e.IdempotencyKey != reqs[0].Header.Get("X-Idempotency-Key") {
			t.Fatalf("history %+v holds another write", hist)
		}
	}
	if m, found, _ := h.store.Get("crash", "0,0,0"); !found || string(m.Payload) != `{"v":1}` {
		t.Fatalf("memory %+v found=%v, want the write's payload", m, found)
	}
}

func TestPermanentFailureIsDeadLetteredWithItsReasonAndNotRetried(t *testing.T) {
	h := newHarness(t)
	h.startWorker(h.workerConfig())
	h.faults.set("bad", func(int) (int, string) { return 400, "" })
	p := h.producer(producer.Config{})
	if _, err := p.Store(context.Background(), producer.StoreRequest{Tenant: "bad", Coord: "1,1,1", Payload: map[string]any{}}, producer.WithMode(streams.ModeFastAck)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "dead letter", func() bool { return len(h.deadLetters()) == 1 })
	time.Sleep(300 * time.Millisecond)
	if n := len(h.faults.forTenant("bad")); n != 1 {
		t.Fatalf("memory API called %d times for a 400, want once", n)
	}
	hd := h.deadLetters()[0].Headers()
	if hd.Get(streams.HeaderDLQClass) != string(streams.ClassPermanent) || hd.Get(streams.HeaderDLQHTTPStatus) != "400" ||
		hd.Get(streams.HeaderDLQError) == "" || hd.Get(streams.HeaderDLQAnswer) == "" || hd.Get(streams.HeaderDLQSubject) == "" ||
		hd.Get(streams.HeaderDLQStreamSeq) == "" || hd.Get(streams.HeaderDLQTime) == "" || hd.Get(streams.HeaderIdempotencyKey) == "" {
		t.Fatalf("dead letter headers lack the reason: %v", hd)
	}
}

func TestTransientFailureIsRetriedWithGrowingDelaysThenApplied(t *testing.T) {
	h := newHarness(t)
	cfg := h.workerConfig()
	cfg.FailureThreshold = 100 // keep the breaker out of this test
	cfg.BackoffBase = 100 * time.Millisecond
	cfg.BackoffMax = 5 * time.Second
	h.startWorker(cfg)
	h.faults.set("flaky", func(n int) (int, string) {
		if n < 4 {
			return 503, ""
		}
		return 0, ""
	})
	p := h.producer(producer.Config{})
	if _, err := p.Store(context.Background(), producer.StoreRequest{Tenant: "flaky", Coord: "2,2,2", Payload: map[string]any{}}, producer.WithMode(streams.ModeFastAck)); err != nil {
		t.Fatal(err)
	}
	h.waitTenantApplied("flaky", 1, 20*time.Second)
	reqs := h.faults.forTenant("flaky")
	if len(reqs) != 5 {
		t.Fatalf("%d attempts, want 5 (4 failures, then success)", len(reqs))
	}
	// Equal jitter: the n-th delay lies in [base*2^(n-1)/2, base*2^(n-1)], so
	// each gap is at least as long as the previous one could have been.
	for i := 2; i < len(reqs); i++ {
		prev, gap := reqs[i-1].At.Sub(reqs[i-2].At), reqs[i].At.Sub(reqs[i-1].At)
		if gap < prev-20*time.Millisecond {
			t.Fatalf("delay %d (%s) shorter than delay %d (%s)", i, gap, i-1, prev)
		}
	}
	if len(h.deadLetters()) != 0 {
		t.Fatal("a retried write was dead-lettered")
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	h := newHarness(t)
	h.startWorker(h.workerConfig())
	h.faults.set("slowdown", func(n int) (int, string) {
		if n == 0 {
			return 429, "2"
		}
		return 0, ""
	})
	p := h.producer(producer.Config{})
	if _, err := p.Store(context.Background(), producer.StoreRequest{Tenant: "slowdown", Coord: "3,3,3", Payload: map[string]any{}}, producer.WithMode(streams.ModeFastAck)); err != nil {
		t.Fatal(err)
	}
	h.waitTenantApplied("slowdown", 1, 10*time.Second)
	reqs := h.faults.forTenant("slowdown")
	if gap := reqs[1].At.Sub(reqs[0].At); gap < 2*time.Second {
		t.Fatalf("retried after %s, the answer said Retry-After: 2", gap)
	}
}

func TestExhaustedRetryBudgetDeadLettersAndReplayAppliesOnce(t *testing.T) {
	h := newHarness(t)
	cfg := h.workerConfig()
	cfg.FailureThreshold = 100
	cfg.MaxAttempts = 3
	h.startWorker(cfg)
	h.faults.set("down", func(int) (int, string) { return 503, "" })
	p := h.producer(producer.Config{})
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if _, err := p.Store(ctx, producer.StoreRequest{Tenant: "down", Key: strconv.Itoa(i), Payload: map[string]any{}}, producer.WithMode(streams.ModeFastAck)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 20*time.Second, "3 dead letters", func() bool { return len(h.deadLetters()) == 3 })
	if n := len(h.faults.forTenant("down")); n != 9 {
		t.Fatalf("%d attempts, want 3 per write", n)
	}
	for _, m := range h.deadLetters() {
		if c := m.Headers().Get(streams.HeaderDLQClass); c != string(streams.ClassExhausted) {
			t.Fatalf("class %q, want exhausted", c)
		}
	}

	h.faults.set("down", nil)
	list, err := dlq.List(ctx, h.js, h.streams, dlq.Filter{Tenant: "down"})
	if err != nil || len(list) != 3 {
		t.Fatalf("list: %d %v", len(list), err)
	}
	if other, _ := dlq.List(ctx, h.js, h.streams, dlq.Filter{Tenant: "someone-else"}); len(other) != 0 {
		t.Fatalf("tenant filter leaked %d dead letters", len(other))
	}
	res, err := dlq.Replay(ctx, h.js, h.streams, dlq.Filter{Tenant: "down"})
	if err != nil || res.Replayed != 3 {
		t.Fatalf("replay: %+v %v", res, err)
	}
	waitFor(t, 10*time.Second, "replayed writes applied", func() bool { return h.store.TenantStats("down").Applied == 3 })
	if len(h.deadLetters()) != 0 {
		t.Fatal("replayed dead letters still in the DLQ")
	}
	// Replaying the same writes again (say, from a backup) applies them
	// again: the memory API reads no idempotency key. The history shows
	// each key twice.
	for _, d := range list {
		m := nats.NewMsg(streams.PublishSubject(d.OriginalSubject))
		m.Header.Set(streams.HeaderIdempotencyKey, d.IdempotencyKey)
		m.Header.Set(streams.HeaderMsgID, "again-"+d.IdempotencyKey)
		m.Data = d.Data
		if _, err := h.js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "second replay applied", func() bool { return h.store.TenantStats("down").Repeated == 3 })
	if got := h.store.TenantStats("down"); got.Applied != 6 || got.Distinct() != 3 {
		t.Fatalf("memory API counted %+v, want 3 writes applied twice each", got)
	}
}

func TestOpenBreakerDefersOneTenantWhileOthersFlow(t *testing.T) {
	h := newHarness(t)
	cfg := h.workerConfig()
	cfg.ResetInterval = 500 * time.Millisecond
	cfg.MaxAttempts = 10
	w := h.startWorker(cfg)
	h.faults.set("A", func(int) (int, string) { return 503, "" })
	p := h.producer(producer.Config{})
	ctx := context.Background()
	for i := 0; i < 20; i++ {
		for _, tenant := range []string{"A", "B"} {
			if _, err := p.Store(ctx, producer.StoreRequest{Tenant: tenant, Key: strconv.Itoa(i), Payload: map[string]any{}}, producer.WithMode(streams.ModeFastAck)); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitFor(t, 10*time.Second, "B applied", func() bool { return h.store.TenantStats("B").Applied == 20 })
	waitFor(t, 10*time.Second, "A's breaker open", func() bool { return breakerState(w.Status(), "fast_ack", "A") == "open" })
	// Calls already on their way when the breaker opened are not probes:
	// let them land before counting.
	waitFor(t, 10*time.Second, "A parked", func() bool { return h.parked(t, "A") })
	time.Sleep(500 * time.Millisecond)
	// While A keeps failing, its writes are deferred: the breaker lets one
	// probe through per reset interval, and deferrals use no budget, so
	// nothing is dead-lettered. Without the breaker, 20 writes retrying
	// every 50ms-1s would make dozens of attempts in this window.
	before := len(h.faults.forTenant("A"))
	const window = 3 * time.Second
	time.Sleep(window)
	if probes := len(h.faults.forTenant("A")) - before; probes > int(window/cfg.ResetInterval)+2 {
		t.Fatalf("%d attempts at A's failing API in %s with the breaker open; want about one per %s", probes, window, cfg.ResetInterval)
	}
	if dl := h.deadLetters(); len(dl) != 0 {
		t.Fatalf("%d of A's writes dead-lettered while its breaker was open", len(dl))
	}
	h.faults.set("A", nil)
	waitFor(t, 20*time.Second, "A applied after recovery", func() bool { return h.store.TenantStats("A").Applied == 20 })
	if got := h.totals(); got.Repeated != 0 || len(h.deadLetters()) != 0 {
		t.Fatalf("after recovery: %+v, %d dead letters", got, len(h.deadLetters()))
	}
}

func TestIdleBreakersAreEvicted(t *testing.T) {
	h := newHarness(t)
	cfg := h.workerConfig()
	// Long enough that no breaker goes idle while the 30 writes are applied
	// on a loaded machine.
	cfg.BreakerIdleTTL = 3 * time.Second
	w := h.startWorker(cfg)
	p := h.producer(producer.Config{})
	for i := 0; i < 30; i++ {
		if _, err := p.Store(context.Background(), producer.StoreRequest{Tenant: "idle-" + strconv.Itoa(i), Key: "k", Payload: map[string]any{}}, producer.WithMode(streams.ModeFastAck)); err != nil {
			t.Fatal(err)
		}
	}
	h.waitApplied(30, 10*time.Second)
	if n := countBreakers(w.Status()); n != 30 {
		t.Fatalf("%d breakers after 30 tenants, want 30", n)
	}
	waitFor(t, 20*time.Second, "idle breakers evicted", func() bool { return countBreakers(w.Status()) == 0 })
}

func breakerState(s Status, group, tenant string) string {
	for _, g := range s.Groups {
		if g.Group != group {
			continue
		}
		for _, b := range g.Breakers {
			if b.Tenant == tenant {
				return b.State
			}
		}
	}
	return ""
}

func countBreakers(s Status) int {
	n := 0
	for _, g := range s.Groups {
		n += len(g.Breakers)
	}
	return n
}

// The outbox keeps room for the dead-letter headers: the largest write it
// accepts can still be dead-lettered, and a larger one is refused at once
// with a typed error instead of being stored and stuck.
func TestTheLargestAcceptedWriteCanBeDeadLettered(t *testing.T) {
	h := newHarness(t)
	h.startWorker(h.workerConfig())
	h.faults.set("big", func(int) (int, string) { return 413, "" })
	p := h.producer(producer.Config{})
	ctx := context.Background()
	max := int(h.nc.MaxPayload()) - streams.DLQHeadroom
	big := map[string]any{"text": strings.Repeat("x", max-1024)}
	if _, err := p.Store(ctx, producer.StoreRequest{Tenant: "big", Coord: "1,1,1", Payload: big}, producer.WithMode(streams.ModeFastAck)); err != nil {
		t.Fatalf("a write below the limit: %v", err)
	}
	waitFor(t, 10*time.Second, "the large write dead-lettered", func() bool { return len(h.deadLetters()) == 1 })

	tooBig := map[string]any{"text": strings.Repeat("x", max+16)}
	_, err := p.Store(ctx, producer.StoreRequest{Tenant: "big", Coord: "2,2,2", Payload: tooBig}, producer.WithMode(streams.ModeFastAck))
	if !errors.Is(err, producer.ErrPayloadTooLarge) {
		t.Fatalf("a write above the limit: %v, want ErrPayloadTooLarge", err)
	}
}

// Payloads are users' data: a failing write's body and the memory API's
// answer stay out of the logs unless SOMABRAIN_OUTBOX_LOG_PAYLOADS is on.
func TestPayloadsAreLoggedOnlyWhenAskedFor(t *testing.T) {
	for _, logPayloads := range []bool{false, true} {
		h := newHarness(t)
		var logs syncBuffer
		cfg := h.workerConfig()
		cfg.Log = zerolog.New(&logs)
		cfg.LogPayloads = logPayloads
		h.startWorker(cfg)
		h.faults.set("private", func(int) (int, string) { return 400, "" })
		p := h.producer(producer.Config{})
		if _, err := p.Store(context.Background(), producer.StoreRequest{Tenant: "private", Coord: "1,2,3", Payload: map[string]any{"secret": "marker-7c1e"}}, producer.WithMode(streams.ModeFastAck)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "dead letter logged", func() bool { return strings.Contains(logs.String(), "dead-lettered") })
		if got := strings.Contains(logs.String(), "marker-7c1e"); got != logPayloads {
			t.Fatalf("LogPayloads=%v: payload in the log is %v:\n%s", logPayloads, got, logs.String())
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
