package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// streamConfig is the benchmark's stream, on the terms jetbox's outbox
// has: file storage, one replica, work-queue retention (an acked message is
// removed), discard-new and a two-minute Nats-Msg-Id dedupe window.
func streamConfig(name string) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        name,
		Description: "watermill baseline of the jetbox benchmark",
		Subjects:    []string{subjectPrefix + ">"},
		Retention:   jetstream.WorkQueuePolicy,
		Discard:     jetstream.DiscardNew,
		Storage:     jetstream.FileStorage,
		Replicas:    1,
		Duplicates:  2 * time.Minute,
		MaxBytes:    -1,
		MaxMsgs:     -1,
	}
}

// createStream makes the stream afresh. A stream of that name left by an
// earlier run is deleted first; one that takes other subjects is not ours,
// and is left alone.
func createStream(ctx context.Context, js jetstream.JetStream, name string) error {
	cfg := streamConfig(name)
	old, err := js.Stream(ctx, name)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
	case err != nil:
		return fmt.Errorf("look up stream %s: %w", name, err)
	case !slices.Equal(old.CachedInfo().Config.Subjects, cfg.Subjects):
		return fmt.Errorf("stream %s exists with subjects %v, not %v: it is not this benchmark's, so it is left alone; pick another -stream",
			name, old.CachedInfo().Config.Subjects, cfg.Subjects)
	default:
		if err := js.DeleteStream(ctx, name); err != nil {
			return fmt.Errorf("delete stream %s left by an earlier run: %w", name, err)
		}
	}
	if _, err := js.CreateStream(ctx, cfg); err != nil {
		return fmt.Errorf("create stream %s: %w", name, err)
	}
	return nil
}

// checkBacklog makes sure the stream holds the n messages a drain-only run
// is to apply, as an earlier -phase publish -keep-stream run left them.
func checkBacklog(ctx context.Context, js jetstream.JetStream, name string, n int) error {
	stream, err := js.Stream(ctx, name)
	if err != nil {
		return fmt.Errorf("stream %s, with the backlog to drain: %w", name, err)
	}
	if !slices.Equal(stream.CachedInfo().Config.Subjects, streamConfig(name).Subjects) {
		return fmt.Errorf("stream %s takes subjects %v: it is not this benchmark's", name, stream.CachedInfo().Config.Subjects)
	}
	if held := stream.CachedInfo().State.Msgs; held != uint64(n) {
		return fmt.Errorf("stream %s holds %d messages, not the -n %d to drain", name, held, n)
	}
	return nil
}
