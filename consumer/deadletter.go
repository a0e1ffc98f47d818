package consumer

import (
	"context"
	"regexp"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetbox-dev/jetbox/consumer/internal/intake"
	"github.com/jetbox-dev/jetbox/consumer/internal/telemetry"
	"github.com/jetbox-dev/jetbox/dlq"
	"github.com/jetbox-dev/jetbox/streams"
)

// deadLetter stores the write in the dead-letter stream, then acks it. If
// the dead letter cannot be stored the write stays in the outbox and comes
// back later: nothing is dropped on the way to the DLQ. It returns how long
// to wait before trying again, 0 when the write was dead-lettered.
// attempts is how many failed attempts were counted for it: their count is
// forgotten once it is dead-lettered.
func (g *group) deadLetter(ctx context.Context, msg jetstream.Msg, meta *jetstream.MsgMetadata, w *intake.Write, attempts int, f dlq.Failure, outcome streams.Outcome) (retryIn time.Duration) {
	seq := meta.Sequence.Stream
	dl := dlq.Letter(dlq.Write{
		Subject:        msg.Subject(),
		Seq:            seq,
		Header:         msg.Headers(),
		Data:           msg.Data(),
		Deliveries:     meta.NumDelivered,
		Group:          g.mode,
		IdempotencyKey: w.IdempotencyKey,
	}, f)
	if _, err := g.js.PublishMsg(ctx, dl, jetstream.WithMsgID(dlq.MsgID(g.cfg.Streams.Stream, seq))); err != nil {
		g.log.Error().Err(err).Uint64("seq", seq).Str("class", string(f.Class)).Msg("cannot store dead letter; the write stays in the outbox")
		return g.backoff(1, 0)
	}
	if err := msg.Ack(); err != nil {
		g.log.Warn().Err(err).Uint64("seq", seq).Msg("ack after dead-lettering failed")
	}
	if meta.NumDelivered > 1 || attempts > 0 {
		g.forgetAttempts(ctx, seq)
	}
	tenant := telemetry.OtherTenants
	if w.Addr.Tenant != "" {
		tenant = g.metrics.TenantLabel(w.Addr.Tenant)
	}
	g.metrics.DeadLettered.WithLabelValues(string(g.mode), tenant, string(f.Class)).Inc()
	g.withPayloads(g.log.Warn().Ctx(ctx), msg, f.Answer).Str("group", string(g.mode)).Str("subject", msg.Subject()).Uint64("seq", seq).
		Str("class", string(f.Class)).Int("status", f.Status).Str("reason", g.loggable(f.Reason)).Msg("dead-lettered")
	g.reply(w, seq, outcome, f.Status, f.Answer, f.Reason)
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
