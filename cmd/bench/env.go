package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetbox-dev/jetbox/internal/memapi"
	"github.com/jetbox-dev/jetbox/internal/procstat"
	"github.com/jetbox-dev/jetbox/internal/testrig"
	"github.com/jetbox-dev/jetbox/streams"
)

// apiToken is the bearer token of the bench's memory API: workers, the
// direct HTTP baseline and Watermill all pay for the check.
const apiToken = "bench-token"

// env is one fresh pipeline on loopback (internal/testrig): an embedded
// nats-server (file storage, one replica), the development memory API with
// no added delay, served here behind a handler that notes when each write
// was applied, and jetbox workers started as processes of their own.
type env struct {
	rig     *testrig.Env
	dir     string
	bin     string // jetbox binary, for workers
	nats    *server.Server
	nc      *nats.Conn
	js      jetstream.JetStream
	store   *memapi.Store // nil with the instant API
	applied *appliedLog
	apiURL  string
	workers []*workerProc
	// profiles makes workers serve /debug/pprof on a loopback port.
	profiles bool
	// partitions per mode of jetbox's outbox, for the streams and the workers.
	partitions int
	workerEnv  []string // added to every worker's settings
}

// envSpec is what a fresh pipeline is made of.
type envSpec struct {
	provision  bool // jetbox's streams
	instant    bool // instantAPI instead of the development memory API
	partitions int  // per mode, of jetbox's outbox
	// How often the nats-server flushes its files to disk (0: its default),
	// or after every write.
	syncInterval time.Duration
	syncAlways   bool
}

// newEnv starts a fresh pipeline in dir.
func newEnv(ctx context.Context, dir string, spec envSpec) (*env, error) {
	e := &env{dir: dir, applied: newAppliedLog(), partitions: spec.partitions}
	o := testrig.EnvOptions{Dir: dir, SyncInterval: spec.syncInterval, SyncAlways: spec.syncAlways,
		MemoryAPI: testrig.MemoryAPIOptions{Store: memapi.Options{Token: apiToken}, Wrap: e.applied.wrap}}
	if spec.provision {
		cfg := streams.DefaultConfig()
		cfg.Partitions = spec.partitions
		o.Streams = &cfg
	}
	if spec.instant {
		o.MemoryAPI.Handler = instantAPI()
	}
	rig, err := testrig.StartEnv(ctx, o)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	e.rig, e.nats, e.nc, e.js, e.store, e.apiURL = rig, rig.Server, rig.NC, rig.JS, rig.API.Store, rig.API.URL
	return e, nil
}

func (e *env) close() {
	for _, w := range e.workers {
		w.proc.Stop()
	}
	e.workers = nil
	e.rig.Close()
	os.RemoveAll(e.dir)
}

// purgeOutbox empties the outbox between producer runs without workers,
// so each run starts from the same stream state.
func (e *env) purgeOutbox(ctx context.Context) error {
	s, err := e.js.Stream(ctx, streams.DefaultConfig().Stream)
	if err != nil {
		return err
	}
	return s.Purge(ctx)
}

