package consumer

import (
	"context"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetbox-dev/jetbox/consumer/internal/intake"
	"github.com/jetbox-dev/jetbox/dlq"
	"github.com/jetbox-dev/jetbox/internal/jspull"
	"github.com/jetbox-dev/jetbox/streams"
)

// deadLetterStrays dead-letters the writes the outbox stored without a
// partition (streams.StrayConsumerConfig): a raw client published to a
// subject with a wildcard token. No partition consumer would ever deliver
// them. Every worker pulls from the one stray consumer; the stream hands
// each write to one of them.
func (w *Worker) deadLetterStrays(ctx context.Context, stray jetstream.Consumer) {
	for ctx.Err() == nil {
		if !w.nc.IsConnected() {
			sleep(ctx, time.Second)
			continue
		}
		// jspull: a stray write with a forged Status header must still be
		// dead-lettered, not taken for the server's word.
		batch, err := jspull.Fetch(ctx, w.nc, w.cfg.Streams.Stream, stray.CachedInfo().Name, 16, streams.PullExpiry)
		for _, msg := range batch {
			w.deadLetterStray(ctx, msg)
		}
		if err != nil && ctx.Err() == nil {
			w.log.Debug().Err(err).Msg("pull from the stray consumer")
			if !sleep(ctx, time.Second) {
				return
			}
		}
	}
}

// deadLetterStray dead-letters one write stored without a partition, on
// behalf of the group its mode token names. A write whose dead letter
// cannot be stored is left unacked and comes back after AckWait.
func (w *Worker) deadLetterStray(ctx context.Context, msg jetstream.Msg) {
	meta, err := msg.Metadata()
	if err != nil {
		w.log.Error().Err(err).Msg("stray write without JetStream metadata")
		return
	}
	g := w.groups[0]
	if tokens := strings.Split(msg.Subject(), "."); len(tokens) > 2 {
		for _, candidate := range w.groups {
			if string(candidate.mode) == tokens[2] {
				g = candidate
			}
		}
	}
	wr, err := intake.Decode(msg, meta.Sequence.Stream, w.cfg.ReplyPrefixes)
	reason := "stored without a partition: the subject is not literal (a wildcard token); publish to memory.<tenant>.<mode>.<op>"
	if err != nil {
		reason += ": " + err.Error()
	}
	if g.deadLetter(ctx, msg, meta, wr, 0, dlq.Failure{Class: streams.ClassBadInput, Reason: reason}, streams.OutcomeDead) > 0 {
		w.log.Warn().Uint64("seq", meta.Sequence.Stream).Msg("cannot dead-letter a write stored without a partition; it comes back after the ack wait")
	}
}
