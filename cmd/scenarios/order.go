package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jetbox-dev/jetbox/producer"
	"github.com/jetbox-dev/jetbox/streams"
)

// Settings of the order scenario.
const (
	orderWorkers        = 3
	orderAckWait        = 5 * time.Second
	orderRequestTimeout = 2 * time.Second
	orderRate           = 1500 // writes/s published, all coords together
	orderKillEvery      = 3 * time.Second
	orderCoordsPerTen   = 10
	orderStall          = 30 * time.Second // the drain gives up after this long without a write applied
)

// orderCoord is one memory of the order scenario and the idempotency keys
// of the writes published to it, in the order the stream stored them.
type orderCoord struct {
	tenant, coord string
	keys          []string
}

// orderScenario: writes to shared coords, applied by three workers of which
// one is killed (SIGKILL) and restarted every few seconds, reach the memory
// API exactly once each and, per coord, in stream order.
func orderScenario(ctx context.Context, r *runner) (result, error) {
	tenants, sequences := r.n(200), r.n(20000)
	triples := max(1, sequences/(tenants*orderCoordsPerTen)) // store, delete, store per coord, this many times

	e, err := r.newEnvWith(ctx, envOptions{streams: func(c *streams.Config) { c.AckWait = orderAckWait }})
	if err != nil {
		return result{}, err
	}
	defer e.close()
	settings := []string{
		"SOMABRAIN_OUTBOX_ACK_WAIT=" + orderAckWait.String(),
		"SOMABRAIN_OUTBOX_REQUEST_TIMEOUT=" + orderRequestTimeout.String(),
	}
	workers := make([]*workerProc, orderWorkers)
	for i := range workers {
		if workers[i], err = e.startWorker(settings...); err != nil {
			return result{}, err
		}
	}
	time.Sleep(time.Second)

	// One of the workers is killed and restarted every orderKillEvery, in
	// turn, until every write is applied.
	killCtx, stopKills := context.WithCancel(ctx)
	defer stopKills()
	var (
		kills    int
		killErr  error
		killDone = make(chan struct{})
	)
	go func() {
		defer close(killDone)
		t := time.NewTicker(orderKillEvery)
		defer t.Stop()
		for {
			select {
			case <-killCtx.Done():
				return
			case <-t.C:
			}
			i := kills % len(workers)
			w, err := e.restartWorker(workers[i])
			if err != nil {
				killErr = err
				return
			}
			workers[i] = w
			kills++
		}
	}()

	coords := make([]*orderCoord, 0, tenants*orderCoordsPerTen)
	for t := range tenants {
		for c := range orderCoordsPerTen {
			coords = append(coords, &orderCoord{tenant: fmt.Sprintf("ord-%03d", t), coord: fmt.Sprintf("%d,1,1", c)})
		}
	}
	pubStart := time.Now()
	published, err := e.publishOrdered(ctx, coords, 3*triples, orderRate)
	pubTime := time.Since(pubStart)
	if err != nil {
		stopKills()
		<-killDone
		return result{}, err
	}

	// Wait until every write is applied, or nothing moved for orderStall.
	drainStart := time.Now()
	last, lastChange := e.applied(), time.Now()
	for last < uint64(published) && time.Since(lastChange) < orderStall && ctx.Err() == nil {
		time.Sleep(200 * time.Millisecond)
		if n := e.applied(); n != last {
			last, lastChange = n, time.Now()
		}
	}
	drainTime := time.Since(drainStart)
	stopKills()
	<-killDone
	if killErr != nil {
		return result{}, fmt.Errorf("restart a worker: %w", killErr)
	}
	for _, w := range workers {
		w.proc.Stop()
	}

	// Each coord's history must be exactly its writes, in publish order.
	var outOfOrderCoords, outOfOrderWrites, missing, twice, unexpected, wrongFinal, entries int
	for _, c := range coords {
		index := make(map[string]int, len(c.keys))
		for i, k := range c.keys {
			index[k] = i
		}
		seen := make(map[string]int, len(c.keys))
		highest, misordered := -1, false
		for _, h := range e.store.History(c.tenant, c.coord) {
			entries++
			i, ok := index[h.IdempotencyKey]
			if !ok {
				unexpected++
				continue
			}
			if seen[h.IdempotencyKey]++; seen[h.IdempotencyKey] > 1 {
				// A redelivery applied again: SFM reads no idempotency
				// key, and a store applied twice in a row is harmless.
				// Applied after a later write, it undoes that write.
				twice++
				if i < highest {
					outOfOrderWrites++
					misordered = true
				}
				continue
			}
			if i < highest {
				outOfOrderWrites++
				misordered = true
			}
			highest = max(highest, i)
		}
		if misordered {
			outOfOrderCoords++
		}
		missing += len(c.keys) - len(seen)
		// The last write is a store of the last sequence number: what the
		// coord must hold at the end.
		if ok, err := e.holdsLast(c); err != nil {
			return result{}, err
		} else if !ok {
			wrongFinal++
		}
	}
	return result{
		Name: "order",
		Figures: map[string]float64{
			"workers": orderWorkers, "tenants": float64(tenants), "coords_per_tenant": orderCoordsPerTen,
			"store_delete_store_per_coord": float64(triples), "sequences": float64(triples * len(coords)),
			"ack_wait_s": orderAckWait.Seconds(), "publish_rate_target_per_s": orderRate,
			"publish_s": pubTime.Seconds(), "drain_after_publish_s": drainTime.Seconds(),
			"writes_published":          float64(published),
			"writes_applied":            float64(e.applied()),
			"history_entries":           float64(entries),
			"coords_checked":            float64(len(coords)),
			"coords_out_of_order":       float64(outOfOrderCoords),
			"writes_out_of_order":       float64(outOfOrderWrites),
			"writes_missing":            float64(missing),
			"writes_applied_twice":      float64(twice),
			"writes_unexpected":         float64(unexpected),
			"coords_wrong_final_memory": float64(wrongFinal),
			"kills":                     float64(kills),
		},
		Target: "0 coords out of order (a redelivery applied again after a later write counts), 0 writes missing, with at least one worker killed",
		Pass:   kills > 0 && outOfOrderCoords == 0 && missing == 0 && unexpected == 0,
		Note:   "writes_out_of_order counts history entries applied after a later write to the same coord; writes_applied_twice counts redeliveries the memory API applied again (it reads no idempotency key)",
	}, nil
}

