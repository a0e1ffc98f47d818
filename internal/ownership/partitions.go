package ownership

import (
	"context"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/jetbox-dev/jetbox/streams"
)

// Config is what taking one mode's partitions needs.
type Config struct {
	Conn    *nats.Conn
	JS      jetstream.JetStream
	Streams streams.Config
	Mode    streams.Mode
	// Batch and MaxBytes are what the pull loop asks for per pull
	// request: it never blocks, so as much as a partition may hold.
	Batch    int
	MaxBytes int
	// Hold, if above 0, bounds the writes a partition takes from the
	// stream while they wait for capacity (Partition.Waiting): with that
	// many waiting it pulls no more, and it pulls again once half of them
	// have gone on. A busy partition may hold more, from a pool of
	// HoldShared shared by the mode's partitions: one busy on its own
	// keeps as many waiting as the worker can run. Writes waiting behind an earlier write to
	// their memory are not counted, so a partition still sees past a
	// burst to one memory, up to the consumer's MaxAckPending.
	Hold       int
	HoldShared int
	// OwnedChanged, if set, is told of each partition this worker takes
	// (+1) and releases (-1), for a gauge of the partitions it owns.
	OwnedChanged func(delta int)
	Log          zerolog.Logger
	Hooks        Hooks
}

func (cfg *Config) ownedChanged(delta int) {
	if cfg.OwnedChanged != nil {
		cfg.OwnedChanged(delta)
	}
}

// Hooks are where the owner's delivery policy plugs in. Each is given the
// partition it is called for.
type Hooks struct {
	// Start is called on the pull loop for each write, in stream order,
	// once the partition has been gathered; it must not block. msg's
	// metadata is meta, nil when it has none. The returned run goes in a goroutine of
	// its own, and the write is held (kept in progress) until run calls
	// done, once: run may return before and leave the write waiting as
	// data, to go on in another goroutine. run gives a write it does not
	// ack back with HandBack.
	Start func(pt *Partition, msg jetstream.Msg, meta *jetstream.MsgMetadata) (run func(done func()))
	// Gathered, if set, runs once every write pending on the partition
	// has reached this worker, before Sure turns true and before any
	// write starts: whatever the previous
	// owner recorded before letting go is read there. It may block until
	// the partition's Context ends.
	Gathered func(pt *Partition)
	// Tend, if set, runs when the partition is taken, once it has been
	// gathered and at every keeper tick: the owner starts there what it runs on the
	// partition besides its writes (Go) and is missing.
	Tend func(pt *Partition)
}

// Partitions takes and releases one mode's partitions for this worker.
type Partitions struct {
	cfg   Config
	owned map[int]*Partition // touched only by Rebalance and ReleaseAll
	view  atomic.Pointer[[]int]
	// pool is the room beyond Config.Hold not taken by a partition.
	pool atomic.Int64
}

// NewPartitions prepares a mode's partitions; Rebalance takes them.
func NewPartitions(cfg Config) *Partitions {
	ps := &Partitions{cfg: cfg, owned: map[int]*Partition{}}
	ps.pool.Store(int64(cfg.HoldShared))
	return ps
}

// Owned is the partitions owned after the last Rebalance, sorted, or nil
// after ReleaseAll; safe to call at any time.
func (ps *Partitions) Owned() []int {
	if p := ps.view.Load(); p != nil {
		return *p
	}
	return nil
}

// Rebalance releases, in every mode, the partitions no longer assigned to
// self among members, then takes the newly assigned ones (with Take; ctx
// and workCtx are theirs). Releasing first matters: the new owner's pulls
// wait on the pin until the old owner has handed everything back. A
// partition that cannot be taken is logged and left for the next call.
func Rebalance(ctx, workCtx context.Context, self string, members []streams.MemberRecord, modes []*Partitions) {
	var releasing sync.WaitGroup
	for _, ps := range modes {
		want := Assign(self, members, ps.cfg.Mode, ps.cfg.Streams.Partitions)
		for p, pt := range ps.owned {
			if !slices.Contains(want, p) {
				delete(ps.owned, p)
				releasing.Add(1)
				go func() { defer releasing.Done(); pt.Release(ctx) }()
			}
		}
	}
	releasing.Wait()
	for _, ps := range modes {
		log := ps.cfg.Log
		for _, p := range Assign(self, members, ps.cfg.Mode, ps.cfg.Streams.Partitions) {
			if _, ok := ps.owned[p]; ok || ctx.Err() != nil {
				continue
			}
			pt, err := ps.Take(ctx, workCtx, p)
			if err != nil {
				if ctx.Err() != nil {
					break // shutting down
				}
				log.Error().Err(err).Str("group", string(ps.cfg.Mode)).Int("partition", p).Msg("cannot pull from partition; trying again shortly")
				continue
			}
			ps.owned[p] = pt
		}
		owned := slices.Sorted(maps.Keys(ps.owned))
		if before := ps.view.Swap(&owned); before == nil || !slices.Equal(*before, owned) {
			log.Info().Str("group", string(ps.cfg.Mode)).Int("members", len(members)).Ints("partitions", owned).Msg("partitions assigned")
		}
	}
}

// ReleaseAll releases every partition of every mode, at once.
func ReleaseAll(ctx context.Context, modes []*Partitions) {
	var releasing sync.WaitGroup
	for _, ps := range modes {
		for p, pt := range ps.owned {
			delete(ps.owned, p)
			releasing.Add(1)
			go func() { defer releasing.Done(); pt.Release(ctx) }()
		}
		ps.view.Store(nil)
	}
	releasing.Wait()
}