// waitApplied waits until the applied log holds want writes, showing on
// bar (when not nil) how many more than base it holds.
func (e *env) waitApplied(ctx context.Context, want int, bar *progress, base int) (time.Time, error) {
	for {
		n := e.applied.count()
		if bar != nil {
			bar.set(n - base)
		}
		if n >= want {
			return time.Now(), nil
		}
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("%d of %d writes applied: %w", n, want, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// instantAPI is a memory API that answers at once: it checks the token,
// reads the body and answers 200 without storing anything, so that what is
// measured is the pipeline, not the development memory API's disk.
func instantAPI() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+apiToken {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`)
	})
}

// appliedLog notes when the memory API first answered 2xx to a write
// (keyed by tenant and idempotency key): the moment it was applied.
type appliedLog struct {
	mu sync.Mutex
	at map[string]time.Time
	n  atomic.Int64
}

func newAppliedLog() *appliedLog { return &appliedLog{at: map[string]time.Time{}} }

func appliedKey(tenant, idempotencyKey string) string { return tenant + "\x00" + idempotencyKey }

func (l *appliedLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r)
		if r.Method != http.MethodPost || sw.status/100 != 2 {
			return
		}
		key := appliedKey(r.Header.Get("X-Soma-Tenant"), r.Header.Get("X-Idempotency-Key"))
		now := time.Now()
		l.mu.Lock()
		if _, seen := l.at[key]; !seen {
			l.at[key] = now
			l.n.Add(1)
		}
		l.mu.Unlock()
	})
}

func (l *appliedLog) count() int { return int(l.n.Load()) }

// reset forgets every write applied so far.
func (l *appliedLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	clear(l.at)
	l.n.Store(0)
}

func (l *appliedLog) when(tenant, idempotencyKey string) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t, ok := l.at[appliedKey(tenant, idempotencyKey)]
	return t, ok
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	w.status = status
	w.ResponseWriter.WriteHeader(status)
}

// workerProc is a 'jetbox run' started here.
type workerProc struct {
	proc *testrig.Process
	ops  string // host:port of its ops HTTP listener: /readyz, and profiles when asked for
	log  string
}

func (e *env) startWorkers(n int) error {
	for range n {
		if err := e.startWorker(); err != nil {
			return err
		}
	}
	return nil
}

func (e *env) startWorker() error {
	if e.bin == "" {
		return errors.New("no jetbox binary to run workers with")
	}
	settings := []string{
		"SOMABRAIN_OUTBOX_LOG_LEVEL=warn", "SOMABRAIN_OUTBOX_PARTITIONS=" + strconv.Itoa(e.partitions),
	}
	ops, err := freeLoopbackAddr()
	if err != nil {
		return err
	}
	settings = append(settings, "SOMABRAIN_OUTBOX_HTTP_LISTEN="+ops)
	if e.profiles {
		settings = append(settings, "SOMABRAIN_OUTBOX_PPROF=true")
	}
	settings = append(settings, e.workerEnv...)
	log := filepath.Join(e.dir, fmt.Sprintf("worker%d.log", len(e.workers)))
	proc, err := e.rig.StartJetbox(e.bin, log, settings...)
	if err != nil {
		return err
	}
	e.workers = append(e.workers, &workerProc{proc: proc, ops: ops, log: log})
	return nil
}

// stopWorkers stops every worker with SIGTERM and returns their usage.
func (e *env) stopWorkers() usage {
	var u usage
	for _, w := range e.workers {
		w.proc.Stop()
		u = u.Plus(w.exitUsage())
	}
	e.workers = nil
	return u
}

// workersUsage is what the running workers have used so far.
func (e *env) workersUsage() usage {
	var u usage
	for _, w := range e.workers {
		u = u.Plus(w.usage())
	}
	return u
}

// usage is CPU time, peak resident memory and read and write system calls
// of worker processes; peak memory adds up across workers.
type usage = procstat.Usage

// usage reads what a running worker has used so far.
func (w *workerProc) usage() usage { return procstat.Of(w.proc.Pid()) }

// exitUsage is the CPU time of a worker that has exited, from its rusage.
// Its ru_maxrss is no measure of the worker: Go starts a child with
// vfork, and at exec Linux records the high-water mark of the memory it
// shared until then, the bench process's, which holds the nats-server.
// Peak memory is read from /proc while the worker runs (usage).
func (w *workerProc) exitUsage() usage {
	st := w.proc.Cmd.ProcessState
	if st == nil {
		return usage{}
	}
	return usage{CPU: st.UserTime() + st.SystemTime()}
}

// freeLoopbackAddr is a 127.0.0.1 port nothing listens on at the moment.
func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// profileWorker saves a CPU profile of the first worker, taken over the
// given time, into dir/drain-worker.pprof, its heap half way through into
// dir/drain-worker-heap.pprof, then its allocations so far into
// dir/drain-worker-allocs.pprof.
func (e *env) profileWorker(ctx context.Context, seconds int, dir string) error {
	if len(e.workers) == 0 || !e.profiles {
		return errors.New("no worker serving profiles")
	}
	base := "http://" + e.workers[0].ops + "/debug/pprof/"
	heap := make(chan error, 1)
	go func() {
		select {
		case <-time.After(time.Duration(seconds) * time.Second / 2):
			err := download(ctx, base+"heap", filepath.Join(dir, "drain-worker-heap.pprof"))
			if err == nil {
				err = download(ctx, base+"heap?debug=1", filepath.Join(dir, "drain-worker-heap.txt"))
			}
			if err == nil {
				err = download(ctx, base+"goroutine?debug=1", filepath.Join(dir, "drain-worker-goroutines.txt"))
			}
			heap <- err
		case <-ctx.Done():
			heap <- ctx.Err()
		}
	}()
	if err := download(ctx, fmt.Sprintf("%sprofile?seconds=%d", base, seconds), filepath.Join(dir, "drain-worker.pprof")); err != nil {
		return err
	}
	if err := <-heap; err != nil {
		return err
	}
	if err := download(ctx, base+"allocs", filepath.Join(dir, "drain-worker-allocs.pprof")); err != nil {
		return err
	}
	return download(ctx, base+"mutex", filepath.Join(dir, "drain-worker-mutex.pprof"))
}

// download saves what a GET of url answers into path.
func download(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
