package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
		m("drain", 1, 300, 0),
	}, WorkerCPUus: map[string]float64{}, WorkerPeakMB: map[string]float64{}}
	r.Watermill = &WatermillReport{}
	r.Watermill.Drain.PerSec = 100
	verdicts := map[string]string{}
	for _, row := range r.rows() {
		if row.Verdict != "" {
			verdicts[row.Figure+" / "+row.Baseline] = row.Verdict
		}
	}
	want := map[string]string{
		"background c=1 / raw async publish c=1":                                            "PASS", // 0.95x
		"fast_ack c=64 / raw async publish c=1":                                             "FAIL", // 0.7x
		"fast_ack c=1 p50 / raw sync publish c=1":                                           "FAIL", // 1.3x
		"sync c=1 p50 / direct HTTP c=1":                                                    "PASS", // +0.5 ms
		"sync c=1 p99 / direct HTTP c=1":                                                    "PASS", // +1 ms
		"100 writes, 1000 tenants, from worker start / lower of raw consume, HTTP capacity": "PASS", // 300 vs 500
		"100 writes, 1000 tenants, from worker start / Watermill drain":                     "PASS", // 3x
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

func TestParseWatermill(t *testing.T) {
	out := []byte("some log line\n" + `{"drain":{"n":10,"per_sec":1234.5,"seconds":0.0081},"cpu_seconds":0.5,"peak_rss_bytes":1048576}` + "\n")
	r, err := parseWatermill(out)
	if err != nil {
		t.Fatal(err)
	}
	if r.Drain.PerSec != 1234.5 || r.Drain.N != 10 || r.Publish != nil {
		t.Errorf("parsed %+v", r)
	}
	if _, err := parseWatermill([]byte(`{"publish":{"per_sec":1}}`)); err == nil {
		t.Error("a report without a drain was accepted")
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
