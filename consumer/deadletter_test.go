package consumer

import (
	"fmt"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/jetbox-dev/jetbox/streams"
)

// A dead letter the server would refuse for its headers' size leaves the
// write in the outbox for good; fitHeaders cuts what it must and says so.
func TestFitHeadersKeepsADeadLetterUnderTheServersLimit(t *testing.T) {
	t.Run("long values are cut", func(t *testing.T) {
		h := nats.Header{}
		h.Set(streams.HeaderDLQMsgID, strings.Repeat("k", 40<<10))
		h.Set(streams.HeaderIdempotencyKey, strings.Repeat("k", 40<<10))
		h.Set(streams.HeaderDLQClass, string(streams.ClassBadInput))
		fitHeaders(h)
		if n := headerSize(h); n > maxDeadLetterHeader {
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
		if n := headerSize(h); n > maxDeadLetterHeader {
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
