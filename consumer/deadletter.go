package consumer

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetbox-dev/jetbox/consumer/internal/telemetry"
	"github.com/jetbox-dev/jetbox/streams"
)

// maxAnswerExcerpt bounds the memory API answer kept in a dead letter.
const maxAnswerExcerpt = 512

// failure is why a write goes to the dead-letter stream.
type failure struct {
	class  streams.DLQClass
	reason string
	status int
	answer []byte
}

// deadLetter stores the write in the dead-letter stream, then acks it. If
// the dead letter cannot be stored the write stays in the outbox and comes
// back later: nothing is dropped on the way to the DLQ. It returns how long
// to wait before trying again, 0 when the write was dead-lettered.
func (g *group) deadLetter(ctx context.Context, msg jetstream.Msg, meta *jetstream.MsgMetadata, w *write, f failure, outcome streams.Outcome) (retryIn time.Duration) {
	seq := meta.Sequence.Stream
	dl := nats.NewMsg(streams.DeadLetterSubject(msg.Subject()))
	var misread []string
	for name, values := range msg.Headers() {
		if name == streams.HeaderMsgID || strings.HasPrefix(name, "Nats-") {
			continue
		}
		// Whoever reads the dead letter with nats.go would take it for a
		// server status (docs/NATSGO-STATUS-HEADER.md).
		if len(msg.Data()) == 0 && (name == "Status" || name == "Description") {
			misread = append(misread, name)
			continue
		}
		dl.Header[name] = values
	}
	if len(misread) > 0 {
		slices.Sort(misread)
		dl.Header.Set(streams.HeaderDLQDropped, strings.Join(misread, ", "))
	}
	if id := msg.Headers().Get(streams.HeaderMsgID); id != "" {
		dl.Header.Set(streams.HeaderDLQMsgID, id)
	}
	if dl.Header.Get(streams.HeaderIdempotencyKey) == "" {
		// Replays get a fresh Nats-Msg-Id; the key is what keeps them
		// idempotent at the memory API.
		dl.Header.Set(streams.HeaderIdempotencyKey, w.idempotencyKey)
	}
	dl.Header.Set(streams.HeaderDLQSubject, msg.Subject())
	dl.Header.Set(streams.HeaderDLQStreamSeq, fmt.Sprint(seq))
	dl.Header.Set(streams.HeaderDLQGroup, string(g.mode))
	dl.Header.Set(streams.HeaderDLQDeliveries, fmt.Sprint(meta.NumDelivered))
	dl.Header.Set(streams.HeaderDLQClass, string(f.class))
	dl.Header.Set(streams.HeaderDLQError, headerSafe(f.reason, 1024))
	if f.status != 0 {
		dl.Header.Set(streams.HeaderDLQHTTPStatus, fmt.Sprint(f.status))
	}
	if len(f.answer) > 0 {
		dl.Header.Set(streams.HeaderDLQAnswer, headerSafe(string(f.answer), maxAnswerExcerpt))
	}
	dl.Header.Set(streams.HeaderDLQTime, time.Now().UTC().Format(time.RFC3339Nano))
	dl.Data = msg.Data()
	fitHeaders(dl.Header)

	// The id makes a second dead-lettering of the same write (a crash
	// between publish and ack) a duplicate the DLQ absorbs.
	id := fmt.Sprintf("dlq:%s:%d", g.cfg.Streams.Stream, seq)
	if _, err := g.js.PublishMsg(ctx, dl, jetstream.WithMsgID(id)); err != nil {
		g.log.Error().Err(err).Uint64("seq", seq).Str("class", string(f.class)).Msg("cannot store dead letter; the write stays in the outbox")
		return g.backoff(1, 0)
	}
	if err := msg.Ack(); err != nil {
		g.log.Warn().Err(err).Uint64("seq", seq).Msg("ack after dead-lettering failed")
	}
	if meta.NumDelivered > 1 || (w != nil && w.attempts > 0) {
		g.forgetAttempts(ctx, seq)
	}
	tenant := telemetry.OtherTenants
	if w.addr.Tenant != "" {
		tenant = g.metrics.TenantLabel(w.addr.Tenant)
	}
	g.metrics.DeadLettered.WithLabelValues(string(g.mode), tenant, string(f.class)).Inc()
	g.withPayloads(g.log.Warn().Ctx(ctx), msg, f.answer).Str("group", string(g.mode)).Str("subject", msg.Subject()).Uint64("seq", seq).
		Str("class", string(f.class)).Int("status", f.status).Str("reason", g.loggable(f.reason)).Msg("dead-lettered")
	g.reply(w, seq, outcome, f.status, f.answer, f.reason)
	return 0
}

// maxDeadLetterHeader bounds a dead letter's header block. The server
// refuses a message whose headers pass 64 KiB; the write's own headers fit,
// but its dead letter repeats its Nats-Msg-Id (Soma-Dlq-Msg-Id and, when
// the write had no key, Soma-Idempotency-Key) and adds its own, and a dead
// letter the server refuses would leave the write in the outbox forever.
const maxDeadLetterHeader = 60 << 10

// shortValue is what fitHeaders cuts a long header value to. The values it
// cuts are longer than any a worker accepts (streams.MaxHeaderValueLen),
// so the write they came with was refused as bad input and a replay of the
// dead letter is refused again: no applied write's key is ever cut.
const shortValue = 1024

// fitHeaders makes h fit maxDeadLetterHeader: it cuts values longer than
// shortValue, then, if that is not enough, leaves out the largest copied
// headers. It names what it cut or left out in Soma-Dlq-Shortened and
// Soma-Dlq-Dropped. The bookkeeping headers (Soma-Dlq-*) are bounded
// already and are never touched.
func fitHeaders(h nats.Header) {
	if headerSize(h) <= maxDeadLetterHeader {
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
				values[i] = headerSafe(v, shortValue)
			}
		}
		if cut {
			h[name] = values
			shortened = append(shortened, name)
		}
	}
	for headerSize(h) > maxDeadLetterHeader-1024 {
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
		h.Set(streams.HeaderDLQShortened, headerSafe(strings.Join(shortened, ", "), 512))
	}
	if len(dropped) > 0 {
		h.Set(streams.HeaderDLQDropped, headerSafe(strings.Join(dropped, ", "), 512))
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

// quoted matches the values a reason quotes from the write itself.
var quoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

// loggable is a failure reason fit for the log: the values it quotes from
// the write are users' data and are left out unless
// SOMABRAIN_OUTBOX_LOG_PAYLOADS asks for them. The dead letter keeps the
// whole reason.
func (g *group) loggable(reason string) string {
	if g.cfg.LogPayloads {
		return reason
	}
	return quoted.ReplaceAllString(reason, `"…"`)
}

// headerSafe makes s fit a NATS header value: no line breaks or other
// control characters, at most n bytes, valid UTF-8 at the cut.
func headerSafe(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7F || r == '\uFFFD' {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, " "))
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut]
}
