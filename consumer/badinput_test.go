package consumer

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetbox-dev/jetbox/consumer/internal/intake/intaketest"
	"github.com/jetbox-dev/jetbox/streams"
)

// headerCase names the hostile message a dead letter came from: dead
// letters keep the original headers, and some hostile messages have no
// Nats-Msg-Id to match on.
const headerCase = "Hostile-Case"

// A raw NATS client can publish anything the stream's subjects accept. Each
// kind of hostile message is either refused at publish or dead-lettered
// with its class and a reason naming the problem, and reaches the memory
// API only when the memory API is the one to refuse it (a reused
// idempotency key). The worker survives them all and still applies
// another tenant's write published after them.
func TestHostileInputFromARawClientIsRefusedOrDeadLettered(t *testing.T) {
	h := newHarness(t)
	worker := h.startWorker(h.workerConfig())
	ctx := context.Background()

	cases := intaketest.HostileMessages()
	for _, c := range cases {
		m := nats.NewMsg(c.Subject)
		m.Header.Set(headerCase, c.Name)
		for k, v := range c.Header {
			m.Header.Set(k, v)
		}
		m.Data = []byte(c.Body)
		var opts []jetstream.PublishOpt
		switch c.MsgID {
		case "":
			opts = append(opts, jetstream.WithMsgID("hostile-"+c.Name))
		case intaketest.NoMsgID:
		default:
			opts = append(opts, jetstream.WithMsgID(c.MsgID))
		}
		if _, err := h.js.PublishMsg(ctx, m, opts...); err != nil {
			t.Fatalf("%s: publish: %v", c.Name, err)
		}
	}

	// A key reused for a different write: the worker cannot know, and the
	// memory API (like SFM) reads no idempotency key, so both writes are
	// applied. The same Nats-Msg-Id with a different body is not even
	// stored.
	original := nats.NewMsg("memory.replayer.fast_ack.store")
	original.Header.Set(streams.HeaderIdempotencyKey, "k1")
	original.Data = []byte(`{"coord":"1,1,1","payload":{"v":1}}`)
	if _, err := h.js.PublishMsg(ctx, original, jetstream.WithMsgID("replayer:k1")); err != nil {
		t.Fatalf("original: %v", err)
	}
	h.waitApplied(1, 10*time.Second)
	sameID := nats.NewMsg("memory.replayer.fast_ack.store")
	sameID.Header.Set(streams.HeaderIdempotencyKey, "k1")
	sameID.Data = []byte(`{"coord":"9,9,9","payload":{"v":2}}`)
	if ack, err := h.js.PublishMsg(ctx, sameID, jetstream.WithMsgID("replayer:k1")); err != nil || !ack.Duplicate {
		t.Fatalf("same Nats-Msg-Id, other body: ack %+v, err %v; want a duplicate, not stored", ack, err)
	}
	conflict := nats.NewMsg("memory.replayer.fast_ack.store")
	conflict.Header.Set(headerCase, "idempotency key reused")
	conflict.Header.Set(streams.HeaderIdempotencyKey, "k1")
	conflict.Data = []byte(`{"coord":"9,9,9","payload":{"v":2}}`)
	if _, err := h.js.PublishMsg(ctx, conflict, jetstream.WithMsgID("replayer:k1-again")); err != nil {
		t.Fatalf("conflict: %v", err)
	}

	// Refused at publish: the stream never stores them.
	refusals := []struct {
		name, subject, header string
		body                  []byte
		want                  func(error) bool
	}{
		{"unknown mode", "memory.acme.whenever.store", "", []byte(intaketest.OKStore), isNoStream},
		{"unknown op", "memory.acme.background.frobnicate", "", []byte(`{"coord":"1,2,3"}`), isNoStream},
		{"op in upper case", "memory.acme.fast_ack.STORE", "", []byte(intaketest.OKStore), isNoStream},
		{"wildcard op", "memory.acme.fast_ack.*", "", []byte(intaketest.OKStore), isNoStream},
		{"full wildcard op", "memory.acme.fast_ack.>", "", []byte(intaketest.OKStore), isNoStream},
		{"wildcard mode", "memory.acme.*.store", "", []byte(intaketest.OKStore), isNoStream},
		{"a fifth token picks a partition", "memory.acme.fast_ack.store.3", "", []byte(intaketest.OKStore), isNoStream},
		{"publishing a stored subject picks a partition", "memory.fast_ack.3.acme.store", "", []byte(intaketest.OKStore), isNoStream},
		{"a fifth token", "memory.acme.fast_ack.store.more", "", []byte(intaketest.OKStore), isNoStream},
		{"three tokens", "memory.acme.fast_ack", "", []byte(intaketest.OKStore), isNoStream},
		{"space in subject", "memory.acme fast_ack.store", "", []byte(intaketest.OKStore), isBadSubject},
		{"headers over 64 KiB", "memory.acme.fast_ack.store", strings.Repeat("r", 64<<10), []byte(intaketest.OKStore), isHeaderTooLarge},
		{"over the outbox's largest message", "memory.acme.fast_ack.store", "", make([]byte, h.nc.MaxPayload()-streams.DLQHeadroom+1), isTooLargeForStream},
		{"over the server's max payload", "memory.acme.fast_ack.store", "", make([]byte, h.nc.MaxPayload()+1), isMaxPayload},
	}
	for _, r := range refusals {
		m := nats.NewMsg(r.subject)
		m.Header.Set(headerCase, r.name)
		if r.header != "" {
			m.Header.Set(streams.HeaderRequestID, r.header)
		}
		m.Data = r.body
		if _, err := h.js.PublishMsg(ctx, m); !r.want(err) {
			t.Errorf("%s: publish to %s: err %v, want a clear refusal", r.name, r.subject, err)
		}
	}

	// A good write from another tenant, published after all the bad ones.
	good := nats.NewMsg("memory.fine.fast_ack.store")
	good.Data = []byte(`{"coord":"0.5,0.5,0.5","payload":{"ok":true}}`)
	if _, err := h.js.PublishMsg(ctx, good); err != nil {
		t.Fatalf("good write: %v", err)
	}

	want := len(cases)
	// Past the deadline, the checks below name the cases not dead-lettered.
	for deadline := time.Now().Add(15 * time.Second); len(h.deadLetters()) < want && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	waitFor(t, 5*time.Second, "the good write applied", func() bool { return len(h.faults.forTenant("fine")) == 1 })
	waitFor(t, 5*time.Second, "the write with the reused key applied", func() bool { return len(h.faults.forTenant("replayer")) == 2 })
	select {
	case err := <-worker.done:
		t.Fatalf("the worker stopped: %v", err)
	default:
	}
	// No forged reply subject was published to: the outbox is intact.
	if err := streams.Check(ctx, h.js, h.streams); err != nil {
		t.Fatalf("after forged Soma-Reply-To subjects: %v", err)
	}
	for _, r := range h.faults.log() {
		if r.Tenant != "fine" && r.Tenant != "replayer" {
			t.Errorf("a hostile write reached the memory API: %s %s for tenant %q", r.Method, r.Path, r.Tenant)
		}
	}
	if got := h.faults.forTenant("replayer"); len(got) != 2 || got[0].Status != 200 || got[1].Status != 200 {
		t.Errorf("reused key: memory API saw %+v, want both writes applied", got)
	}
	if m, found, _ := h.store.Get("replayer", "9,9,9"); !found || string(m.Payload) != `{"v":2}` {
		t.Errorf("reused key: memory 9,9,9 = %+v (found %v), want the second write applied", m, found)
	}

	dead := map[string]nats.Header{}
	for _, dl := range h.deadLetters() {
		dead[dl.Headers().Get(headerCase)] = dl.Headers()
	}
	if len(dead) != want {
		t.Errorf("%d dead letters, want %d", len(dead), want)
	}
	for _, c := range cases {
		checkDeadLetter(t, dead, c.Name, streams.ClassBadInput, c.Reason)
	}
	if _, ok := dead["idempotency key reused"]; ok {
		t.Errorf("reused key: dead-lettered, want applied")
	}
	if hd := dead["40 KiB Nats-Msg-Id"]; hd != nil {
		if got := hd.Get(streams.HeaderDLQShortened); got != "Soma-Dlq-Msg-Id, Soma-Idempotency-Key" {
			t.Errorf("40 KiB Nats-Msg-Id: %s %q, want both copies of the id named", streams.HeaderDLQShortened, got)
		}
		if n := len(hd.Get(streams.HeaderDLQMsgID)); n > 1024 {
			t.Errorf("40 KiB Nats-Msg-Id: the dead letter keeps %d bytes of it", n)
		}
	}
	if hd := dead["wildcard tenant token"]; hd != nil {
		if got := hd.Get(streams.HeaderDLQSubject); got != "memory.*.fast_ack.store" {
			t.Errorf("wildcard tenant token: stored subject %q", got)
		}
	}
	// The wildcard token and the two tokens longer than any tenant's.
	if n := h.deadLettersOn("memory_dlq.~.fast_ack.store"); n != 3 {
		t.Errorf("wildcard and overlong tenant tokens: %d dead letters under memory_dlq.~.fast_ack.store, want 3", n)
	}
	if hd := dead["message id of another tenant"]; hd != nil && hd.Get(streams.HeaderDLQMsgID) != "victim:req-1" {
		t.Errorf("message id of another tenant: the dead letter keeps id %q", hd.Get(streams.HeaderDLQMsgID))
	}
	if hd := dead["no Nats-Msg-Id nor key"]; hd != nil {
		if key := hd.Get(streams.HeaderIdempotencyKey); !strings.HasPrefix(key, "jetbox-seq-") || hd.Get(streams.HeaderDLQMsgID) != "" {
			t.Errorf("no Nats-Msg-Id: dead letter key %q, msg id %q; want the jetbox-seq- key and no id", key, hd.Get(streams.HeaderDLQMsgID))
		}
	}
}

