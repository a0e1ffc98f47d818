package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jetbox-dev/jetbox/producer"
	"github.com/jetbox-dev/jetbox/streams"
)

func TestPercentileNearestRank(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 1000; i++ {
		d = append(d, time.Duration(i)*time.Microsecond)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{0, 1 * time.Microsecond}, {50, 500 * time.Microsecond}, {99, 990 * time.Microsecond}, {99.9, 999 * time.Microsecond}, {100, 1000 * time.Microsecond}} {
		if got := percentile(d, c.p); got != c.want {
			t.Errorf("p%g = %v, want %v", c.p, got, c.want)
		}
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("p50 of nothing = %v, want 0", got)
	}
}

func TestTargets(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	for _, c := range []struct {
		t     target
		value float64
		base  *float64
		want  string
	}{
		{target{ratioAtLeast, 0.9}, 90, f(100), "PASS"},
		{target{ratioAtLeast, 0.9}, 89, f(100), "FAIL"},
		{target{ratioAtMost, 1.2}, 1.2, f(1), "PASS"},
		{target{ratioAtMost, 1.2}, 1.3, f(1), "FAIL"},
		{target{aboveByAtMost, 1}, 2.9, f(2), "PASS"},
		{target{aboveByAtMost, 1}, 3.1, f(2), "FAIL"},
		{target{ratioAtLeast, 2}, 10, nil, "n/a"},
		{target{atMost, 40}, 39.9, nil, "PASS"},
		{target{atMost, 40}, 40.1, f(100), "FAIL"},
		{target{}, 10, f(1), ""},
	} {
		if got := c.t.judge(c.value, c.base); got != c.want {
			t.Errorf("%v judges %g against %v: %q, want %q", c.t, c.value, c.base, got, c.want)
		}
	}
}

func TestRowsJudgeTheTargets(t *testing.T) {
	m := func(name string, c int, perSec, p50us float64) Measurement {
		return Measurement{Name: name, Concurrency: c, N: 100, Seconds: 100 / perSec, PerSec: perSec, P50us: p50us, P99us: 2 * p50us, P999us: 3 * p50us}
	}
	r := &Results{Workers: 1, Measurements: []Measurement{
		m("raw_async", 1, 1000, 10), m("raw_sync", 1, 100, 100), m("http", 1, 50, 2000), m("http", 64, 500, 5000),
		m("raw_consume", 1, 10000, 0),
		m("background", 1, 950, 1), m("fast_ack", 64, 700, 200), m("fast_ack", 1, 90, 130), m("sync", 1, 40, 2500),
		m("drain", 1, 300, 0), m("drain_from_ready", 1, 400, 0),
		m("drain_pull_ack", 24, 1000, 0), m("drain_post", 64, 1000, 0),
	}, Partitions: 24, WorkerCPUus: map[string]float64{"drain": 40}, WorkerPeakMB: map[string]float64{"drain": 45}}
	r.Watermill = &WatermillReport{Drain: watermillDrain{N: 100, AppliedAtReady: 20, FromReadyPerSec: 300, CPUSeconds: 0.008}}
	verdicts := map[string]string{}
	for _, row := range r.rows() {
		if row.Verdict != "" {
			verdicts[row.Figure+" / "+row.Baseline] = row.Verdict
		}
	}
	want := map[string]string{
		"background c=1 / raw async publish c=1":                                                         "PASS", // 0.95x
		"fast_ack c=64 / raw async publish c=1":                                                          "FAIL", // 0.7x
		"fast_ack c=1 p50 / raw sync publish c=1":                                                        "FAIL", // 1.3x
		"sync c=1 p50 / direct HTTP c=1":                                                                 "PASS", // +0.5 ms
		"sync c=1 p99 / direct HTTP c=1":                                                                 "PASS", // +1 ms
		"jetbox, from /readyz / Watermill drain only, from router running":                               "PASS", // 1.33x
		"jetbox, from /readyz / drain ceiling 1/(1/pull+1/POST)":                                         "PASS", // 400 of 500: 0.8x
		"worker CPU per applied write, from /readyz / Watermill drain-only process, from router running": "PASS", // 40 of 100 us
		"worker peak RSS (VmHWM) / Watermill drain-only process":                                         "FAIL", // 45 MB
	}
	for k, v := range want {
		if verdicts[k] != v {
			t.Errorf("%s: verdict %q, want %q", k, verdicts[k], v)
		}
	}
	var out bytes.Buffer
	printTable(&out, r.rows())
	if !strings.Contains(out.String(), "0.95x") {
		t.Errorf("table lacks the background ratio:\n%s", out.String())
	}
}

