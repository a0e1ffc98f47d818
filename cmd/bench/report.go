package main

import (
	"fmt"
	"io"
	"math"
	"text/tabwriter"
)

// Row is one line of the table: a jetbox figure, its baseline, their ratio
// and, where the issue sets one, the target and the verdict.
type Row struct {
	Section  string   `json:"section"`
	Figure   string   `json:"figure"`
	Unit     string   `json:"unit"`
	Value    float64  `json:"value"`
	Baseline string   `json:"baseline,omitempty"`
	Base     *float64 `json:"baseline_value,omitempty"`
	Ratio    *float64 `json:"ratio,omitempty"` // value / baseline
	Target   string   `json:"target,omitempty"`
	Verdict  string   `json:"verdict,omitempty"` // PASS, FAIL, or n/a when the baseline is missing
}

// target is a goal for a figure against its baseline.
type target struct {
	kind  targetKind
	limit float64
}

type targetKind int

const (
	noTarget targetKind = iota
	ratioAtLeast
	ratioAtMost
	aboveByAtMost // value - baseline <= limit (same unit)
	atMost        // value <= limit, whatever the baseline
)

func (t target) String() string {
	switch t.kind {
	case ratioAtLeast:
		return fmt.Sprintf(">= %gx", t.limit)
	case ratioAtMost:
		return fmt.Sprintf("<= %gx", t.limit)
	case aboveByAtMost:
		return fmt.Sprintf("<= base + %g", t.limit)
	case atMost:
		return fmt.Sprintf("<= %g", t.limit)
	}
	return ""
}

// judge returns PASS or FAIL, n/a when the baseline is missing, and ""
// without a target.
func (t target) judge(value float64, base *float64) string {
	switch t.kind {
	case noTarget:
		return ""
	case atMost:
		if value <= t.limit {
			return "PASS"
		}
		return "FAIL"
	}
	if base == nil || *base <= 0 || math.IsNaN(*base) {
		return "n/a"
	}
	var ok bool
	switch t.kind {
	case ratioAtLeast:
		ok = value/(*base) >= t.limit
	case ratioAtMost:
		ok = value/(*base) <= t.limit
	case aboveByAtMost:
		ok = value-*base <= t.limit
	}
	if ok {
		return "PASS"
	}
	return "FAIL"
}

// newRow compares value with base (nil when the baseline was not measured).
func newRow(section, fig, unit string, value float64, baseline string, base *float64, t target) Row {
	r := Row{Section: section, Figure: fig, Unit: unit, Value: value, Baseline: baseline, Base: base, Target: t.String(), Verdict: t.judge(value, base)}
	if base != nil && *base > 0 {
		ratio := value / *base
		r.Ratio = &ratio
	}
	switch t.kind {
	case aboveByAtMost:
		r.Target = fmt.Sprintf("<= base + %g %s", t.limit, unit)
	case atMost:
		r.Target = fmt.Sprintf("<= %g %s", t.limit, unit)
	}
	return r
}

// figures looks measurements up by name and concurrency.
type figures []Measurement

func (f figures) get(name string, c int) *Measurement {
	for i := range f {
		if f[i].Name == name && f[i].Concurrency == c {
			return &f[i]
		}
	}
	return nil
}

func perSec(m *Measurement) float64 { return m.PerSec }
func p50ms(m *Measurement) float64  { return m.P50us / 1000 }
func p99ms(m *Measurement) float64  { return m.P99us / 1000 }
func p999ms(m *Measurement) float64 { return m.P999us / 1000 }

// pick is a figure of a measurement, nil when it was not made.
func pick(m *Measurement, f func(*Measurement) float64) *float64 {
	if m == nil {
		return nil
	}
	v := f(m)
	return &v
}

func lower(a, b *float64) *float64 {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	}
	v := min(*a, *b)
	return &v
}

func sum(a, b *float64) *float64 {
	if a == nil || b == nil {
		return nil
	}
	v := *a + *b
	return &v
}

