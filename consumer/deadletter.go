package consumer

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

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
	dl := nats.NewMsg(streams.DLQSubjectFor(msg.Subject()))
	for name, values := range msg.Headers() {
		if name == streams.HeaderMsgID || strings.HasPrefix(name, "Nats-") {
			continue
		}
		dl.Header[name] = values
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
	tenant := otherTenants
	if w.addr.Tenant != "" {
		tenant = g.metrics.tenants.label(w.addr.Tenant)
	}
	g.metrics.deadLettered.WithLabelValues(string(g.mode), tenant, string(f.class)).Inc()
	g.withPayloads(g.log.Warn(), msg, f.answer).Str("group", string(g.mode)).Str("subject", msg.Subject()).Uint64("seq", seq).
		Str("class", string(f.class)).Int("status", f.status).Str("reason", g.loggable(f.reason)).Msg("dead-lettered")
	g.reply(w, seq, outcome, f.status, f.answer, f.reason)
	return 0
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