func TestDrainCeilingAddsTimesPerWrite(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	if got := drainCeiling(f(100000), f(25000)); got == nil || *got != 20000 {
		t.Errorf("ceiling of 100,000/s pull and 25,000/s POST: %v, want 20,000/s", got)
	}
	if got := drainCeiling(nil, f(25000)); got != nil {
		t.Errorf("ceiling without the pull: %v, want none", *got)
	}
}

func TestParseWatermill(t *testing.T) {
	// What bench/watermill -phase drain-only prints, settings cut short.
	out := []byte("some log line\n" + `{"drain":{"n":10,"seconds":0.0081,"per_sec":1234.5,"e2e_p50_ms":900,"e2e_p99_ms":950,"errors":0,"repeats":0,` +
		`"ready_seconds":0.004,"applied_at_ready":2,"from_ready_seconds":0.004,"from_ready_per_sec":2000,"cpu_seconds":0.0004,"peak_rss_bytes":20971520},` +
		`"cpu_seconds":0.5,"peak_rss_bytes":20971520,"settings":{"phase":"drain-only"}}` + "\n")
	r, err := parseWatermill(out)
	if err != nil {
		t.Fatal(err)
	}
	if r.Drain == nil || r.Drain.PerSec != 1234.5 || r.Drain.N != 10 || r.Publish != nil {
		t.Fatalf("parsed %+v", r)
	}
	if d := r.Drain; d.FromReadyPerSec != 2000 || d.AppliedAtReady != 2 || d.PeakRSSBytes != 20<<20 || d.cpuPerWrite() != 50 {
		t.Errorf("drain-only figures %+v, CPU per write %g us", d, d.cpuPerWrite())
	}
	pub, err := parseWatermill([]byte(`{"publish":{"n":10,"per_sec":1}}`))
	if err != nil || pub.Publish == nil || pub.Publish.PerSec != 1 || pub.Drain != nil {
		t.Errorf("publish report: %+v, %v", pub, err)
	}
	if _, err := parseWatermill([]byte(`{"cpu_seconds":1}`)); err == nil {
		t.Error("a report with neither publish nor drain was accepted")
	}
}

// tinyDrainBench is a bench of one tiny run and a fresh pipeline with the
// outbox provisioned in 4 partitions per mode, closed at the end of t.
func tinyDrainBench(ctx context.Context, t *testing.T) (*bench, *env) {
	t.Helper()
	progressOut = io.Discard
	b := &bench{opts: options{size: 512}, scale: 1, work: t.TempDir(), res: &Results{Partitions: 4}}
	e, err := newEnv(ctx, filepath.Join(b.work, "env"), envSpec{provision: true, partitions: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.close)
	return b, e
}

// TestDrainCeilingTinyRun measures the drain's ceiling on a tiny backlog:
// pulled and acked through the outbox's partition consumers, which are left
// unpinned and empty for the workers of the drain, and POSTed to the
// memory API.
func TestDrainCeilingTinyRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b, e := tinyDrainBench(ctx, t)
	if err := b.drainCeiling(ctx, e, 300); err != nil {
		t.Fatal(err)
	}
	f := figures(b.res.Measurements)
	for _, m := range []*Measurement{f.get("drain_pull_ack", 4), f.get("drain_post", drainCallers)} {
		if m == nil || m.N != 300 || m.PerSec <= 0 {
			t.Errorf("ceiling measurement %+v", m)
		}
	}
	if n := e.applied.count(); n != 300 {
		t.Errorf("%d POSTs applied, want 300", n)
	}
	s, err := e.js.Stream(ctx, streams.DefaultConfig().Stream)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := s.Info(ctx); err != nil || info.State.Msgs != 0 {
		t.Errorf("outbox after the pull: %+v, %v", info, err)
	}
	// A later client of the same consumer, as the worker will be, gets what
	// is stored next: no pin is left.
	m, _, err := b.producerRun(ctx, e, "after", streams.ModeBackground, 50, 1, 10, nil)
	if err != nil || m.N != 50 {
		t.Fatal(m, err)
	}
	if _, err := e.pullAndAck(ctx, streams.ModeBackground, 50); err != nil {
		t.Errorf("pull after the ceiling: %v", err)
	}
}

