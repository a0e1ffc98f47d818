package streams

// Provision's checks of the outbox layouts of earlier jetbox versions. An
// outbox made by one of them is taken over by this version only once it
// holds no write stored in the earlier layout, which no consumer of this
// layout would ever deliver; its consumers of the earlier layout are then
// deleted (retiredConsumers). The layouts:
//
//   - unpartitioned: writes stored as published, memory.<token>.<mode>.<op>,
//     with one consumer per mode named after the mode (legacyConsumer);
//   - partition last: writes stored as memory.<token>.<mode>.<op>.<p>
//     (partitionLastLayout), before the mode and the partition led the
//     stored subject.
//
// No release of jetbox has used either layout (CHANGELOG.md): they come
// from its development versions. This file, and the branch of
// PublishSubject that reads dead letters of the partition-last layout, can
// be deleted once no outbox made by those versions remains to be upgraded.

import (
	"context"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// legacyConsumer reports whether name is a consumer of the unpartitioned
// layout: one per mode, named after it, filtered on memory.*.<mode>.>. On a
// work-queue stream its filter overlaps the unpartitioned consumer's
// (memory.*.*.*), and the server refuses that one while it exists.
func legacyConsumer(name string) bool {
	m, err := ParseMode(name)
	return err == nil && string(m) == name
}

// partitionLastLayout selects, for one mode, the writes an earlier jetbox
// stored with the partition last (memory.<token>.<mode>.<op>.<p>). The
// stored subjects of this layout never match it: their third token is a
// number.
func partitionLastLayout(mode Mode) string {
	return SubjectPrefix + ".*." + string(mode) + ".*.*"
}

// checkPartitionLastDrained fails with ErrNotDrained while the outbox holds
// writes stored with the partition last by an earlier jetbox: no consumer
// of this layout matches them.
func checkPartitionLastDrained(ctx context.Context, outbox jetstream.Stream, cfg Config) error {
	for _, m := range Modes {
		n, err := CountStored(ctx, outbox, partitionLastLayout(m))
		if err != nil {
			return fmt.Errorf("count writes stored in the earlier layout in %s: %w", cfg.Stream, err)
		}
		if n > 0 {
			return fmt.Errorf("%w: stream %s holds %d %s writes stored by an earlier jetbox, with the partition last (memory.<tenant>.<mode>.<op>.<partition>); let workers of that version apply them before starting this one",
				ErrNotDrained, cfg.Stream, n, m)
		}
	}
	return nil
}

// checkUnpartitionedDrained fails with ErrNotDrained while the outbox has
// consumers of the unpartitioned layout (legacy) and still holds writes
// stored in it. They are counted on the stream, not on the old consumers:
// what matters is whether any write is still stored with four tokens.
func checkUnpartitionedDrained(ctx context.Context, outbox jetstream.Stream, cfg Config, legacy []string) error {
	if len(legacy) == 0 {
		return nil
	}
	n, err := CountStored(ctx, outbox, SubjectPrefix+".*.*.*")
	if err != nil {
		return fmt.Errorf("count unpartitioned writes in %s: %w", cfg.Stream, err)
	}
	if n > 0 {
		return fmt.Errorf("%w: stream %s holds %d writes stored before it was partitioned; let workers of the previous jetbox version apply them (consumers %s) before starting this one",
			ErrNotDrained, cfg.Stream, n, strings.Join(legacy, ", "))
	}
	return nil
}