// rows builds the table from what was measured; a figure not measured has
// no row, a baseline not measured leaves its verdict n/a.
func (r *Results) rows() []Row {
	f := figures(r.Measurements)
	last := sweep[len(sweep)-1]
	var rows []Row
	add := func(section, fig, unit string, m *Measurement, get func(*Measurement) float64, baseline string, base *float64, t target) {
		if m != nil {
			rows = append(rows, newRow(section, fig, unit, get(m), baseline, base, t))
		}
	}
	rawAsync := pick(f.get("raw_async", 1), perSec)

	const thr = "producer throughput"
	add(thr, "background c=1", "writes/s", f.get("background", 1), perSec, "raw async publish c=1", rawAsync, target{ratioAtLeast, 0.9})
	add(thr, fmt.Sprintf("background c=%d", last), "writes/s", f.get("background", last), perSec, "raw async publish c=1", rawAsync, target{ratioAtLeast, 0.9})
	add(thr, "fast_ack c=1", "writes/s", f.get("fast_ack", 1), perSec, "raw sync publish c=1", pick(f.get("raw_sync", 1), perSec), target{})
	add(thr, fmt.Sprintf("fast_ack c=%d", last), "writes/s", f.get("fast_ack", last), perSec, "raw async publish c=1", rawAsync, target{ratioAtLeast, 0.8})
	add(thr, "sync c=1", "writes/s", f.get("sync", 1), perSec, "direct HTTP c=1", pick(f.get("http", 1), perSec), target{})
	add(thr, fmt.Sprintf("sync c=%d", last), "writes/s", f.get("sync", last), perSec, fmt.Sprintf("direct HTTP c=%d", last), pick(f.get("http", last), perSec), target{})

	const lat = "call latency"
	type pct struct {
		name string
		get  func(*Measurement) float64
	}
	pcts := []pct{{"p50", p50ms}, {"p99", p99ms}, {"p99.9", p999ms}}
	for _, c := range []int{1, last} {
		for _, p := range pcts {
			t := target{}
			if c == 1 && p.name == "p50" {
				t = target{ratioAtMost, 1.2}
			}
			add(lat, fmt.Sprintf("fast_ack c=%d %s", c, p.name), "ms", f.get("fast_ack", c), p.get,
				fmt.Sprintf("raw sync publish c=%d", c), pick(f.get("raw_sync", c), p.get), t)
		}
	}
	for _, c := range []int{1, last} {
		for _, p := range pcts {
			t := target{}
			switch {
			case c == 1 && p.name == "p50":
				t = target{aboveByAtMost, 0.5}
			case c == 1 && p.name == "p99":
				t = target{aboveByAtMost, 5}
			}
			add(lat, fmt.Sprintf("sync c=%d %s", c, p.name), "ms", f.get("sync", c), p.get,
				fmt.Sprintf("direct HTTP c=%d", c), pick(f.get("http", c), p.get), t)
		}
	}
	// The floor of a sync write: bench/bare as the worker, in the same run.
	for _, p := range pcts[:2] {
		add(lat, "bare sync c=1 "+p.name, "ms", f.get("bare_sync", 1), p.get, "direct HTTP c=1", pick(f.get("http", 1), p.get), target{})
		add(lat, "sync c=1 "+p.name, "ms", f.get("sync", 1), p.get, "bare sync c=1", pick(f.get("bare_sync", 1), p.get), target{})
	}
	for _, c := range []int{1, last} {
		for _, p := range pcts {
			add(lat, fmt.Sprintf("background c=%d %s", c, p.name), "ms", f.get("background", c), p.get,
				fmt.Sprintf("raw PublishMsgAsync call c=%d", c), pick(f.get("raw_async", c), p.get), target{})
		}
	}

	const fd = "front door (SomaBrain's HTTP calls)"
	for _, mode := range []string{"fast_ack", "sync"} {
		for _, p := range pcts[:2] {
			add(fd, fmt.Sprintf("%s c=1 %s", mode, p.name), "ms", f.get("frontdoor_"+mode, 1), p.get, fmt.Sprintf("producer %s c=1", mode), pick(f.get(mode, 1), p.get), target{})
		}
	}
	for _, mode := range []string{"fast_ack", "sync"} {
		m := f.get("frontdoor_"+mode, last)
		t := target{}
		if mode == "fast_ack" {
			t = target{ratioAtLeast, 0.5}
		}
		add(fd, fmt.Sprintf("%s c=%d", mode, last), "writes/s", m, perSec, fmt.Sprintf("producer %s c=%d", mode, last), pick(f.get(mode, last), perSec), t)
		add(fd, fmt.Sprintf("%s c=%d", mode, last), "writes/s", m, perSec, fmt.Sprintf("direct HTTP c=%d", last), pick(f.get("http", last), perSec), target{})
		for _, p := range pcts {
			add(fd, fmt.Sprintf("%s c=%d %s", mode, last, p.name), "ms", m, p.get, fmt.Sprintf("producer %s c=%d", mode, last), pick(f.get(mode, last), p.get), target{})
		}
	}

	consume := pick(f.get("raw_consume", 1), perSec)
	capacity := pick(f.get("http", last), perSec)
	ceiling := lower(consume, capacity)
	e2e := fmt.Sprintf("end-to-end, %d callers", last)
	for _, mode := range []string{"fast_ack", "background", "sync"} {
		m := f.get("e2e_"+mode, last)
		add(e2e, mode+" applied", "writes/s", m, perSec, "lower of raw consume, HTTP capacity", ceiling, target{})
		for _, p := range pcts {
			add(e2e, mode+" publish→applied "+p.name, "ms", m, p.get, fmt.Sprintf("raw sync publish + direct HTTP, c=%d", last),
				sum(pick(f.get("raw_sync", last), p.get), pick(f.get("http", last), p.get)), target{})
		}
		if cpu, ok := r.WorkerCPUus["e2e_"+mode]; ok && m != nil {
			rows = append(rows, newRow(e2e, mode+" worker CPU per applied write", "us", cpu, "", nil, target{}))
		}
	}
	if m := f.get("e2e_paced_fast_ack", 1); m != nil {
		for _, p := range pcts {
			add(e2e, "fast_ack 1 caller at 200/s, publish→applied "+p.name, "ms", m, p.get, "raw sync publish + direct HTTP, c=1",
				sum(pick(f.get("raw_sync", 1), p.get), pick(f.get("http", 1), p.get)), target{})
		}
	}
	if mb, ok := r.WorkerPeakMB["sync+e2e"]; ok {
		rows = append(rows, newRow(e2e, "worker peak RSS (VmHWM)", "MB", mb, "", nil, target{}))
	}

	rows = append(rows, r.drainRows()...)
	const bl = "baselines"
	for _, b := range []struct{ name, label string }{
		{"raw_sync", "raw sync publish"}, {"raw_async", "raw async publish"}, {"http", "direct HTTP"},
	} {
		for _, c := range []int{1, last} {
			m := f.get(b.name, c)
			add(bl, fmt.Sprintf("%s c=%d", b.label, c), "writes/s", m, perSec, "", nil, target{})
			for _, p := range pcts {
				add(bl, fmt.Sprintf("%s c=%d %s", b.label, c, p.name), "ms", m, p.get, "", nil, target{})
			}
		}
	}
	add(bl, "raw durable consume + ack", "writes/s", f.get("raw_consume", 1), perSec, "", nil, target{})
	if w := r.Watermill; w != nil && w.Publish != nil {
		rows = append(rows, newRow("Watermill baseline", "publish (a process of its own)", "writes/s", w.Publish.PerSec, "raw async publish c=1", rawAsync, target{}))
	}
	return rows
}

