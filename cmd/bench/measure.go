package main

import (
	"context"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Measurement is one load run: n calls spread over some callers, or one
// figure a phase measured as a whole (a drain, a consume).
type Measurement struct {
	Name        string  `json:"name"` // raw_sync, raw_async, raw_consume, http, sync, fast_ack, background, frontdoor_<mode>, e2e_<mode>, drain
	Concurrency int     `json:"concurrency"`
	N           int     `json:"n"`
	Seconds     float64 `json:"seconds"`
	PerSec      float64 `json:"per_sec"`
	P50us       float64 `json:"p50_us,omitempty"`
	P99us       float64 `json:"p99_us,omitempty"`
	P999us      float64 `json:"p999_us,omitempty"`
	MaxUs       float64 `json:"max_us,omitempty"`
	Curve       []Point `json:"curve,omitempty"` // latency at the percentiles of curvePercentiles
	Note        string  `json:"note,omitempty"`
}

// Point is one point of a percentile curve.
type Point struct {
	Percentile float64 `json:"p"`
	Us         float64 `json:"us"`
}

// curvePercentiles are where the charts sample a latency distribution:
// evenly up to the median, then ever closer to the tail.
var curvePercentiles = []float64{0, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 100}

// percentile returns the p-th percentile (0 to 100) of sorted durations,
// nearest rank.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	// The epsilon keeps 99.9/100*1000 (999.0000000000001) at rank 999.
	rank := int(math.Ceil(p/100*float64(len(sorted)) - 1e-9))
	return sorted[min(max(rank-1, 0), len(sorted)-1)]
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// newMeasurement sums up n calls that took elapsed in all, with their
// latencies (nil when the calls were not timed one by one).
func newMeasurement(name string, concurrency, n int, elapsed time.Duration, latencies []time.Duration) Measurement {
	m := Measurement{Name: name, Concurrency: concurrency, N: n, Seconds: elapsed.Seconds()}
	if elapsed > 0 {
		m.PerSec = float64(n) / elapsed.Seconds()
	}
	if len(latencies) == 0 {
		return m
	}
	sorted := slices.Clone(latencies)
	slices.Sort(sorted)
	m.P50us = us(percentile(sorted, 50))
	m.P99us = us(percentile(sorted, 99))
	m.P999us = us(percentile(sorted, 99.9))
	m.MaxUs = us(sorted[len(sorted)-1])
	for _, p := range curvePercentiles {
		m.Curve = append(m.Curve, Point{Percentile: p, Us: us(percentile(sorted, p))})
	}
	return m
}

// load makes n calls of op over concurrency callers, call i being op(ctx, i),
// and times each. The run ends when every call returned and finish (when
// not nil: a flush, waiting for async acks) returned. The first error stops
// it.
func load(ctx context.Context, label string, n, concurrency int, op func(ctx context.Context, i int) error, finish func(ctx context.Context) error) (elapsed time.Duration, latencies []time.Duration, err error) {
	bar := newProgress(label, n)
	defer bar.done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	latencies = make([]time.Duration, n)
	var next atomic.Int64
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for range concurrency {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				t := time.Now()
				if e := op(ctx, i); e != nil {
					once.Do(func() { err = e; cancel() })
					return
				}
				latencies[i] = time.Since(t)
				bar.add(1)
			}
		})
	}
	wg.Wait()
	if err == nil && finish != nil {
		err = finish(ctx)
	}
	return time.Since(start), latencies, err
}
