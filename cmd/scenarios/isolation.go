package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jetbox-dev/jetbox/streams"
)

// Settings shared by the isolation and fairness runs: every run of both
// starts the same workers and sends the same total rate.
const (
	steadyWorkers = 2
	steadyRate    = 500 // writes/s, all tenants together
	workerWarmUp  = 2 * time.Second
	drainTimeout  = 30 * time.Second // how long a run waits, after publishing, for its writes
)

// steadyWindow is how long a run publishes: 40 s at -scale 1, at least 10 s.
func (r *runner) steadyWindow() time.Duration {
	return time.Duration(max(10, r.n(40))) * time.Second
}

// runSteady is one measured run on a fresh env: preload (when set) stores a
// backlog, the workers start, steady traffic is published with write i going
// to tenantOf(i), and the run waits for the writes of the tenants measured
// accepts (at most drainTimeout). inspect then reads the env before it is
// closed, with the time the wait ended.
func (r *runner) runSteady(ctx context.Context, o envOptions, preload func(e *env) error, tenantOf func(i int) string,
	measured func(tenant string) bool, inspect func(e *env, tr *traffic, end time.Time) error) error {
	e, err := r.newEnvWith(ctx, o)
	if err != nil {
		return err
	}
	defer e.close()
	if preload != nil {
		if err := preload(e); err != nil {
			return err
		}
	}
	for range steadyWorkers {
		if _, err := e.startWorker(); err != nil {
			return err
		}
	}
	time.Sleep(workerWarmUp)
	tr, err := e.steady(ctx, steadyRate, r.steadyWindow(), tenantOf)
	if err != nil {
		return err
	}
	want := 0
	for _, w := range tr.writes {
		if measured(w.tenant) {
			want++
		}
	}
	end := e.waitFor(ctx, uint64(want), measured, drainTimeout)
	return inspect(e, tr, end)
}