// drainCeiling is what the machine allows a drain, from the two halves
// measured alone in the same run: pulling and acking, and POSTing to the
// memory API. A drain does both for every write on the same cores, so
// their times per write add up: 1 / (1/pull + 1/post).
func drainCeiling(pull, post *float64) *float64 {
	if pull == nil || post == nil || *pull <= 0 || *post <= 0 {
		return nil
	}
	v := 1 / (1 / *pull + 1 / *post)
	return &v
}

// drainRows compare the drains like for like: each drains the same backlog
// in a process that stored none of it, timed from when it is ready
// (jetbox's /readyz, Watermill's router running) to the last write
// applied, with its CPU time over the same interval.
func (r *Results) drainRows() []Row {
	f := figures(r.Measurements)
	drain := f.get("drain", r.Workers)
	if drain == nil {
		return nil
	}
	var rows []Row
	add := func(section, fig, unit string, value float64, baseline string, base *float64, t target) {
		rows = append(rows, newRow(section, fig, unit, value, baseline, base, t))
	}
	pull := pick(f.get("drain_pull_ack", r.Partitions), perSec)
	post := pick(f.get("drain_post", drainCallers), perSec)
	ceiling := drainCeiling(pull, post)
	const ceilingName = "drain ceiling 1/(1/pull+1/POST)"
	var wm *watermillDrain
	if r.Watermill != nil {
		wm = &r.Watermill.Drain
	}
	wmRate := func(get func(d *watermillDrain) float64) *float64 {
		if wm == nil {
			return nil
		}
		v := get(wm)
		return &v
	}

	dr := fmt.Sprintf("backlog drain: %d writes over %d tenants, stored before the consumer starts", drain.N, drainTenants)
	if m := f.get("drain_from_ready", r.Workers); m != nil {
		const fig = "jetbox, from /readyz"
		add(dr, fig, "writes/s", m.PerSec, "Watermill drain only, from router running", wmRate(func(d *watermillDrain) float64 { return d.FromReadyPerSec }), target{ratioAtLeast, 1.3})
		add(dr, fig, "writes/s", m.PerSec, ceilingName, ceiling, target{ratioAtLeast, 0.7})
		add(dr, fig, "writes/s", m.PerSec, "raw pull + ack, no HTTP", pull, target{})
		add(dr, fig, "writes/s", m.PerSec, fmt.Sprintf("memory API POSTs c=%d", drainCallers), post, target{})
	}
	if wm != nil {
		add(dr, "Watermill drain only, from router running", "writes/s", wm.FromReadyPerSec, ceilingName, ceiling, target{})
	}
	if cpu, ok := r.WorkerCPUus["drain"]; ok {
		var base *float64
		if wm != nil && wm.cpuPerWrite() > 0 {
			v := wm.cpuPerWrite()
			base = &v
		}
		add(dr, "worker CPU per applied write, from /readyz", "us", cpu, "Watermill drain-only process, from router running", base, target{ratioAtMost, 0.5})
	}
	if bare := r.Bare; bare != nil {
		const fig = "bare pull, POST, ack (no policy), from consumers started"
		if cpu, ok := r.WorkerCPUus["drain"]; ok && bare.cpuPerWrite() > 0 {
			v := bare.cpuPerWrite()
			add(dr, "worker CPU per applied write, from /readyz", "us", cpu, "bare process: "+fig, &v, target{})
			if wm != nil && wm.cpuPerWrite() > 0 {
				add(dr, "bare process CPU per applied write", "us", v, "Watermill drain-only process, from router running", wmRate(func(d *watermillDrain) float64 { return d.cpuPerWrite() }), target{})
			}
		}
		add(dr, fig, "writes/s", bare.FromReadyPerSec, ceilingName, ceiling, target{})
		add(dr, "bare process peak RSS (VmHWM)", "MB", bare.PeakRSSBytes/(1<<20), "", nil, target{})
	}
	if mb, ok := r.WorkerPeakMB["drain"]; ok {
		add(dr, "worker peak RSS (VmHWM)", "MB", mb, "Watermill drain-only process", wmRate(func(d *watermillDrain) float64 { return d.PeakRSSBytes / (1 << 20) }), target{atMost, 40})
	}
	if mb, ok := r.WorkerPeakMB["drain_at_ready"]; ok {
		add(dr, "worker peak RSS at /readyz, before the drain", "MB", mb, "", nil, target{})
	}
	add(dr, "jetbox, from worker start", "writes/s", drain.PerSec, "Watermill drain only, from router start", wmRate(func(d *watermillDrain) float64 { return d.PerSec }), target{})
	if m := f.get("drain_from_first", r.Workers); m != nil {
		add(dr, "jetbox, from the first write applied", "writes/s", m.PerSec, ceilingName, ceiling, target{})
	}
	if m := f.get("drain_10_90", r.Workers); m != nil {
		add(dr, "jetbox, between 10% and 90% applied", "writes/s", m.PerSec, ceilingName, ceiling, target{})
	}
	if r.WorkerReadySeconds > 0 {
		add(dr, "worker start to /readyz", "s", r.WorkerReadySeconds, "Watermill router start to running", wmRate(func(d *watermillDrain) float64 { return d.ReadySeconds }), target{})
	}
	if r.WorkerStartupSeconds > 0 {
		add(dr, "worker start to first write applied", "s", r.WorkerStartupSeconds, "", nil, target{})
	}
	if cpu, ok := r.WorkerCPUus["drain_from_start"]; ok {
		add(dr, "worker CPU per applied write, from start", "us", cpu, "", nil, target{})
	}
	if calls, ok := r.WorkerSyscalls["drain"]; ok {
		var floor *float64
		baseline := ""
		if bare := r.Bare; bare != nil && bare.N > int(bare.AppliedAtReady) && bare.Syscalls > 0 {
			v := bare.Syscalls / float64(bare.N-int(bare.AppliedAtReady))
			floor, baseline = &v, "bare process"
		}
		add(dr, "worker read+write syscalls per applied write", "calls", calls, baseline, floor, target{})
	}
	if pull != nil {
		add(dr, fmt.Sprintf("ceiling: raw pull + ack, no HTTP (%d partition consumers)", r.Partitions), "writes/s", *pull, "", nil, target{})
	}
	if post != nil {
		add(dr, fmt.Sprintf("ceiling: memory API POSTs c=%d", drainCallers), "writes/s", *post, "", nil, target{})
	}
	if ceiling != nil {
		add(dr, "ceiling: 1/(1/pull + 1/POST)", "writes/s", *ceiling, "", nil, target{})
	}
	return rows
}