func checkDeadLetter(t *testing.T, dead map[string]nats.Header, name string, class streams.DLQClass, reason string) {
	t.Helper()
	hd, ok := dead[name]
	if !ok {
		t.Errorf("%s: no dead letter", name)
		return
	}
	if got := hd.Get(streams.HeaderDLQClass); got != string(class) {
		t.Errorf("%s: class %q, want %q", name, got, class)
	}
	if got := hd.Get(streams.HeaderDLQError); !strings.Contains(got, reason) {
		t.Errorf("%s: reason %q does not say %q", name, got, reason)
	}
}

func isNoStream(err error) bool { return errors.Is(err, jetstream.ErrNoStreamResponse) }

func isBadSubject(err error) bool { return errors.Is(err, nats.ErrBadSubject) }

func isMaxPayload(err error) bool { return errors.Is(err, nats.ErrMaxPayload) }

func isTooLargeForStream(err error) bool {
	return isAPIError(err, jetstream.JSErrCodeStreamMessageExceedsMaximum)
}

// errCodeHeaderTooLarge is the server's "header size exceeds maximum
// allowed of 64k"; nats.go has no name for it.
const errCodeHeaderTooLarge jetstream.ErrorCode = 10097

func isHeaderTooLarge(err error) bool { return isAPIError(err, errCodeHeaderTooLarge) }

