// Command scenarios drives jetbox on loopback through the scenarios of the
// consumption design (scale, tenant count, priority, order across killed
// workers, isolation of a failing tenant, fairness under a flooding tenant)
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
}

func main() {
	only := flag.String("only", "", "comma-separated scenarios to run (default: all): scale, tenants, priority, order, isolation, fairness")
	scale := flag.Float64("scale", 1, "multiply the scenario sizes by this (0.1 for a quick run)")
	jetboxBin := flag.String("jetbox", "", "jetbox binary (default: built into a temp dir)")
	out := flag.String("out", "", "also write the results as JSON to this file")
	keep := flag.Bool("keep", false, "keep the data directories and worker logs")
	flag.Parse()

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
	r := &runner{bin: bin, work: work, scale: *scale, keep: *keep}

	var results []result
	failed := false
	for _, s := range scenarios {
		if *only != "" && !slices.Contains(strings.Split(*only, ","), s.name) {
			continue
		}
		fmt.Fprintf(os.Stderr, "scenario %s…\n", s.name)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		res, err := s.run(ctx, r)
		cancel()
		if err != nil {
			res = result{Name: s.name, Note: "error: " + err.Error()}
		}
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