// TestTinyRun runs the phases that need no worker process at a tiny scale
// against a real embedded nats-server and memory API, and checks that the
// table, results.json and charts.html come out with figures in them.
func TestTinyRun(t *testing.T) {
	progressOut = io.Discard
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := run(ctx, options{scale: 0.002, size: 512, workers: 1, only: []string{"raw", "http", "fast_ack", "background"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Skipped) > 0 {
		t.Fatalf("phases failed: %v", res.Skipped)
	}
	want := map[string]int{"raw_sync": 200, "raw_async": 200, "raw_consume": 200, "http": 20, "fast_ack": 200, "background": 200}
	for name, n := range want {
		m := figures(res.Measurements).get(name, 1)
		if m == nil || m.PerSec <= 0 || m.N != n {
			t.Errorf("%s: %+v", name, m)
		}
	}
	if len(res.Table) == 0 {
		t.Fatal("empty table")
	}
	dir := t.TempDir()
	if err := writeResults(dir, res); err != nil {
		t.Fatal(err)
	}
	charts, err := os.ReadFile(filepath.Join(dir, "charts.html"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(charts), "<polyline"); n < 10 {
		t.Errorf("charts.html has %d lines drawn", n)
	}
	if _, err := os.Stat(filepath.Join(dir, "results.json")); err != nil {
		t.Error(err)
	}
}

// TestBareDrainTinyRun applies a tiny backlog with bench/bare, built and
// run as the bench runs it: every write reaches the memory API, its
// figures are read, and the partition consumers are left empty and
// unpinned for the worker that drains next.
func TestBareDrainTinyRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	b, e := tinyDrainBench(ctx, t)
	if err := b.bareDrain(ctx, e, 300); err != nil {
		t.Fatal(err)
	}
	if d := b.res.Bare; d == nil || d.N != 300 || d.FromReadyPerSec <= 0 || d.CPUSeconds <= 0 || d.PeakRSSBytes <= 0 {
		t.Errorf("bare drain figures %+v", d)
	}
	s, err := e.js.Stream(ctx, streams.DefaultConfig().Stream)
	if err != nil {
		t.Fatal(err)
	}
	// bare acks a write only once the memory API answered 2xx.
	if info, err := s.Info(ctx); err != nil || info.State.Msgs != 0 {
		t.Errorf("outbox after the bare drain: %+v, %v", info, err)
	}
	if _, _, err := b.producerRun(ctx, e, "after", streams.ModeBackground, 50, 1, 10, nil); err != nil {
		t.Fatal(err)
	}
	pullCtx, cancelPull := context.WithTimeout(ctx, 5*time.Second) // well inside the pin's time-out
	defer cancelPull()
	if _, err := e.pullAndAck(pullCtx, streams.ModeBackground, 50); err != nil {
		t.Errorf("pull after the bare drain: %v", err)
	}
}

// TestBareSyncTinyRun measures sync writes with bench/bare as the worker:
// each call comes back applied (a call without its outcome would fail the
// run), bare is stopped, and the sync partition consumers are left empty
// and unpinned for the workers that follow.
func TestBareSyncTinyRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	b, e := tinyDrainBench(ctx, t)
	b.scale = 0.01
	if err := b.bareSync(ctx, e); err != nil {
		t.Fatal(err)
	}
	m := figures(b.res.Measurements).get("bare_sync", 1)
	if m == nil || m.N != 50 || m.P50us <= 0 {
		t.Fatalf("bare sync measurement %+v", m)
	}
	if n := e.applied.count(); n < 50 {
		t.Errorf("%d writes applied, want the 50 measured and the warm-up", n)
	}
	s, err := e.js.Stream(ctx, streams.DefaultConfig().Stream)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := s.Info(ctx); err != nil || info.State.Msgs != 0 {
		t.Errorf("outbox after the bare sync run: %+v, %v", info, err)
	}
	// Sync writes with nobody to apply them: stored, and queued.
	p, err := producer.New(e.nc, producer.Config{Mode: streams.ModeSync, SyncTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.WithoutCancel(ctx))
	for i := range 20 {
		_, err := p.Store(ctx, producer.StoreRequest{Tenant: "after", Coord: fmt.Sprintf("%d,0,0", i), Payload: map[string]any{"i": i}})
		if qe := (*producer.QueuedError)(nil); !errors.As(err, &qe) {
			t.Fatalf("sync write with bare stopped: %v, want it queued", err)
		}
	}
	start := time.Now()
	if _, err := e.pullAndAck(ctx, streams.ModeSync, 20); err != nil {
		t.Errorf("pull after the bare sync run: %v", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("pull after the bare sync run took %v: bare's pins were left to time out", took.Round(time.Millisecond))
	}
}
