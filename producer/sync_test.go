package producer

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetbox-dev/jetbox/streams"
)

type outcome struct {
	outcome streams.Outcome
	status  int
	body    string
	reason  string
}

// respond stands in for the sync workers: it pulls from the sync consumer,
// acks, and publishes decide's outcome to Soma-Reply-To.
func (e *env) respond(t *testing.T, decide func(jetstream.Msg) outcome) {
	t.Helper()
	for _, c := range e.top.Consumers[streams.ModeSync] {
		e.respondFrom(t, c, decide)
	}
}

func (e *env) respondFrom(t *testing.T, c jetstream.Consumer, decide func(jetstream.Msg) outcome) {
	t.Helper()
	cc, err := c.Consume(func(m jetstream.Msg) {
		o := decide(m)
		out := nats.NewMsg(m.Headers().Get(streams.HeaderReplyTo))
		out.Header.Set(streams.HeaderOutcome, string(o.outcome))
		out.Header.Set(streams.HeaderHTTPStatus, strconv.Itoa(o.status))
		if o.reason != "" {
			out.Header.Set(streams.HeaderError, o.reason)
		}
		out.Data = []byte(o.body)
		if err := m.Ack(); err != nil {
			t.Errorf("ack: %v", err)
		}
		if err := e.nc.PublishMsg(out); err != nil {
			t.Errorf("publish outcome: %v", err)
		}
	}, jetstream.PullPriorityGroup(streams.OwnerGroup))
	if err != nil {
		t.Fatalf("consume: %v", err)
	}
	t.Cleanup(cc.Stop)
}

func TestSyncApplied(t *testing.T) {
	e := newEnv(t, Config{}) // sync is the default mode
	e.respond(t, func(m jetstream.Msg) outcome {
		var body struct {
			Coord      string `json:"coord"`
			MemoryType string `json:"memory_type"`
		}
		if err := json.Unmarshal(m.Data(), &body); err != nil {
			return outcome{outcome: streams.OutcomeDead, reason: err.Error()}
		}
		answer, _ := json.Marshal(body)
		return outcome{outcome: streams.OutcomeApplied, status: 200, body: string(answer)}
	})
	ctx := ctxT(t)
	res, err := e.p.Store(ctx, StoreRequest{Tenant: "t", Coord: "0.1,-0.2,0.3", Payload: json.RawMessage(`{"text":"hi"}`)})
	if err != nil {
		t.Fatalf("Store: %v", err)
	}
	if res.Mode != streams.ModeSync || res.Status != 200 || res.Sequence == 0 ||
		string(res.Body) != `{"coord":"0.1,-0.2,0.3","memory_type":"episodic"}` || res.Subject != "memory.t.sync.store" {
		t.Fatalf("result %+v body %s", res, res.Body)
	}
	// Many concurrent sync writes each get their own outcome.
	errs := make(chan error, 20)
	for i := range 20 {
		go func() {
			coord := "0," + strconv.Itoa(i) + ",0"
			res, err := e.p.Store(ctx, StoreRequest{Coord: coord, Payload: json.RawMessage(`{}`)})
			if err == nil && !strings.Contains(string(res.Body), coord) {
				err = errors.New("outcome of another write: " + string(res.Body))
			}
			errs <- err
		}()
	}
	for range 20 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestSyncRejected(t *testing.T) {
	e := newEnv(t, Config{})
	e.respond(t, func(m jetstream.Msg) outcome {
		return outcome{outcome: streams.OutcomeRejected, status: 422, body: `{"detail":"payload too deep"}`, reason: "memory API answered 422"}
	})
	res, err := e.p.Store(ctxT(t), StoreRequest{Key: "k", Payload: json.RawMessage(`{}`)})
	var rej *RejectedError
	if !errors.As(err, &rej) || !errors.Is(err, ErrRejected) {
		t.Fatalf("err %v, want RejectedError", err)
	}
	if rej.Status != 422 || rej.Outcome != streams.OutcomeRejected || string(rej.Body) != `{"detail":"payload too deep"}` || rej.Reason == "" {
		t.Fatalf("rejected %+v", rej)
	}
	if res.Sequence == 0 {
		t.Fatalf("result %+v: the sequence of the dead-lettered write is still reported", res)
	}
}

func TestSyncQueued(t *testing.T) {
	e := newEnv(t, Config{SyncTimeout: 300 * time.Millisecond})
	// An outcome for a subject nobody waits for is ignored.
	sub, err := e.p.replies.newSubject()
	if err != nil {
		t.Fatal(err)
	}
	stray := nats.NewMsg(sub)
	stray.Header.Set(streams.HeaderOutcome, string(streams.OutcomeApplied))
	if err := e.nc.PublishMsg(stray); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	res, err := e.p.Store(ctxT(t), StoreRequest{Key: "k", Payload: json.RawMessage(`{}`)}, WithIdempotencyKey("q1"))
	took := time.Since(start)
	var queued *QueuedError
	if !errors.As(err, &queued) || !errors.Is(err, ErrQueued) {
		t.Fatalf("err %v, want QueuedError", err)
	}
	if took < 250*time.Millisecond || took > time.Second {
		t.Fatalf("returned after %v, want about 300ms", took)
	}
	msgs := e.stored(t)
	if len(msgs) != 1 || queued.Sequence != msgs[0].Sequence || res.Sequence != queued.Sequence {
		t.Fatalf("queued %+v, result %+v, %d stored", queued, res, len(msgs))
	}
	if !strings.HasPrefix(msgs[0].Header.Get(streams.HeaderReplyTo), "_INBOX.") {
		t.Fatalf("Soma-Reply-To %q", msgs[0].Header.Get(streams.HeaderReplyTo))
	}

	// The same write again is absorbed by the outbox; nobody will answer it
	// here, so it is reported queued at once.
	start = time.Now()
	_, err = e.p.Store(ctxT(t), StoreRequest{Key: "k", Payload: json.RawMessage(`{}`)}, WithIdempotencyKey("q1"))
	if !errors.As(err, &queued) || !queued.Duplicate || queued.Sequence != msgs[0].Sequence || time.Since(start) > 200*time.Millisecond {
		t.Fatalf("duplicate: %v after %v", err, time.Since(start))
	}

	// The caller's context ending first is reported with the context's error.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = e.p.Store(ctx, StoreRequest{Key: "k", Payload: json.RawMessage(`{}`)})
	if !errors.Is(err, ErrQueued) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ctx ended: %v", err)
	}
}

func TestSyncWaiterWokenByClose(t *testing.T) {
	e := newEnv(t, Config{SyncTimeout: time.Minute})
	done := make(chan error, 1)
	go func() {
		_, err := e.p.Store(context.Background(), StoreRequest{Key: "k", Payload: json.RawMessage(`{}`)})
		done <- err
	}()
	for e.count(t) == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	if err := e.p.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		// Stored is not acknowledged: on a loaded machine the PubAck can
		// still be on its way when Close ends the wait for it.
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("err %v, want closed (queued, or before the acknowledgement)", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("sync write still waiting after Close")
	}
}