// publishOrdered publishes perCoord writes to every coord (store, delete,
// store, ...) with fast_ack, at most rate a second in all. A coord's next
// write is published only once the stream stored the previous one, so the
// stream holds each coord's writes in publish order; coords run in parallel.
// It records each write's idempotency key in c.keys and returns the count.
func (e *env) publishOrdered(ctx context.Context, coords []*orderCoord, perCoord, rate int) (int, error) {
	p, err := producer.New(e.nc, producer.Config{Mode: streams.ModeFastAck})
	if err != nil {
		return 0, err
	}
	defer p.Close(ctx)
	pubCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	tickets := pace(pubCtx, rate)

	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		n        int
	)
	for ci, c := range coords {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range perCoord {
				select {
				case <-tickets:
				case <-pubCtx.Done():
					return
				}
				key := fmt.Sprintf("%s/%s/%d", c.tenant, c.coord, j)
				if err := publishOne(pubCtx, p, c, j, key); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("coord %d write %d: %w", ci, j, err)
					}
					mu.Unlock()
					cancel()
					return
				}
				c.keys = append(c.keys, key)
				mu.Lock()
				n++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return n, firstErr
}

// publishOne publishes write j of a coord: a store, or a delete when j%3 is
// 1. A failed publish is retried with the same idempotency key, hence the
// same Nats-Msg-Id, so the stream stores it once.
func publishOne(ctx context.Context, p *producer.Producer, c *orderCoord, j int, key string) error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if j%3 == 1 {
			_, err = p.Delete(ctx, producer.DeleteRequest{Tenant: c.tenant, Coord: c.coord}, producer.WithIdempotencyKey(key))
		} else {
			_, err = p.Store(ctx, producer.StoreRequest{Tenant: c.tenant, Coord: c.coord, Payload: map[string]any{"seq": j}}, producer.WithIdempotencyKey(key))
		}
		if err == nil || ctx.Err() != nil {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
	return err
}

// holdsLast reports whether the coord holds the payload of its last write
// (a store).
func (e *env) holdsLast(c *orderCoord) (bool, error) {
	m, found, err := e.store.Get(c.tenant, c.coord)
	if err != nil || !found {
		return false, err
	}
	var payload struct {
		Seq *int `json:"seq"`
	}
	if err := json.Unmarshal(m.Payload, &payload); err != nil {
		return false, errors.Join(fmt.Errorf("payload of %s %s", c.tenant, c.coord), err)
	}
	return payload.Seq != nil && *payload.Seq == len(c.keys)-1, nil
}

// pace hands out rate tickets a second until ctx ends.
func pace(ctx context.Context, rate int) <-chan struct{} {
	tickets := make(chan struct{})
	go func() {
		interval := time.Second / time.Duration(rate)
		start := time.Now()
		for i := 0; ; i++ {
			if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
				time.Sleep(wait)
			}
			select {
			case tickets <- struct{}{}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return tickets
}
