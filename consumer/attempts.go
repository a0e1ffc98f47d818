package consumer

import (
	"context"
	"errors"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"
)

// Attempts are counted in a KV bucket, keyed by group and stream sequence,
// rather than read from the delivery count: deferrals while a breaker is open
// are deliveries too, and must not use up the budget. The bucket is shared
// by every worker, so a write keeps its count when another worker takes it.

func (g *group) attemptKey(seq uint64) string {
	return string(g.mode) + "." + strconv.FormatUint(seq, 10)
}

// countAttempt records one more failed attempt and returns the total. Only
// the worker holding the write touches its key, so get-then-put is safe.
func (g *group) countAttempt(ctx context.Context, seq uint64) (int, error) {
	key := g.attemptKey(seq)
	n := 0
	entry, err := g.buckets.attempts.Get(ctx, key)
	switch {
	case err == nil:
		n, _ = strconv.Atoi(string(entry.Value()))
	case !errors.Is(err, jetstream.ErrKeyNotFound):
		return 0, err
	}
	n++
	if _, err := g.buckets.attempts.Put(ctx, key, []byte(strconv.Itoa(n))); err != nil {
		return n, err
	}
	return n, nil
}

// forgetAttempts drops the count once the write is settled.
func (g *group) forgetAttempts(ctx context.Context, seq uint64) {
	if err := g.buckets.attempts.Purge(ctx, g.attemptKey(seq)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		g.log.Debug().Err(err).Uint64("seq", seq).Msg("cannot forget attempt count; it expires with the bucket's TTL")
	}
}
