// Command bench drives jetbox on loopback against an embedded nats-server and
// the development memory API, next to the baselines it is measured against
// (raw NATS JetStream, the memory API on its own, Watermill), and prints one
// table of figures, baselines, ratios and verdicts against the targets. It
// also writes DIR/results.json and DIR/charts.html. 'make bench' runs it.
//
// The phases, in order (-only picks some):
//
//   - raw: nats.go jetstream on a stream with the outbox's settings: sync
//     publish, async publish (4096 awaiting acks, like the producer) and a
//     durable consumer with explicit acks, all with Nats-Msg-Id;
//   - http: the request a worker sends, POSTed straight to the memory API;
//   - fast_ack, background: the producer package, no worker running;
//   - frontdoor: SomaFractalMemory's HTTP API served by the front door,
//     called as SomaBrain calls it from 1 and 64 callers: fast_ack with no
//     worker running, then sync with the workers;
//   - sync: the producer with jetbox workers running ('jetbox run'
//     processes, so their CPU time and peak memory are their own);
//   - e2e: each mode from 64 callers, timed from the call to the memory API
//     applying the write, and fast_ack from one paced caller;
//   - drain: the drain's ceiling (the backlog pulled and acked through the
//     outbox's consumers with no HTTP, and as many POSTs to the memory API
//     from 64 callers), then a backlog of 50,000 writes over 1,000 tenants
//     stored with no worker running, timed from the workers' /readyz until
//     they have applied all of it;
//   - watermill: bench/watermill, built, against a fresh nats-server and
//     memory API: one process publishes the same backlog, another drains
//     it, timed from its router running.
//
// The raw, http and producer runs are swept over 1, 4, 16 and 64 callers.
// On a shared machine the figures move with its load: the load average is
// printed with the table, and -scale 1 gives runs long enough to settle.
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/jetbox-dev/jetbox/internal/config"
	"github.com/jetbox-dev/jetbox/streams"
)

// phases are the parts of a run, in the order they run; -only picks some.
var phases = []string{"raw", "http", "fast_ack", "background", "frontdoor", "sync", "e2e", "drain", "watermill"}

type options struct {
	scale          float64
	only           []string
	out            string
	size           int
	workers        int
	jetboxBin      string
	watermillDir   string
	instantAPI     bool
	profile        string // directory for CPU profiles of the drain; empty: none
	profileSeconds int
	partitions     int    // per mode; 0: jetbox's default
	natsSync       string // the nats-server's flushing: a duration or always; empty: its default
	// natsSync read once: the flush interval (0: the server's default) or
	// after every write.
	syncInterval time.Duration
	syncAlways   bool
	workerEnv    []string // KEY=VALUE settings added to every worker's environment
}

// Results is everything a run measured; results.json holds it.
type Results struct {
	Started    time.Time `json:"started"`
	Scale      float64   `json:"scale"`
	Size       int       `json:"message_size"`
	Workers    int       `json:"workers"`
	InstantAPI bool      `json:"instant_api"`
	Partitions int       `json:"partitions"` // per mode, of jetbox's outbox
	NATSSync   string    `json:"nats_sync"`  // how often the nats-server flushes its files, or always
	CPUs       int       `json:"cpus"`
	// LoadAverage is /proc/loadavg at the start and at the end: on a shared
	// machine, figures taken under a high load are not comparable.
	LoadAverage  [2]string          `json:"load_average"`
	Measurements []Measurement      `json:"measurements"`
	WorkerCPUus  map[string]float64 `json:"worker_cpu_us_per_applied_write"`
	WorkerPeakMB map[string]float64 `json:"worker_peak_rss_mb"`
	// WorkerSyscalls is the workers' read and write system calls per
	// applied write, start-up included.
	WorkerSyscalls map[string]float64 `json:"worker_rw_syscalls_per_applied_write"`
	// WorkerStartupSeconds is, in the drain, how long after the worker
	// processes were started the first write was applied.
	WorkerStartupSeconds float64 `json:"worker_startup_seconds,omitempty"`
	// WorkerReadySeconds is, in the drain, how long after the worker
	// processes were started their /readyz answered 200.
	WorkerReadySeconds float64          `json:"worker_ready_seconds,omitempty"`
	Watermill          *WatermillReport `json:"watermill,omitempty"`
	// Bare is bench/bare's drain of the same backlog: pull, POST and ack,
	// and nothing else.
	Bare    *watermillDrain   `json:"bare,omitempty"`
	Skipped map[string]string `json:"skipped,omitempty"` // phase: why
	Table   []Row             `json:"table"`
}

// bench is one run.
type bench struct {
	opts  options
	scale float64
	work  string // temp directory: data, worker logs, the jetbox binary
	bin   string
	envs  int
	runs  int
	res   *Results
}

