package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetbox-dev/jetbox/internal/memapi"
	"github.com/jetbox-dev/jetbox/internal/testrig"
	"github.com/jetbox-dev/jetbox/streams"
)

// runner holds what every scenario shares.
type runner struct {
	bin   string
	work  string
	scale float64
	keep  bool // keep data directories and worker logs
	// windows, when set, prints the steady runs' delivery latency by
	// publish time in windows this wide.
	windows time.Duration
	seq     int
}

func (r *runner) n(base int) int { return max(1, int(float64(base)*r.scale)) }

// env is one fresh jetbox (internal/testrig): an embedded nats-server,
// the development memory API in this process, and worker processes
// started on demand.
type env struct {
	r       *runner
	rig     *testrig.Env
	dir     string
	nats    *server.Server
	nc      *nats.Conn
	js      jetstream.JetStream
	store   *memapi.Store
	workers []*workerProc
	streams streams.Config // as provisioned
	timed   *timedAPI      // the memory API when envOptions.timed; store is nil then
}

// envOptions vary a fresh env; the zero value is what newEnv makes.
type envOptions struct {
	apiDelay time.Duration            // added to every memory API data request
	streams  func(c *streams.Config)  // adjusts streams.DefaultConfig() before provisioning; nil = as is
	fail     func(tenant string) bool // memapi.Options.Fail: tenants whose requests get 503; nil = none
	// timed serves a timedAPI (apiDelay, fail) instead of the development
	// memory API: it answers after exactly apiDelay and stores nothing.
	timed bool
}

func (r *runner) newEnv(ctx context.Context, apiDelay time.Duration) (*env, error) {
	return r.newEnvWith(ctx, envOptions{apiDelay: apiDelay})
}

// newEnvWith is newEnv with a modified stream layout or a failing memory
// API. Workers must be started with the matching settings (for example
// SOMABRAIN_OUTBOX_ACK_WAIT for streams.Config.AckWait), since each
// provisions the outbox again from its own environment.
func (r *runner) newEnvWith(ctx context.Context, o envOptions) (*env, error) {
	r.seq++
	e := &env{r: r, dir: filepath.Join(r.work, fmt.Sprintf("env%d", r.seq)), streams: streams.DefaultConfig()}
	// No tenant quota (here and in startWorker): the isolation scenario
	// preloads one tenant's 100,000 writes before any worker runs.
	e.streams.TenantMaxPending = -1
	if o.streams != nil {
		o.streams(&e.streams)
	}
	api := testrig.MemoryAPIOptions{Store: memapi.Options{Delay: o.apiDelay, Fail: o.fail}}
	if o.timed {
		e.timed = newTimedAPI(o.apiDelay, o.fail)
		api = testrig.MemoryAPIOptions{Handler: e.timed}
	}
	rig, err := testrig.StartEnv(ctx, testrig.EnvOptions{Dir: e.dir, Streams: &e.streams, MemoryAPI: api})
	if err != nil {
		if !r.keep {
			os.RemoveAll(e.dir)
		}
		return nil, err
	}
	e.rig, e.nats, e.nc, e.js, e.store = rig, rig.Server, rig.NC, rig.JS, rig.API.Store
	return e, nil
}

func (e *env) close() {
	for _, w := range e.workers {
		w.proc.Stop()
	}
	e.rig.Close()
	if e.r.keep {
		fmt.Fprintln(os.Stderr, "kept", e.dir)
		return
	}
	os.RemoveAll(e.dir)
}

// workerProc is a 'jetbox run' started here.
type workerProc struct {
	proc     *testrig.Process
	extraEnv []string // what it was started with, for a restart
}

func (e *env) startWorker(extraEnv ...string) (*workerProc, error) {
	settings := append([]string{
		"SOMABRAIN_OUTBOX_HTTP_LISTEN=off", "SOMABRAIN_OUTBOX_LOG_LEVEL=info", "SOMABRAIN_OUTBOX_TENANT_MAX_PENDING=-1",
	}, extraEnv...)
	proc, err := e.rig.StartJetbox(e.r.bin, filepath.Join(e.dir, fmt.Sprintf("worker%d.log", len(e.workers))), settings...)
	if err != nil {
		return nil, err
	}
	w := &workerProc{proc: proc, extraEnv: extraEnv}
	e.workers = append(e.workers, w)
	return w, nil
}

// restartWorker kills w if it still runs (a crash, with no draining and
// no acks flushed) and starts a new worker with the same settings (and a
// log file of its own).
func (e *env) restartWorker(w *workerProc) (*workerProc, error) {
	w.proc.Kill()
	return e.startWorker(w.extraEnv...)
}

// rssMB reads the process's resident memory from /proc.
func (w *workerProc) rssMB() float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", w.proc.Pid()))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

func (e *env) applied() uint64 {
	if e.timed != nil {
		return e.timed.applied()
	}
	return e.rig.API.Totals().Distinct()
}

// waitApplied waits until n writes are applied and returns when that was.
func (e *env) waitApplied(ctx context.Context, n uint64, tick func()) (time.Time, error) {
	for {
		if e.applied() >= n {
			return time.Now(), nil
		}
		if tick != nil {
			tick()
		}
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("%w: %d of %d writes applied", errTimeout, e.applied(), n)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