func isAPIError(err error, code jetstream.ErrorCode) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == code
}

// deadLettersOn counts the dead letters stored under a literal subject.
func (h *harness) deadLettersOn(subject string) uint64 {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := h.js.Stream(ctx, h.streams.DLQStream)
	if err != nil {
		h.t.Fatal(err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		h.t.Fatal(err)
	}
	return info.State.Subjects[subject]
}

// A connection the nats-server closes for good (here: a publish past its
// control line, which an unchecked reply subject used to cause) stops the
// worker with ErrConnectionClosed instead of leaving it running idle, and
// the worker is no longer ready.
func TestWorkerStopsWhenNATSClosesItsConnection(t *testing.T) {
	h := newHarness(t)
	rw := h.startWorker(h.workerConfig())
	if err := rw.nc.Publish("_INBOX."+strings.Repeat("x", 5000), nil); err != nil {
		t.Fatalf("publish: %v", err)
	}
	select {
	case err := <-rw.done:
		if !errors.Is(err, ErrConnectionClosed) {
			t.Fatalf("worker stopped with %v, want ErrConnectionClosed", err)
		}
		rw.done <- nil // the cleanup stops it again
	case <-time.After(15 * time.Second):
		t.Fatalf("the worker keeps running on a closed connection (closed: %v, last error: %v)", rw.nc.IsClosed(), rw.nc.LastError())
	}
	if err := rw.Ready(); err == nil {
		t.Fatal("worker ready on a closed connection")
	}
}
