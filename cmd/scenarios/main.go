// Command scenarios drives jetbox on loopback through the scenarios of the
// consumption design (scale, tenant count, priority, order across killed
// workers, isolation of a failing tenant, fairness under a flooding tenant, a parked tenant's recovery)
// and prints their figures. Every figure is measured in the run. 'make scenarios' runs it.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// result is one scenario's figures and verdict.
type result struct {
	Name    string             `json:"name"`
	Figures map[string]float64 `json:"figures"`
	Target  string             `json:"target"`
	Pass    bool               `json:"pass"`
	Note    string             `json:"note,omitempty"`
}

type scenario struct {
	name string
	run  func(ctx context.Context, r *runner) (result, error)
}

var scenarios = []scenario{
	{"scale", scaleScenario},
	{"tenants", tenantsScenario},
	{"priority", priorityScenario},
	{"order", orderScenario},
	{"isolation", isolationScenario},
	{"fairness", fairnessScenario},
	{"recovery", recoveryScenario},
}

func main() {
	only := flag.String("only", "", "comma-separated scenarios to run (default: all): scale, tenants, priority, order, isolation, fairness, recovery")
	scale := flag.Float64("scale", 1, "multiply the scenario sizes by this (0.1 for a quick run)")
	jetboxBin := flag.String("jetbox", "", "jetbox binary (default: built into a temp dir)")
	out := flag.String("out", "", "also write the results as JSON to this file")
	keep := flag.Bool("keep", false, "keep the data directories and worker logs")
	windows := flag.Duration("windows", 0, "for isolation and fairness, also print each run's delivery latency by publish time in windows this wide (e.g. 5s)")
	runs := flag.Int("runs", 1, "run each scenario this many times; figures are then medians and the verdict is the majority's")
	flag.Parse()
	if *runs < 1 {
		fatal(errors.New("-runs must be at least 1"))
	}

	work, err := os.MkdirTemp("", "jetbox-scenarios")
	if err != nil {
		fatal(err)
	}
	// os.Exit skips deferred calls: every exit below goes through cleanup.
	cleanup := func() {
		if !*keep {
			os.RemoveAll(work)
		}
	}
	die := func(err error) {
		cleanup()
		fatal(err)
	}
	bin := *jetboxBin
	if bin == "" {
		bin = filepath.Join(work, "jetbox")
		fmt.Fprintln(os.Stderr, "building jetbox…")
		if out, err := exec.Command("go", "build", "-o", bin, "./cmd/jetbox").CombinedOutput(); err != nil {
			die(fmt.Errorf("build jetbox: %v\n%s", err, out))
		}
	}
	r := &runner{bin: bin, work: work, scale: *scale, keep: *keep, windows: *windows}

	var results []result
	failed := false
	for _, s := range scenarios {
		if *only != "" && !slices.Contains(strings.Split(*only, ","), s.name) {
			continue
		}
		var each []result
		for run := 1; run <= *runs; run++ {
			fmt.Fprintf(os.Stderr, "scenario %s, run %d of %d…\n", s.name, run, *runs)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
			res, err := s.run(ctx, r)
			cancel()
			if err != nil {
				res = result{Name: s.name, Note: "error: " + err.Error()}
			}
			if *runs > 1 {
				one := res
				one.Name = fmt.Sprintf("%s (run %d of %d)", s.name, run, *runs)
				printResult(one)
			}
			each = append(each, res)
		}
		res := combine(each)
		failed = failed || !res.Pass
		results = append(results, res)
		printResult(res)
	}
	if *out != "" {
		data, _ := json.MarshalIndent(results, "", "  ")
		if err := os.WriteFile(*out, data, 0o644); err != nil {
			die(err)
		}
	}
	cleanup()
	if failed {
		os.Exit(1)
	}
}

// combine sums up repeated runs of one scenario: each figure is the median
// of the runs that have it, and the scenario passes when most runs did.
func combine(runs []result) result {
	if len(runs) == 1 {
		return runs[0]
	}
	out := result{Name: runs[0].Name, Target: runs[0].Target, Note: runs[0].Note, Figures: map[string]float64{}}
	values := map[string][]float64{}
	passed := 0
	for _, r := range runs {
		if r.Pass {
			passed++
		}
		if out.Target == "" {
			out.Target, out.Note = r.Target, r.Note
		}
		for k, v := range r.Figures {
			values[k] = append(values[k], v)
		}
	}
	for k, v := range values {
		slices.Sort(v)
		out.Figures[k] = v[len(v)/2]
		if len(v)%2 == 0 {
			out.Figures[k] = (v[len(v)/2-1] + v[len(v)/2]) / 2
		}
	}
	out.Figures["runs"] = float64(len(runs))
	out.Figures["runs_passed"] = float64(passed)
	out.Pass = 2*passed > len(runs)
	out.Note = strings.TrimSpace(fmt.Sprintf("medians of %d runs, verdict of the majority. %s", len(runs), out.Note))
	return out
}

func printResult(res result) {
	verdict := "FAIL"
	if res.Pass {
		verdict = "PASS"
	}
	fmt.Printf("\n== %s: %s (target: %s)\n", res.Name, verdict, res.Target)
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	keys := make([]string, 0, len(res.Figures))
	for k := range res.Figures {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if v := res.Figures[k]; v == math.Trunc(v) && math.Abs(v) < 1e15 {
			fmt.Fprintf(tw, "  %s\t%d\n", k, int64(v)) // a count: every digit
		} else {
			fmt.Fprintf(tw, "  %s\t%.4g\n", k, v)
		}
	}
	tw.Flush()
	if res.Note != "" {
		fmt.Printf("  %s\n", res.Note)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "scenarios:", err)
	os.Exit(2)
}

var errTimeout = errors.New("timed out")