func main() {
	var opts options
	only := flag.String("only", "", "comma-separated phases to run (default all): "+strings.Join(phases, ", "))
	flag.Float64Var(&opts.scale, "scale", 1, "multiply message counts by this (1: 100,000 per publish run, 5,000 sync and 10,000 HTTP calls per run (100,000 with -instant-api), a 50,000-write backlog)")
	flag.StringVar(&opts.out, "out", "bench-results", "directory for results.json and charts.html")
	flag.IntVar(&opts.size, "size", 512, "size in bytes of each write's body")
	flag.IntVar(&opts.workers, "workers", 1, "jetbox worker processes")
	flag.StringVar(&opts.jetboxBin, "jetbox", "", "jetbox binary for the workers (default: built into a temp dir)")
	flag.StringVar(&opts.watermillDir, "watermill", "bench/watermill", "directory of the Watermill baseline module")
	flag.StringVar(&opts.profile, "profile", "", "write CPU profiles of the drain (the first worker's, and this process's: nats-server, memory API) into this directory")
	flag.IntVar(&opts.partitions, "partitions", 0, "partitions per write mode of jetbox's outbox (default: jetbox's default); fewer cost the server less per write, and let fewer workers share a mode")
	flag.IntVar(&opts.profileSeconds, "profile-seconds", 8, "how long the drain's CPU profiles last")
	flag.StringVar(&opts.natsSync, "nats-sync", "", "how often the nats-server flushes its files to disk, a duration or always, as SOMABRAIN_OUTBOX_NATS_SYNC (default: the nats-server's own, 2m)")
	flag.Func("worker-env", "a KEY=VALUE setting for every jetbox worker the bench starts, such as SOMABRAIN_OUTBOX_MAX_ACK_PENDING=64 or GOGC=100 (repeatable)", func(v string) error {
		if !strings.Contains(v, "=") {
			return fmt.Errorf("%q is not KEY=VALUE", v)
		}
		opts.workerEnv = append(opts.workerEnv, v)
		return nil
	})
	flag.BoolVar(&opts.instantAPI, "instant-api", false, "serve a memory API that answers 200 at once without storing, instead of the development memory API (bbolt)")
	flag.Parse()
	if *only != "" {
		opts.only = strings.Split(*only, ",")
		for _, p := range opts.only {
			if !slices.Contains(phases, p) {
				fatal(fmt.Errorf("-only: unknown phase %q (phases: %s)", p, strings.Join(phases, ", ")))
			}
		}
	}
	if opts.natsSync != "" {
		var err error
		if opts.syncInterval, opts.syncAlways, err = (config.Embedded{NATSSync: opts.natsSync}).DiskSync(); err != nil {
			fatal(fmt.Errorf("-nats-sync %q: want a duration above 0 or always: %w", opts.natsSync, err))
		}
	}
	if opts.scale <= 0 || opts.workers < 1 || opts.size < 1 {
		fatal(errors.New("-scale, -workers and -size must be positive"))
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := run(ctx, opts)
	if res != nil {
		printTable(os.Stdout, res.Table)
		fmt.Printf("\nload average (1, 5, 15 min) at the start: %s, at the end: %s; %d CPUs; %d partitions per mode; nats-server flushes: %s\n", res.LoadAverage[0], res.LoadAverage[1], res.CPUs, res.Partitions, res.NATSSync)
		for _, phase := range phases {
			if why, ok := res.Skipped[phase]; ok {
				fmt.Printf("%s: skipped (%s)\n", phase, why)
			}
		}
		if werr := writeResults(opts.out, res); werr != nil {
			err = errors.Join(err, werr)
		} else {
			fmt.Printf("\nresults: %s, charts: %s\n", filepath.Join(opts.out, "results.json"), filepath.Join(opts.out, "charts.html"))
		}
	}
	if err != nil {
		fatal(err)
	}
}

// run makes every phase opts asks for. A phase that fails is noted in
// Results.Skipped and the others still run; the error is only for what stops
// the whole run.
func run(ctx context.Context, opts options) (*Results, error) {
	work, err := os.MkdirTemp("", "jetbox-bench")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	b := &bench{opts: opts, scale: opts.scale, work: work, bin: opts.jetboxBin, res: &Results{
		Started: time.Now().UTC(), Scale: opts.scale, Size: opts.size, Workers: opts.workers, InstantAPI: opts.instantAPI, Partitions: partitionsOf(opts), NATSSync: cmp.Or(opts.natsSync, "2m"), CPUs: runtime.NumCPU(),
		LoadAverage: [2]string{loadAverage(), ""},
		WorkerCPUus: map[string]float64{}, WorkerPeakMB: map[string]float64{}, WorkerSyscalls: map[string]float64{}, Skipped: map[string]string{},
	}}
	if slices.ContainsFunc(phases[:7], b.wants) {
		if err := b.mainPhases(ctx); err != nil {
			return nil, err
		}
	}
	if b.wants("drain") {
		b.phase(ctx, "drain", b.drainPhase)
	}
	if b.wants("watermill") {
		fmt.Fprintln(progressOut, "watermill baseline…")
		w, err := b.watermillPhase(ctx)
		if err != nil {
			b.res.Skipped["watermill"] = err.Error()
			fmt.Fprintf(progressOut, "watermill: skipped (%v)\n", err)
		}
		b.res.Watermill = w
	}
	b.res.Table = b.res.rows()
	b.res.LoadAverage[1] = loadAverage()
	return b.res, ctx.Err()
}

// mainPhases share one pipeline: the baselines and the producers without
// workers first, then the workers for sync and end to end.
func (b *bench) mainPhases(ctx context.Context) error {
	e, err := b.newEnv(ctx)
	if err != nil {
		return err
	}
	defer e.close()
	b.phase(ctx, "raw", func(ctx context.Context) error { return b.rawPhase(ctx, e) })
	b.phase(ctx, "http", func(ctx context.Context) error { return b.httpPhase(ctx, e) })
	b.phase(ctx, "fast_ack", func(ctx context.Context) error { return b.producerPhase(ctx, e, streams.ModeFastAck) })
	b.phase(ctx, "background", func(ctx context.Context) error { return b.producerPhase(ctx, e, streams.ModeBackground) })
	b.phase(ctx, "frontdoor", func(ctx context.Context) error { return b.frontDoorPhase(ctx, e) })
	b.phase(ctx, "sync", func(ctx context.Context) error {
		if err := b.bareSync(ctx, e); err != nil {
			return fmt.Errorf("bare sync: %w", err)
		}
		if err := b.ensureWorkers(ctx, e); err != nil {
			return err
		}
		return b.producerPhase(ctx, e, streams.ModeSync)
	})
	b.phase(ctx, "e2e", func(ctx context.Context) error {
		if err := e.purgeOutbox(ctx); err != nil {
			return err
		}
		if err := b.ensureWorkers(ctx, e); err != nil {
			return err
		}
		for _, mode := range []streams.Mode{streams.ModeFastAck, streams.ModeBackground, streams.ModeSync} {
			if err := b.endToEnd(ctx, e, mode); err != nil {
				return err
			}
		}
		return b.pacedEndToEnd(ctx, e)
	})
	if len(e.workers) > 0 {
		b.res.WorkerPeakMB["sync+e2e"] = e.workersUsage().PeakMB
		e.stopWorkers()
	}
	return nil
}

func (b *bench) wants(phase string) bool {
	return len(b.opts.only) == 0 || slices.Contains(b.opts.only, phase)
}

// phase runs one phase if asked for, noting why it failed.
func (b *bench) phase(ctx context.Context, name string, f func(context.Context) error) {
	if !b.wants(name) || ctx.Err() != nil {
		return
	}
	fmt.Fprintf(progressOut, "phase %s…\n", name)
	if err := f(ctx); err != nil {
		b.res.Skipped[name] = err.Error()
		fmt.Fprintf(progressOut, "%s: failed (%v)\n", name, err)
	}
}

func (b *bench) n(base int) int { return max(1, int(float64(base)*b.scale)) }

func (b *bench) add(m Measurement) { b.res.Measurements = append(b.res.Measurements, m) }

func (b *bench) newEnv(ctx context.Context) (*env, error) {
	return b.freshEnv(ctx, true)
}

// newEnvWithout is a fresh pipeline without jetbox's streams, for Watermill.
func (b *bench) newEnvWithout(ctx context.Context) (*env, error) {
	return b.freshEnv(ctx, false)
}

func (b *bench) freshEnv(ctx context.Context, provision bool) (*env, error) {
	b.envs++
	e, err := newEnv(ctx, filepath.Join(b.work, fmt.Sprintf("env%d", b.envs)), envSpec{
		provision: provision, instant: b.opts.instantAPI, partitions: b.res.Partitions,
		syncInterval: b.opts.syncInterval, syncAlways: b.opts.syncAlways,
	})
	if e != nil {
		e.workerEnv = b.opts.workerEnv
	}
	return e, err
}

// buildJetbox builds the worker binary once, unless -jetbox named one.
func (b *bench) buildJetbox() error {
	if b.bin != "" {
		return nil
	}
	bin := filepath.Join(b.work, "jetbox")
	fmt.Fprintln(progressOut, "building jetbox…")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/jetbox-dev/jetbox/cmd/jetbox").CombinedOutput(); err != nil {
		return fmt.Errorf("build jetbox: %v\n%s", err, out)
	}
	b.bin = bin
	return nil
}

func writeResults(dir string, res *Results) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// The results are the machine's, not the project's: keep them out of git.
	if err := os.WriteFile(filepath.Join(dir, ".gitignore"), []byte("*\n"), 0o644); err != nil {
		return err
	}
	data, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), data, 0o644); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "charts.html"))
	if err != nil {
		return err
	}
	if err := writeCharts(f, res); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return writeChartFiles(dir, res)
}

// loadAverage is the 1, 5 and 15 minute load averages of the machine.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	return strings.Join(strings.Fields(string(data))[:3], " ")
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(2)
}

// partitionsOf is the partition count the run's outbox has: -partitions,
// or jetbox's default.
func partitionsOf(opts options) int {
	if opts.partitions > 0 {
		return opts.partitions
	}
	return streams.DefaultConfig().Partitions
}
