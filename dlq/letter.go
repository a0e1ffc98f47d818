package dlq

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetbox-dev/jetbox/internal/text"
	"github.com/jetbox-dev/jetbox/streams"
)

// Write is an outbox write as its dead letter records it.
type Write struct {
	Subject    string       // as the outbox stored it, partition token included
	Seq        uint64       // in the outbox stream
	Header     nats.Header  // as stored; Letter never changes it
	Data       []byte       // as stored
	Deliveries uint64       // how often the outbox delivered it
	Group      streams.Mode // the worker group that gives up on it
	// IdempotencyKey is the key the worker applies the write under,
	// recorded when the write's headers carry none.
	IdempotencyKey string
}

// Failure is why a write goes to the dead-letter stream.
type Failure struct {
	Class  streams.DLQClass
	Reason string
	Status int    // the memory API's HTTP status; 0 when it never answered
	Answer []byte // the memory API's answer
}

// maxAnswerExcerpt bounds the memory API answer kept in a dead letter.
const maxAnswerExcerpt = 512

// Letter is the dead letter of w, which failed for f, ready to publish
// with MsgID(stream, w.Seq). It keeps the write's body and headers, less
// those that would mislead its reader, adds the Soma-Dlq-* headers that
// say where the write came from and why it failed, and fits the whole
// under the server's header limit.
func Letter(w Write, f Failure) *nats.Msg {
	dl := nats.NewMsg(streams.DeadLetterSubject(w.Subject))
	var misread []string
	for name, values := range w.Header {
		if name == streams.HeaderMsgID || strings.HasPrefix(name, "Nats-") {
			continue
		}
		// Whoever reads the dead letter with nats.go would take it for a
		// server status (docs/NATSGO-STATUS-HEADER.md).
		if len(w.Data) == 0 && (name == "Status" || name == "Description") {
			misread = append(misread, name)
			continue
		}
		dl.Header[name] = values
	}
	if len(misread) > 0 {
		slices.Sort(misread)
		dl.Header.Set(streams.HeaderDLQDropped, strings.Join(misread, ", "))
	}
	if id := w.Header.Get(streams.HeaderMsgID); id != "" {
		dl.Header.Set(streams.HeaderDLQMsgID, id)
	}
	if dl.Header.Get(streams.HeaderIdempotencyKey) == "" {
		// Replays get a fresh Nats-Msg-Id; the key is what keeps them
		// idempotent at the memory API.
		dl.Header.Set(streams.HeaderIdempotencyKey, w.IdempotencyKey)
	}
	dl.Header.Set(streams.HeaderDLQSubject, w.Subject)
	dl.Header.Set(streams.HeaderDLQStreamSeq, fmt.Sprint(w.Seq))
	dl.Header.Set(streams.HeaderDLQGroup, string(w.Group))
	dl.Header.Set(streams.HeaderDLQDeliveries, fmt.Sprint(w.Deliveries))
	dl.Header.Set(streams.HeaderDLQClass, string(f.Class))
	dl.Header.Set(streams.HeaderDLQError, text.HeaderSafe(f.Reason, 1024))
	if f.Status != 0 {
		dl.Header.Set(streams.HeaderDLQHTTPStatus, fmt.Sprint(f.Status))
	}
	if len(f.Answer) > 0 {
		dl.Header.Set(streams.HeaderDLQAnswer, text.HeaderSafe(string(f.Answer), maxAnswerExcerpt))
	}
	dl.Header.Set(streams.HeaderDLQTime, time.Now().UTC().Format(time.RFC3339Nano))
	dl.Data = w.Data
	fitHeaders(dl.Header)
	return dl
}

// MsgID is the Nats-Msg-Id of the dead letter of the write at seq in the
// outbox stream: it makes a second dead-lettering of the same write (a
// crash between publish and ack) a duplicate the DLQ absorbs.
func MsgID(stream string, seq uint64) string {
	return fmt.Sprintf("dlq:%s:%d", stream, seq)
}

// maxHeader bounds a dead letter's header block. The server refuses a
// message whose headers pass 64 KiB; the write's own headers fit, but its
// dead letter repeats its Nats-Msg-Id (Soma-Dlq-Msg-Id and, when the write
// had no key, Soma-Idempotency-Key) and adds its own, and a dead letter
// the server refuses would leave the write in the outbox forever.
const maxHeader = 60 << 10

// shortValue is what fitHeaders cuts a long header value to. The values it
// cuts are longer than any a worker accepts (streams.MaxHeaderValueLen),
// so the write they came with was refused as bad input and a replay of the
// dead letter is refused again: no applied write's key is ever cut.
const shortValue = 1024

// fitHeaders makes h fit maxHeader: it cuts values longer than shortValue,
// then, if that is not enough, leaves out the largest copied headers. It
// names what it cut or left out in Soma-Dlq-Shortened and
// Soma-Dlq-Dropped. The bookkeeping headers (Soma-Dlq-*) are bounded
// already and are never touched.
func fitHeaders(h nats.Header) {
	if headerSize(h) <= maxHeader {
		return
	}
	var shortened, dropped []string
	for _, name := range slices.Sorted(maps.Keys(h)) {
		values, cut := h[name], false
		for i, v := range values {
			if len(v) > shortValue {
				if !cut {
					values = slices.Clone(values) // h shares its slices with the write's headers
					cut = true
				}
				values[i] = text.HeaderSafe(v, shortValue)
			}
		}
		if cut {
			h[name] = values
			shortened = append(shortened, name)
		}
	}
	for headerSize(h) > maxHeader-1024 {
		largest, size := "", 0
		for name, values := range h {
			n := 0
			for _, v := range values {
				n += len(v)
			}
			if n > size && !strings.HasPrefix(name, "Soma-Dlq-") {
				largest, size = name, n
			}
		}
		if largest == "" {
			break
		}
		delete(h, largest)
		dropped = append(dropped, largest)
	}
	if len(shortened) > 0 {
		h.Set(streams.HeaderDLQShortened, text.HeaderSafe(strings.Join(shortened, ", "), 512))
	}
	if len(dropped) > 0 {
		// Headers left out before (a forged status) stay named.
		if before := h.Get(streams.HeaderDLQDropped); before != "" {
			dropped = append(strings.Split(before, ", "), dropped...)
			slices.Sort(dropped)
		}
		h.Set(streams.HeaderDLQDropped, text.HeaderSafe(strings.Join(dropped, ", "), 512))
	}
}

// headerSize is about the bytes h takes on the wire.
func headerSize(h nats.Header) int {
	n := len("NATS/1.0\r\n\r\n")
	for name, values := range h {
		for _, v := range values {
			n += len(name) + len(v) + 4 // ": " and CRLF
		}
	}
	return n
}
