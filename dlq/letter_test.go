package dlq

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetbox-dev/jetbox/internal/natstest"
	"github.com/jetbox-dev/jetbox/streams"
)

// A raw client can publish anything to the outbox: a forged server status
// on an empty body, JetStream's own Nats-* headers, a message id as large
// as the server takes. Its dead letter must still be stored, must not be
// taken for a server status when read back, and must say what it left
// out; the write's own headers stay as they were.
func TestLetterOfAHostileWrite(t *testing.T) {
	longID := "acme:" + strings.Repeat("k", 40<<10)
	h := nats.Header{}
	h.Set(streams.HeaderMsgID, longID)
	h.Set("Nats-Expected-Stream", "ELSEWHERE")
	h.Set("Nats-Rollup", "all")
	h.Set("Status", "503")
	h.Set("Description", "No Responders Available")
	h.Set(streams.HeaderRequestID, "r-1")
	before := maps.Clone(h)
	w := Write{
		Subject:        "memory.acme.sync.store.3",
		Seq:            41,
		Header:         h,
		Deliveries:     2,
		Group:          streams.ModeSync,
		IdempotencyKey: longID, // a worker keys a write without Soma-Idempotency-Key by its message id
	}
	f := Failure{Class: streams.ClassBadInput, Reason: "bad\r\nreason", Status: 400, Answer: []byte(strings.Repeat("a\n", 1000))}

	dl := Letter(w, f)

	if dl.Subject != "memory_dlq.acme.sync.store" {
		t.Errorf("subject %q", dl.Subject)
	}
	for name := range dl.Header {
		if strings.HasPrefix(name, "Nats-") || name == "Status" || name == "Description" {
			t.Errorf("header %s kept: %q", name, dl.Header.Get(name))
		}
	}
	for name, want := range map[string]string{
		streams.HeaderRequestID:     "r-1",
		streams.HeaderDLQDropped:    "Description, Status",
		streams.HeaderDLQShortened:  "Soma-Dlq-Msg-Id, Soma-Idempotency-Key",
		streams.HeaderDLQSubject:    "memory.acme.sync.store.3",
		streams.HeaderDLQStreamSeq:  "41",
		streams.HeaderDLQGroup:      "sync",
		streams.HeaderDLQDeliveries: "2",
		streams.HeaderDLQClass:      "bad_input",
		streams.HeaderDLQError:      "bad  reason",
		streams.HeaderDLQHTTPStatus: "400",
	} {
		if got := dl.Header.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if got := dl.Header.Get(streams.HeaderDLQMsgID); got != longID[:shortValue] {
		t.Errorf("%s is %d bytes, want the id's first %d", streams.HeaderDLQMsgID, len(got), shortValue)
	}
	if got := dl.Header.Get(streams.HeaderIdempotencyKey); got != longID[:shortValue] {
		t.Errorf("%s is %d bytes, want the key's first %d", streams.HeaderIdempotencyKey, len(got), shortValue)
	}
	if got := dl.Header.Get(streams.HeaderDLQAnswer); got != strings.Repeat("a ", maxAnswerExcerpt/2) {
		t.Errorf("%s = %q, want the answer's first %d bytes, line breaks blanked", streams.HeaderDLQAnswer, got, maxAnswerExcerpt)
	}
	if _, err := time.Parse(time.RFC3339Nano, dl.Header.Get(streams.HeaderDLQTime)); err != nil {
		t.Errorf("%s: %v", streams.HeaderDLQTime, err)
	}
	if n := headerSize(dl.Header); n > maxHeader {
		t.Errorf("headers %d bytes", n)
	}
	if !maps.EqualFunc(h, before, slices.Equal) {
		t.Error("Letter changed the write's headers")
	}

	// The server stores it, and it reads back as the dead letter it is.
	s := natstest.Start(t)
	_, js := s.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg := streams.DefaultConfig()
	if _, err := streams.Provision(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := js.PublishMsg(ctx, dl, jetstream.WithMsgID(MsgID(cfg.Stream, w.Seq))); err != nil {
		t.Fatalf("store the dead letter: %v", err)
	}
	if _, err := js.PublishMsg(ctx, Letter(w, f), jetstream.WithMsgID(MsgID(cfg.Stream, w.Seq))); err != nil {
		t.Fatalf("store it again: %v", err)
	}
	list, err := List(ctx, js, cfg, Filter{})
	if err != nil || len(list) != 1 {
		t.Fatalf("List = %d dead letters, %v; want the one, stored once", len(list), err)
	}
	d := list[0]
	if d.OriginalSubject != w.Subject || d.OriginalSeq != 41 || d.Group != "sync" || d.Class != "bad_input" ||
		d.HTTPStatus != 400 || d.Deliveries != 2 || d.IdempotencyKey != longID[:shortValue] || len(d.Data) != 0 {
		t.Fatalf("read back %+v", d)
	}
}

// A write with a body keeps its Status and Description: nats.go takes
// only an empty message for a server status.
func TestLetterKeepsStatusOnAWriteWithABody(t *testing.T) {
	h := nats.Header{}
	h.Set("Status", "503")
	h.Set(streams.HeaderIdempotencyKey, "k1")
	dl := Letter(Write{Subject: "memory.acme.fast_ack.store.0", Seq: 7, Header: h, Data: []byte(`{}`), Group: streams.ModeFastAck, IdempotencyKey: "other"},
		Failure{Class: streams.ClassExhausted, Reason: "3 attempts"})
	if dl.Header.Get("Status") != "503" || dl.Header.Get(streams.HeaderDLQDropped) != "" {
		t.Errorf("headers %v", dl.Header)
	}
	if dl.Header.Get(streams.HeaderIdempotencyKey) != "k1" {
		t.Errorf("the write's own key was replaced: %v", dl.Header)
	}
	for _, name := range []string{streams.HeaderDLQHTTPStatus, streams.HeaderDLQAnswer, streams.HeaderDLQMsgID} {
		if v, ok := dl.Header[name]; ok {
			t.Errorf("%s = %q on a write that never reached the memory API and had no id", name, v)
		}
	}
	if string(dl.Data) != `{}` {
		t.Errorf("body %q", dl.Data)
	}
}

// A dead letter the server would refuse for its headers' size leaves the
// write in the outbox for good; fitHeaders cuts what it must and says so.
func TestFitHeadersKeepsADeadLetterUnderTheServersLimit(t *testing.T) {
	t.Run("long values are cut", func(t *testing.T) {
		h := nats.Header{}
		h.Set(streams.HeaderDLQMsgID, strings.Repeat("k", 40<<10))
		h.Set(streams.HeaderIdempotencyKey, strings.Repeat("k", 40<<10))
		h.Set(streams.HeaderDLQClass, string(streams.ClassBadInput))
		fitHeaders(h)
		if n := headerSize(h); n > maxHeader {
			t.Fatalf("headers still %d bytes", n)
		}
		if got := h.Get(streams.HeaderDLQShortened); got != "Soma-Dlq-Msg-Id, Soma-Idempotency-Key" {
			t.Errorf("%s = %q", streams.HeaderDLQShortened, got)
		}
		if h.Get(streams.HeaderDLQClass) != string(streams.ClassBadInput) || h.Get(streams.HeaderDLQDropped) != "" {
			t.Errorf("bookkeeping touched or headers dropped: %v", h)
		}
	})
	t.Run("many short values are dropped, largest first", func(t *testing.T) {
		h := nats.Header{}
		for i := range 70 {
			h.Set(fmt.Sprintf("X-Filler-%02d", i), strings.Repeat("v", 900+i))
		}
		h.Set(streams.HeaderDLQError, strings.Repeat("e", 1000))
		fitHeaders(h)
		if n := headerSize(h); n > maxHeader {
			t.Fatalf("headers still %d bytes", n)
		}
		dropped := h.Get(streams.HeaderDLQDropped)
		if !strings.HasPrefix(dropped, "X-Filler-69, X-Filler-68") || h.Get("X-Filler-00") == "" {
			t.Errorf("dropped %q; want the largest first and the smallest kept", dropped)
		}
		if h.Get(streams.HeaderDLQError) == "" {
			t.Error("the reason was dropped")
		}
	})
	t.Run("headers that fit are left alone", func(t *testing.T) {
		h := nats.Header{}
		h.Set(streams.HeaderIdempotencyKey, strings.Repeat("k", 4<<10))
		fitHeaders(h)
		if len(h.Get(streams.HeaderIdempotencyKey)) != 4<<10 || h.Get(streams.HeaderDLQShortened) != "" {
			t.Errorf("changed: %v", h)
		}
	})
}

// A forged status on an empty body is left out and named; when headers
// are then left out for size too, both stay named.
func TestLetterNamesEveryHeaderItLeftOut(t *testing.T) {
	h := nats.Header{}
	h.Set("Status", "409")
	h.Set("Description", "Consumer Deleted")
	for i := range 100 { // 100 values a shortening leaves whole: 100 KB
		h.Set(fmt.Sprintf("X-Filler-%03d", i), strings.Repeat("v", shortValue))
	}
	dl := Letter(Write{Subject: "memory.acme.fast_ack.store.0", Seq: 9, Header: h, Group: streams.ModeFastAck, IdempotencyKey: "k"},
		Failure{Class: streams.ClassBadInput, Reason: "bad input: empty body"})
	got := dl.Header.Get(streams.HeaderDLQDropped)
	for _, name := range []string{"Description", "Status", "X-Filler-"} {
		if !strings.Contains(got, name) {
			t.Errorf("%s = %q, want it to name %s", streams.HeaderDLQDropped, got, name)
		}
	}
	if headerSize(dl.Header) > maxHeader {
		t.Errorf("headers take %d bytes, over %d", headerSize(dl.Header), maxHeader)
	}
}