// isolationScenario: a tenant whose memory API fails every request, with a
// large backlog, leaves the other tenants' throughput and p99 delivery
// latency within 10% of a run without it.
func isolationScenario(ctx context.Context, r *runner) (result, error) {
	const failing = "T0"
	tenants, backlog := r.n(1000), r.n(100000)
	healthyTenant := func(i int) string { return fmt.Sprintf("tenant-%04d", i%tenants) }
	healthy := func(t string) bool { return t != failing }

	var baseTr, withTr *traffic
	var baseD, withD delivered
	err := r.runSteady(ctx, envOptions{apiDelay: time.Millisecond}, nil, healthyTenant, healthy,
		func(e *env, tr *traffic, end time.Time) error {
			baseTr, baseD = tr, e.deliveries(tr, healthy, end)
			baseD.byWindow("isolation baseline, healthy", r.windows)
			return nil
		})
	if err != nil {
		return result{}, fmt.Errorf("baseline: %w", err)
	}

	var refused atomic.Int64
	fail := func(t string) bool {
		if t == failing {
			refused.Add(1)
			return true
		}
		return false
	}
	// movedAside is how long after the workers start T0's backlog has left
	// the outbox (parked aside), 0 if it never did during the run; movedAt
	// is when (unix nanoseconds).
	var movedAside, movedAt atomic.Int64
	preload := func(e *env) error {
		if err := e.preload(ctx, backlog, func(int) string { return failing }); err != nil {
			return err
		}
		outboxFilter, _, err := tenantFilters(failing)
		if err != nil {
			return err
		}
		started := time.Now() // the workers start right after the preload
		go func() {
			for ctx.Err() == nil {
				if n, err := e.countSubjects(ctx, e.streams.Stream, outboxFilter); err == nil && n == 0 {
					movedAside.Store(int64(time.Since(started)))
					movedAt.Store(time.Now().UnixNano())
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		}()
		return nil
	}
	var left, dead, parked, failingApplied uint64
	var steadyD delivered // healthy writes published after T0's backlog was moved aside
	err = r.runSteady(ctx, envOptions{apiDelay: time.Millisecond, fail: fail}, preload, healthyTenant, healthy,
		func(e *env, tr *traffic, end time.Time) error {
			withTr, withD = tr, e.deliveries(tr, healthy, end)
			withD.byWindow("isolation with T0, healthy", r.windows)
			if at := movedAt.Load(); at != 0 {
				steadyD = e.deliveriesSince(tr, healthy, end, time.Unix(0, at))
			}
			outboxFilter, dlqFilter, err := tenantFilters(failing)
			if err != nil {
				return err
			}
			if left, err = e.countSubjects(ctx, e.streams.Stream, outboxFilter); err != nil {
				return err
			}
			if dead, err = e.countSubjects(ctx, e.streams.DLQStream, dlqFilter); err != nil {
				return err
			}
			if parked, err = e.countSubjects(ctx, e.streams.ParkingStream, streams.ParkedSubjectPrefix+".>"); err != nil {
				return err
			}
			failingApplied = e.store.TenantStats(failing).Applied
			return nil
		})
	if err != nil {
		return result{}, fmt.Errorf("with %s: %w", failing, err)
	}

	if baseD.writes == 0 || withD.writes == 0 {
		return result{}, fmt.Errorf("no healthy writes to measure (%d tenants): raise -scale", tenants)
	}
	baseRate, withRate := baseD.perSecond(baseTr), withD.perSecond(withTr)
	baseP99, withP99 := percentile(baseD.latencies, 0.99), percentile(withD.latencies, 0.99)
	steadyP99 := percentile(steadyD.latencies, 0.99)
	res := result{
		Name: "isolation",
		Figures: map[string]float64{
			"healthy_tenants": float64(tenants), "rate_writes_per_s": steadyRate, "window_s": withTr.end.Sub(withTr.start).Seconds(),
			"workers":                         steadyWorkers,
			"healthy_writes_baseline":         float64(baseD.writes),
			"healthy_writes_with_T0":          float64(withD.writes),
			"healthy_writes_per_s_baseline":   baseRate,
			"healthy_writes_per_s_with_T0":    withRate,
			"healthy_p50_ms_baseline":         ms(percentile(baseD.latencies, 0.5)),
			"healthy_p50_ms_with_T0":          ms(percentile(withD.latencies, 0.5)),
			"healthy_p99_ms_baseline":         ms(baseP99),
			"healthy_p99_ms_with_T0":          ms(withP99),
			"healthy_p99_ms_with_T0_parked":   ms(steadyP99),
			"healthy_writes_with_T0_parked":   float64(steadyD.writes),
			"healthy_unapplied_baseline":      float64(baseD.unapplied),
			"healthy_unapplied_with_T0":       float64(withD.unapplied),
			"healthy_publish_failures":        float64(baseTr.failed + withTr.failed),
			"T0_backlog":                      float64(backlog),
			"T0_writes_applied":               float64(failingApplied),
			"T0_requests_refused_503":         float64(refused.Load()),
			"T0_dead_lettered":                float64(dead),
			"T0_writes_left_in_outbox_at_end": float64(left),
			"T0_writes_parked_at_end":         float64(parked),
			"T0_backlog_moved_aside_s":        time.Duration(movedAside.Load()).Seconds(),
		},
		Target: "healthy throughput >= 90% of the baseline over the whole run, and healthy p99 <= 110% of the baseline once T0's backlog is parked",
		Pass:   withRate >= 0.9*baseRate && steadyD.writes > 0 && steadyP99 <= baseP99*11/10,
		Note: "a write not applied by the end of the drain counts in the p99 with its age then (a lower bound); " +
			"healthy_p99_ms_with_T0 covers the whole window, including the seconds when T0's backlog is moved aside (T0_backlog_moved_aside_s after the workers start), " +
			"healthy_p99_ms_with_T0_parked the writes published after it",
	}
	setRatio(res.Figures, "ratio_writes_per_s", withRate, baseRate)
	setRatio(res.Figures, "ratio_p99", ms(withP99), ms(baseP99))
	setRatio(res.Figures, "ratio_p99_parked", ms(steadyP99), ms(baseP99))
	return res, nil
}

// setRatio adds the figure a/b, unless b is 0 (JSON has no infinity).
func setRatio(figures map[string]float64, name string, a, b float64) {
	if b != 0 {
		figures[name] = a / b
	}
}

// fairnessScenario: one tenant sending half of all writes at the same total
// rate keeps the other tenants' p99 delivery latency under 2x the p99 with
// uniform traffic.
func fairnessScenario(ctx context.Context, r *runner) (result, error) {
	tenants := r.n(1000)
	const flooder = "tenant-0000"
	others := func(t string) bool { return t != flooder }
	all := func(string) bool { return true }
	uniform := func(i int) string { return fmt.Sprintf("tenant-%04d", i%tenants) }
	flood := func(i int) string {
		if i%2 == 0 || tenants == 1 {
			return flooder
		}
		return fmt.Sprintf("tenant-%04d", 1+(i/2)%(tenants-1))
	}
	measure := func(label string, tenantOf func(int) string) (tr *traffic, other, flooded delivered, err error) {
		err = r.runSteady(ctx, envOptions{apiDelay: time.Millisecond}, nil, tenantOf, all,
			func(e *env, t *traffic, end time.Time) error {
				tr, other = t, e.deliveries(t, others, end)
				flooded = e.deliveries(t, func(tenant string) bool { return tenant == flooder }, end)
				other.byWindow("fairness "+label+", others", r.windows)
				return nil
			})
		return tr, other, flooded, err
	}
	uniTr, uniOthers, _, err := measure("uniform", uniform)
	if err != nil {
		return result{}, fmt.Errorf("uniform: %w", err)
	}
	floodTr, floodOthers, floodOne, err := measure("flood", flood)
	if err != nil {
		return result{}, fmt.Errorf("flood: %w", err)
	}
	if uniOthers.writes == 0 || floodOthers.writes == 0 {
		return result{}, fmt.Errorf("no writes of the other tenants to measure (%d tenants): raise -scale", tenants)
	}
	uniP99, floodP99 := percentile(uniOthers.latencies, 0.99), percentile(floodOthers.latencies, 0.99)
	res := result{
		Name: "fairness",
		Figures: map[string]float64{
			"tenants": float64(tenants), "rate_writes_per_s": steadyRate, "window_s": floodTr.end.Sub(floodTr.start).Seconds(),
			"workers":                     steadyWorkers,
			"flooder_share_of_writes":     float64(floodOne.writes) / float64(len(floodTr.writes)),
			"others_writes_uniform":       float64(uniOthers.writes),
			"others_writes_flood":         float64(floodOthers.writes),
			"others_writes_per_s_uniform": uniOthers.perSecond(uniTr),
			"others_writes_per_s_flood":   floodOthers.perSecond(floodTr),
			"others_p50_ms_uniform":       ms(percentile(uniOthers.latencies, 0.5)),
			"others_p50_ms_flood":         ms(percentile(floodOthers.latencies, 0.5)),
			"others_p99_ms_uniform":       ms(uniP99),
			"others_p99_ms_flood":         ms(floodP99),
			"flooder_p99_ms":              ms(percentile(floodOne.latencies, 0.99)),
			"others_unapplied_uniform":    float64(uniOthers.unapplied),
			"others_unapplied_flood":      float64(floodOthers.unapplied),
			"publish_failures":            float64(uniTr.failed + floodTr.failed),
		},
		Target: "others' p99 with one tenant sending half the writes < 2x their p99 with uniform traffic",
		Pass:   floodP99 < 2*uniP99,
		Note:   "a write not applied by the end of the drain counts in the p99 with its age then (a lower bound)",
	}
	setRatio(res.Figures, "ratio_p99", ms(floodP99), ms(uniP99))
	return res, nil
}