// printTable writes the rows grouped by section.
func printTable(out io.Writer, rows []Row) {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tmeasured\tbaseline\t\tratio\ttarget\tverdict\t")
	section := ""
	for _, r := range rows {
		if r.Section != section {
			section = r.Section
			fmt.Fprintf(tw, "%s\t\t\t\t\t\t\t\n", "— "+section+" —")
		}
		base, ratio := "—", "—"
		if r.Base != nil {
			base = format(*r.Base, r.Unit)
		}
		if r.Ratio != nil {
			ratio = fmt.Sprintf("%.2fx", *r.Ratio)
			if r.Unit == "ms" {
				ratio += fmt.Sprintf(" (%+.2f ms)", r.Value-*r.Base)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", r.Figure, format(r.Value, r.Unit), base, r.Baseline, ratio, r.Target, r.Verdict)
	}
	tw.Flush()
}

func format(v float64, unit string) string {
	switch unit {
	case "ms":
		return fmt.Sprintf("%.3f ms", v)
	case "writes/s":
		return fmt.Sprintf("%.0f/s", v)
	case "us":
		return fmt.Sprintf("%.1f us", v)
	case "MB":
		return fmt.Sprintf("%.1f MB", v)
	case "s":
		return fmt.Sprintf("%.2f s", v)
	}
	return fmt.Sprintf("%.4g %s", v, unit)
}
