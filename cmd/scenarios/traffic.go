package main

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/jetbox-dev/jetbox/producer"
	"github.com/jetbox-dev/jetbox/streams"
	"github.com/jetbox-dev/jetbox/tenancy"
)

// sent is one write of a steady run: its own coord, so the memory API's
// history of that coord says when it was applied.
type sent struct {
	tenant, coord, key string
	at                 time.Time // when the producer was handed the write
}

// traffic is what a steady run published.
type traffic struct {
	writes     []sent
	start, end time.Time // the publishing window
	failed     int64     // background writes the producer finally gave up
}

// steady publishes background writes at rate per second for d, write i to
// tenantOf(i). Each write is timed when it is handed to the producer.
func (e *env) steady(ctx context.Context, rate int, d time.Duration, tenantOf func(i int) string) (*traffic, error) {
	var failed atomic.Int64
	p, err := producer.New(e.nc, producer.Config{
		Mode:              streams.ModeBackground,
		OnBackgroundError: func(producer.BackgroundFailure) { failed.Add(1) },
	})
	if err != nil {
		return nil, err
	}
	total := int(int64(rate) * int64(d) / int64(time.Second))
	tr := &traffic{writes: make([]sent, 0, total)}
	interval := time.Second / time.Duration(rate)
	tr.start = time.Now()
	for i := 0; i < total; i++ {
		if wait := time.Until(tr.start.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		w := sent{tenant: tenantOf(i), coord: fmt.Sprintf("%d,2,3", i), key: fmt.Sprintf("s-%d", i), at: time.Now()}
		if _, err := p.Store(ctx, producer.StoreRequest{Tenant: w.tenant, Coord: w.coord, Payload: map[string]any{"i": i, "text": "scenario payload"}},
			producer.WithIdempotencyKey(w.key)); err != nil {
			_ = p.Close(ctx)
			return nil, fmt.Errorf("steady write %d: %w", i, err)
		}
		tr.writes = append(tr.writes, w)
	}
	tr.end = time.Now()
	if err := p.Close(ctx); err != nil {
		return nil, fmt.Errorf("flush steady writes: %w", err)
	}
	tr.failed = failed.Load()
	return tr, nil
}

// appliedFor is the number of writes applied to the tenants include accepts.
func (e *env) appliedFor(include func(tenant string) bool) uint64 {
	var n uint64
	for t, s := range e.store.Stats().Tenants {
		if include(t) {
			n += s.Applied
		}
	}
	return n
}

// waitFor waits until want writes of the tenants include accepts are
// applied, or for at most timeout; it returns when it stopped waiting.
func (e *env) waitFor(ctx context.Context, want uint64, include func(tenant string) bool, timeout time.Duration) time.Time {
	deadline := time.Now().Add(timeout)
	for e.appliedFor(include) < want && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(200 * time.Millisecond)
	}
	return time.Now()
}

// delivered is what became of a steady run's writes to some tenants.
type delivered struct {
	writes    int
	latencies []time.Duration // publish to applied; for a write not applied, its age at the end (a lower bound)
	sentAfter []time.Duration // for each latency, when its write was published, after the window's start
	inWindow  int             // applied within the publishing window
	unapplied int             // not applied by the end
}

// deliveries looks up in the memory API's history when each write of the
// tenants include accepts was applied (HistoryEntry.At, in this process's
// clock, like sent.at).
func (e *env) deliveries(tr *traffic, include func(tenant string) bool, end time.Time) delivered {
	return e.deliveriesSince(tr, include, end, time.Time{})
}

// deliveriesSince is deliveries of the writes published at or after from.
func (e *env) deliveriesSince(tr *traffic, include func(tenant string) bool, end, from time.Time) delivered {
	var d delivered
	for _, w := range tr.writes {
		if !include(w.tenant) || w.at.Before(from) {
			continue
		}
		d.writes++
		var appliedAt time.Time
		for _, h := range e.store.History(w.tenant, w.coord) {
			if h.IdempotencyKey == w.key {
				appliedAt = h.At
				break
			}
		}
		d.sentAfter = append(d.sentAfter, w.at.Sub(tr.start))
		if appliedAt.IsZero() {
			d.unapplied++
			d.latencies = append(d.latencies, end.Sub(w.at))
			continue
		}
		d.latencies = append(d.latencies, appliedAt.Sub(w.at))
		if !appliedAt.Before(tr.start) && !appliedAt.After(tr.end) {
			d.inWindow++
		}
	}
	return d
}

// perSecond is the rate of the writes applied within the window.
func (d delivered) perSecond(tr *traffic) float64 {
	return float64(d.inWindow) / tr.end.Sub(tr.start).Seconds()
}

// countSubjects counts a stream's messages on subjects matching filter.
func (e *env) countSubjects(ctx context.Context, stream, filter string) (uint64, error) {
	s, err := e.js.Stream(ctx, stream)
	if err != nil {
		return 0, err
	}
	return streams.CountStored(ctx, s, filter)
}

// tenantFilters are the subject filters of a tenant's writes in the outbox
// and in the dead-letter stream.
func tenantFilters(tenant string) (outbox, dlq string, err error) {
	token, err := tenancy.Encode(tenant)
	if err != nil {
		return "", "", err
	}
	return streams.StoredTenantFilter(token), streams.DLQSubjectPrefix + "." + token + ".>", nil
}

// byWindow prints the latencies of d by when their writes were published,
// in windows of the given width, to stderr: where in a run a tail comes
// from (-windows).
func (d delivered) byWindow(label string, width time.Duration) {
	if width <= 0 {
		return
	}
	var windows [][]time.Duration
	for i, at := range d.sentAfter {
		n := int(max(0, at) / width)
		for len(windows) <= n {
			windows = append(windows, nil)
		}
		windows[n] = append(windows[n], d.latencies[i])
	}
	for n, l := range windows {
		if len(l) == 0 {
			continue
		}
		fmt.Fprintf(os.Stderr, "%-28s %6.0fs %6d writes  p50 %7.2f  p99 %7.2f  max %8.2f ms\n", label, (time.Duration(n) * width).Seconds(),
			len(l), ms(percentile(l, 0.5)), ms(percentile(l, 0.99)), ms(percentile(l, 1)))
	}
}
