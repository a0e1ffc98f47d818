// Package promdeploy_test checks the shipped alert rules and Grafana
// dashboard: promtool accepts the rules and their unit tests pass, and
// every jetbox metric the rules and the dashboard query is one that
// jetbox's own registries export.
package promdeploy_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"
	"go.yaml.in/yaml/v3"

	"github.com/jetbox-dev/jetbox/consumer"
	"github.com/jetbox-dev/jetbox/internal/buildinfo"
	"github.com/jetbox-dev/jetbox/internal/memapi"
	"github.com/jetbox-dev/jetbox/internal/natstest"
	"github.com/jetbox-dev/jetbox/internal/opsmetrics"
	"github.com/jetbox-dev/jetbox/producer"
	"github.com/jetbox-dev/jetbox/relay"
	"github.com/jetbox-dev/jetbox/streams"
)

const (
	rulesFile     = "jetbox-alerts.yml"
	rulesTestFile = "jetbox-alerts_test.yml"
	dashboardFile = "../grafana/jetbox.json"
)

// promtool finds promtool, or skips the test when it is missing outside CI
// (CI must have it: .ci/run installs Debian's prometheus package).
func promtool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err == nil {
		return path
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("promtool not found, and CI is set: install it (apt-get install prometheus; .ci/run does)")
	}
	t.Skip("promtool not found: apt-get install prometheus to check the alert rules")
	return ""
}

func TestAlertRulesPassPromtool(t *testing.T) {
	bin := promtool(t)
	for _, args := range [][]string{{"check", "rules", rulesFile}, {"test", "rules", rulesTestFile}} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// recorder is a Registerer that notes the name of every metric its
// collectors describe, including vectors that have no series yet (a
// breaker that never opened, a class never dead-lettered).
type recorder struct {
	prometheus.Registerer
	names map[string]bool
}

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

func (r *recorder) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc)
	go func() {
		c.Describe(ch)
		close(ch)
	}()
	for d := range ch {
		if m := fqName.FindStringSubmatch(d.String()); m != nil {
			r.names[m[1]] = true
		}
	}
	return r.Registerer.Register(c)
}

func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// exportedNames runs what 'jetbox run', 'jetbox relay' and a producer
// register, against a real nats-server and memory API, lets one write go
// through (so histograms have series and show their type), and returns
// every metric name a scrape can show, histograms' _bucket, _sum and
// _count included.
func exportedNames(t *testing.T) map[string]bool {
	t.Helper()
	srv := natstest.Start(t)
	nc, js := srv.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	scfg := streams.DefaultConfig()
	scfg.Partitions = 1
	if _, err := streams.Provision(ctx, js, scfg); err != nil {
		t.Fatal(err)
	}
	store, err := memapi.Open(memapi.Options{Path: filepath.Join(t.TempDir(), "memapi.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	ln, err := memapi.Listen("127.0.0.1:0", store, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	apiCtx, stopAPI := context.WithCancel(context.Background())
	apiDone := make(chan error, 1)
	go func() { apiDone <- memapi.ServeListener(apiCtx, ln, store, zerolog.Nop()) }()
	t.Cleanup(func() { stopAPI(); <-apiDone })

	reg := prometheus.NewRegistry()
	rec := &recorder{Registerer: reg, names: map[string]bool{}}
	// As cmd/jetbox's run registers them.
	rec.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	rec.MustRegister(opsmetrics.New(js, scfg, opsmetrics.DefaultCacheTTL), opsmetrics.BuildInfo(buildinfo.Read()))
	workerNC, _ := srv.Connect(t)
	w, err := consumer.New(workerNC, consumer.Config{Endpoint: "http://" + ln.Addr().String(), Streams: scfg, Log: zerolog.Nop(), Registerer: rec})
	if err != nil {
		t.Fatal(err)
	}
	rec.MustRegister(opsmetrics.Ready(func(context.Context) error { return w.Ready() }, opsmetrics.DefaultCacheTTL))
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-done })

	p, err := producer.New(nc, producer.Config{Mode: streams.ModeFastAck, Registerer: rec})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	if _, err := relay.New(nil, nc, relay.Config{Registerer: rec, Log: zerolog.Nop()}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Store(ctx, producer.StoreRequest{Tenant: "names", Key: "k", Payload: map[string]any{"text": "x"}}); err != nil {
		t.Fatal(err)
	}

	names := rec.names
	deadline := time.Now().Add(15 * time.Second)
	for {
		families, err := reg.Gather()
		if err != nil {
			t.Fatalf("gather: %v", err)
		}
		applied := false
		for _, f := range families {
			names[f.GetName()] = true
			switch f.GetType() {
			case dto.MetricType_HISTOGRAM:
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					names[f.GetName()+suffix] = true
				}
			case dto.MetricType_SUMMARY:
				names[f.GetName()+"_sum"], names[f.GetName()+"_count"] = true, true
			}
			applied = applied || f.GetName() == "jetbox_worker_applied_total"
		}
		if applied {
			return names
		}
		if time.Now().After(deadline) {
			t.Fatal("the write was not applied within 15 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// jetboxName matches a jetbox metric name in a PromQL expression.
var jetboxName = regexp.MustCompile(`\bjetbox_[a-zA-Z0-9_]+`)

// ruleExpressions returns the expr of every rule in the rules file.
func ruleExpressions(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(data, &file); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	var out []string
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			out = append(out, r.Expr)
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s has no rules", rulesFile)
	}
	return out
}

// dashboardPanel is what the test reads of a Grafana panel; rows nest
// panels when collapsed.
type dashboardPanel struct {
	Title   string `json:"title"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []dashboardPanel `json:"panels"`
}

// dashboardExpressions returns the expr of every panel's queries.
func dashboardExpressions(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []dashboardPanel `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	var out []string
	var walk func([]dashboardPanel)
	walk = func(ps []dashboardPanel) {
		for _, p := range ps {
			for _, target := range p.Targets {
				out = append(out, target.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	if len(out) == 0 {
		t.Fatalf("%s has no queries", dashboardFile)
	}
	return out
}

// Every jetbox metric a rule or a dashboard panel queries exists: a
// renamed metric would otherwise leave an alert that can never fire and a
// panel that shows nothing.
func TestRulesAndDashboardQueryExportedMetrics(t *testing.T) {
	exported := exportedNames(t)
	queried := map[string]bool{}
	for source, exprs := range map[string][]string{rulesFile: ruleExpressions(t), dashboardFile: dashboardExpressions(t)} {
		for _, expr := range exprs {
			for _, name := range jetboxName.FindAllString(expr, -1) {
				queried[name] = true
				if !exported[name] {
					t.Errorf("%s queries %s, which jetbox does not export (in %q)", source, name, expr)
				}
			}
		}
	}
	var unused []string
	for name := range exported {
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
		if strings.HasPrefix(name, "jetbox_") && !queried[name] && !queried[base+"_bucket"] && !queried[base+"_count"] && !queried[base] {
			unused = append(unused, name)
		}
	}
	slices.Sort(unused)
	t.Logf("jetbox metrics neither the rules nor the dashboard use: %v", unused)
}
