package main

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jetbox-dev/jetbox/producer"
	"github.com/jetbox-dev/jetbox/streams"
)

// recoveryScenario: one tenant's backlog over many memories, parked while
// its memory API was down, is replayed once the memory API answers again
// at least half as fast as the same worker drains the same backlog never
// parked.
func recoveryScenario(ctx context.Context, r *runner) (result, error) {
	const tenant = "T0"
	const apiDelay = time.Millisecond
	backlog, memories := r.n(100000), r.n(1000)
	// A short reset interval, so that the first probe after the recovery
	// is not what the run measures.
	const resetInterval = "1"
	worker := []string{"SOMABRAIN_MEMORY_RESET_INTERVAL=" + resetInterval}

	// The unparked drain: the same backlog, the same worker, a memory API
	// that answers.
	var baseRate float64
	{
		e, err := r.newEnvWith(ctx, envOptions{apiDelay: apiDelay, timed: true})
		if err != nil {
			return result{}, err
		}
		err = func() error {
			defer e.close()
			if err := e.preloadMemories(ctx, tenant, backlog, memories); err != nil {
				return err
			}
			if _, err := e.startWorker(worker...); err != nil {
				return err
			}
			baseRate, err = e.rateBetween(ctx, uint64(backlog))
			return err
		}()
		if err != nil {
			return result{}, fmt.Errorf("unparked drain: %w", err)
		}
	}

	var down atomic.Bool
	down.Store(true)
	e, err := r.newEnvWith(ctx, envOptions{apiDelay: apiDelay, timed: true, fail: func(t string) bool { return t == tenant && down.Load() }})
	if err != nil {
		return result{}, err
	}
	defer e.close()
	if err := e.preloadMemories(ctx, tenant, backlog, memories); err != nil {
		return result{}, err
	}
	if _, err := e.startWorker(worker...); err != nil {
		return result{}, err
	}
	outboxFilter, dlqFilter, err := tenantFilters(tenant)
	if err != nil {
		return result{}, err
	}
	started := time.Now()
	for {
		left, err := e.countSubjects(ctx, e.streams.Stream, outboxFilter)
		if err != nil {
			return result{}, err
		}
		parked, err := e.countSubjects(ctx, e.streams.ParkingStream, streams.ParkedSubjectPrefix+".>")
		if err != nil {
			return result{}, err
		}
		if left == 0 && parked == uint64(backlog) {
			break
		}
		select {
		case <-ctx.Done():
			return result{}, fmt.Errorf("%w: %d writes parked, %d left in the outbox", errTimeout, parked, left)
		case <-time.After(100 * time.Millisecond):
		}
	}
	parkedIn := time.Since(started)
	down.Store(false)
	recovered := time.Now()
	replayRate, err := e.rateBetween(ctx, uint64(backlog))
	if err != nil {
		return result{}, fmt.Errorf("replay: %w", err)
	}
	caughtUp, err := e.waitApplied(ctx, uint64(backlog), nil)
	if err != nil {
		return result{}, err
	}
	dead, err := e.countSubjects(ctx, e.streams.DLQStream, dlqFilter)
	if err != nil {
		return result{}, err
	}
	res := result{
		Name: "recovery",
		Figures: map[string]float64{
			"backlog": float64(backlog), "memories": float64(memories), "api_delay_ms": ms(apiDelay),
			"unparked_writes_per_s": baseRate,
			"replay_writes_per_s":   replayRate,
			"backlog_parked_s":      parkedIn.Seconds(),
			"caught_up_s":           caughtUp.Sub(recovered).Seconds(),
			"dead_lettered":         float64(dead),
		},
		Target: "replay rate >= 0.5x the unparked drain rate of the same backlog",
		Pass:   baseRate > 0 && replayRate >= 0.5*baseRate && dead == 0,
		Note: "rates between 10% and 90% of the backlog applied; caught_up_s from the memory API's recovery to the last write applied, " +
			"including the first probe (breaker reset interval " + resetInterval + " s)",
	}
	setRatio(res.Figures, "ratio", replayRate, baseRate)
	return res, nil
}

// preloadMemories stores n background writes of one tenant, write i to
// memory i mod memories, with no worker running.
func (e *env) preloadMemories(ctx context.Context, tenant string, n, memories int) error {
	p, err := producer.New(e.nc, producer.Config{Mode: streams.ModeBackground, BufferSize: 20000})
	if err != nil {
		return err
	}
	for i := range n {
		req := producer.StoreRequest{Tenant: tenant, Coord: strconv.Itoa(i%memories) + ",0,0", Payload: map[string]any{"i": i, "text": "scenario payload"}}
		if _, err := p.Store(ctx, req); err != nil {
			return err
		}
	}
	return p.Close(ctx)
}

// rateBetween waits until 90% of n writes are applied and returns the
// rate between 10% and 90% of them.
func (e *env) rateBetween(ctx context.Context, n uint64) (float64, error) {
	t10, err := e.waitApplied(ctx, n/10, nil)
	if err != nil {
		return 0, err
	}
	t90, err := e.waitApplied(ctx, n*9/10, nil)
	if err != nil {
		return 0, err
	}
	return float64(n*8/10) / t90.Sub(t10).Seconds(), nil
}
