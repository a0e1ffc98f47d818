package main

import (
	"fmt"
	"html"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// The charts are hand-drawn SVG in one HTML file: nothing to install, and
// any browser opens it.

// seriesNames label the measurements in the charts, baselines first; the
// colour of a series is the same in every chart.
var seriesNames = []struct{ name, label, colour string }{
	{"raw_sync", "raw sync publish", "#888888"},
	{"raw_async", "raw async publish", "#bbbbbb"},
	{"http", "direct HTTP", "#8c564b"},
	{"sync", "jetbox sync", "#d62728"},
	{"fast_ack", "jetbox fast_ack", "#1f77b4"},
	{"background", "jetbox background", "#2ca02c"},
	{"e2e_sync", "sync, 64 callers", "#d62728"},
	{"e2e_fast_ack", "fast_ack, 64 callers", "#1f77b4"},
	{"e2e_background", "background, 64 callers", "#2ca02c"},
	{"e2e_paced_fast_ack", "fast_ack, 1 caller at 200/s", "#9467bd"},
}

type series struct {
	label, colour string
	dashed        bool
	pts           [][2]float64 // x, y in chart units (logs already taken)
}

type tick struct {
	at    float64
	label string
}

type chart struct {
	title, xLabel, yLabel string
	xTicks, yTicks        []tick
	series                []series
}

// nines maps a percentile to -log10(1-p/100), so p50, p90, p99, p99.9 are
// evenly spaced; p100 has no place and is left out.
func nines(p float64) (float64, bool) {
	if p >= 100 {
		return 0, false
	}
	return -math.Log10(1 - p/100), true
}

var ninesTicks = []tick{{0, "p0"}, {math.Log10(2), "p50"}, {1, "p90"}, {2, "p99"}, {3, "p99.9"}, {4, "p99.99"}}

// latencyChart draws the percentile curves of the named measurements at
// concurrency c (a name "x@1" is x at concurrency 1), latency on a log scale.
func latencyChart(title string, f figures, c int, names []string) chart {
	ch := chart{title: title, xLabel: "percentile", yLabel: "latency (ms, log scale)", xTicks: ninesTicks}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range seriesNames {
		m := f.get(s.name, c)
		if slices.Contains(names, s.name+"@1") {
			m = f.get(s.name, 1)
		} else if !slices.Contains(names, s.name) {
			continue
		}
		if m == nil || len(m.Curve) == 0 {
			continue
		}
		sr := series{label: s.label, colour: s.colour, dashed: strings.HasPrefix(s.name, "raw") || s.name == "http"}
		for _, p := range m.Curve {
			x, ok := nines(p.Percentile)
			if !ok || p.Us <= 0 {
				continue
			}
			y := math.Log10(p.Us / 1000)
			lo, hi = min(lo, y), max(hi, y)
			sr.pts = append(sr.pts, [2]float64{x, y})
		}
		ch.series = append(ch.series, sr)
	}
	ch.yTicks = decades(lo, hi)
	return ch
}

// decades are the ticks of a log scale from 10^floor(lo) to 10^ceil(hi).
func decades(lo, hi float64) []tick {
	if lo > hi {
		return nil
	}
	var ticks []tick
	for e := math.Floor(lo); e <= max(math.Ceil(hi), math.Floor(lo)+1); e++ {
		ticks = append(ticks, tick{e, trimFloat(math.Pow(10, e))})
	}
	return ticks
}

// throughputChart draws writes/s against the number of callers, on a log
// scale: the memory API is two orders of magnitude slower than NATS.
func throughputChart(f figures) chart {
	ch := chart{title: "Throughput against concurrency", xLabel: "concurrent callers", yLabel: "writes/s (log scale)"}
	for _, c := range sweep {
		ch.xTicks = append(ch.xTicks, tick{math.Log2(float64(c)), fmt.Sprint(c)})
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range seriesNames[:6] {
		sr := series{label: s.label, colour: s.colour, dashed: strings.HasPrefix(s.name, "raw") || s.name == "http"}
		for _, c := range sweep {
			if m := f.get(s.name, c); m != nil && m.PerSec > 0 {
				y := math.Log10(m.PerSec)
				sr.pts = append(sr.pts, [2]float64{math.Log2(float64(c)), y})
				lo, hi = min(lo, y), max(hi, y)
			}
		}
		if len(sr.pts) > 0 {
			ch.series = append(ch.series, sr)
		}
	}
	ch.yTicks = decades(lo, hi)
	return ch
}

func trimFloat(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%.0f", v)
	}
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.3f", v), "0"), ".")
}

// svg renders the chart.
func (ch chart) svg(w io.Writer) {
	const width, height, left, right, top, bottom = 820, 420, 70, 240, 40, 50
	pw, ph := float64(width-left-right), float64(height-top-bottom)
	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", width, height)
	fmt.Fprintf(w, `<text x="%d" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", left, html.EscapeString(ch.title))
	if len(ch.series) == 0 || len(ch.xTicks) < 2 || len(ch.yTicks) < 2 {
		fmt.Fprintf(w, `<text x="%d" y="%d">not measured in this run</text></svg>`+"\n", left, top+40)
		return
	}
	x0, x1 := ch.xTicks[0].at, ch.xTicks[len(ch.xTicks)-1].at
	y0, y1 := ch.yTicks[0].at, ch.yTicks[len(ch.yTicks)-1].at
	px := func(x float64) float64 { return left + (x-x0)/(x1-x0)*pw }
	py := func(y float64) float64 { return top + ph - (y-y0)/(y1-y0)*ph }
	for _, t := range ch.xTicks {
		fmt.Fprintf(w, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%.1f" stroke="#eee"/><text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n",
			px(t.at), top, px(t.at), top+ph, px(t.at), top+ph+16, html.EscapeString(t.label))
	}
	for _, t := range ch.yTicks {
		fmt.Fprintf(w, `<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#eee"/><text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n",
			left, py(t.at), left+pw, py(t.at), left-6, py(t.at)+4, html.EscapeString(t.label))
	}
	fmt.Fprintf(w, `<rect x="%d" y="%d" width="%.0f" height="%.0f" fill="none" stroke="#999"/>`+"\n", left, top, pw, ph)
	fmt.Fprintf(w, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", left+pw/2, height-10, html.EscapeString(ch.xLabel))
	fmt.Fprintf(w, `<text transform="translate(16 %.1f) rotate(-90)" text-anchor="middle">%s</text>`+"\n", top+ph/2, html.EscapeString(ch.yLabel))
	for i, s := range ch.series {
		dash := ""
		if s.dashed {
			dash = ` stroke-dasharray="6 4"`
		}
		var pts []string
		for _, p := range s.pts {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(p[0]), py(p[1])))
		}
		fmt.Fprintf(w, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>`+"\n", strings.Join(pts, " "), s.colour, dash)
		for _, p := range pts {
			xy := strings.Split(p, ",")
			fmt.Fprintf(w, `<circle cx="%s" cy="%s" r="2.5" fill="%s"/>`, xy[0], xy[1], s.colour)
		}
		ly := top + 10 + i*20
		fmt.Fprintf(w, "\n"+`<line x1="%.0f" y1="%d" x2="%.0f" y2="%d" stroke="%s" stroke-width="2"%s/><text x="%.0f" y="%d">%s</text>`+"\n",
			left+pw+12, ly, left+pw+36, ly, s.colour, dash, left+pw+42, ly+4, html.EscapeString(s.label))
	}
	fmt.Fprintln(w, "</svg>")
}

// writeCharts writes the HTML page: latency distributions per mode at 1 and
// at 64 callers, end to end, and throughput against concurrency.
// charts are the run's charts, each with the name of its own SVG file.
func charts(res *Results) map[string]chart {
	f := figures(res.Measurements)
	last := sweep[len(sweep)-1]
	calls := []string{"raw_sync", "raw_async", "http", "sync", "fast_ack", "background"}
	return map[string]chart{
		"latency-1.svg":                     latencyChart("Call latency, 1 caller", f, 1, calls),
		fmt.Sprintf("latency-%d.svg", last): latencyChart(fmt.Sprintf("Call latency, %d callers", last), f, last, calls),
		"latency-e2e.svg":                   latencyChart("End-to-end latency, publish → applied", f, last, []string{"e2e_sync", "e2e_fast_ack", "e2e_background", "e2e_paced_fast_ack@1"}),
		"throughput.svg":                    throughputChart(f),
	}
}

// writeChartFiles writes each chart to its own SVG file in dir, for
// documents to show.
func writeChartFiles(dir string, res *Results) error {
	for name, ch := range charts(res) {
		var sb strings.Builder
		ch.svg(&sb)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(sb.String()), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func writeCharts(w io.Writer, res *Results) error {
	byName := charts(res)
	var sb strings.Builder
	fmt.Fprintf(&sb, "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>jetbox bench</title>\n"+
		"<style>body{font-family:sans-serif;margin:24px}table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}td:first-child,th:first-child{text-align:left}.FAIL{color:#c00;font-weight:bold}.PASS{color:#080}</style></head><body>\n")
	api := "the development memory API (bbolt)"
	if res.InstantAPI {
		api = "a memory API that answers at once"
	}
	fmt.Fprintf(&sb, "<h1>jetbox bench</h1><p>%s, scale %g, %d-byte writes, %d worker(s), %s, %d CPUs, load average %s at the start and %s at the end. Dashed lines are baselines.</p>\n",
		res.Started.Format("2006-01-02 15:04 UTC"), res.Scale, res.Size, res.Workers, api, res.CPUs, res.LoadAverage[0], res.LoadAverage[1])
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		byName[name].svg(&sb)
		sb.WriteString("<br>\n")
	}
	sb.WriteString("<h2>Table</h2><table><tr><th>figure</th><th>measured</th><th>baseline</th><th></th><th>ratio</th><th>target</th><th>verdict</th></tr>\n")
	for _, r := range res.Table {
		base, ratio := "—", "—"
		if r.Base != nil {
			base = format(*r.Base, r.Unit)
		}
		if r.Ratio != nil {
			ratio = fmt.Sprintf("%.2fx", *r.Ratio)
		}
		fmt.Fprintf(&sb, "<tr><td>%s: %s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td class=%q>%s</td></tr>\n",
			html.EscapeString(r.Section), html.EscapeString(r.Figure), format(r.Value, r.Unit), base, html.EscapeString(r.Baseline), ratio, html.EscapeString(r.Target), r.Verdict, r.Verdict)
	}
	sb.WriteString("</table></body></html>\n")
	_, err := io.WriteString(w, sb.String())
	return err
}
