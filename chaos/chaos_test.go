// Package chaos is jetbox's fault campaign: a 3-node JetStream cluster,
// three 'jetbox run' processes and the development memory API behind a
// fault-injecting proxy, driven with writes from many tenants while workers
// are killed, the stream leader is stopped, the memory API misbehaves and a
// producer process is restarted, once stopped and once killed. At the end it checks that nothing
// acknowledged was lost and no memory saw its writes out of order (a
// redelivery applied again after a later write counts), and prints one
// table with the writes the memory API applied twice: like SFM, it reads
// no idempotency key.
//
// It runs only when JETBOX_CHAOS says for how long: make chaos.
package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetbox-dev/jetbox/dlq"
	"github.com/jetbox-dev/jetbox/internal/clustertest"
	"github.com/jetbox-dev/jetbox/internal/memapi"
	"github.com/jetbox-dev/jetbox/internal/testrig"
	"github.com/jetbox-dev/jetbox/producer"
	"github.com/jetbox-dev/jetbox/streams"
)

const token = "chaos-token"

func TestChaos(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("JETBOX_CHAOS"))
	if err != nil || d <= 0 {
		t.Skip("set JETBOX_CHAOS to a duration (make chaos) to run the fault campaign")
	}
	bin := filepath.Join(t.TempDir(), "jetbox")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/jetbox").CombinedOutput(); err != nil {
		t.Fatalf("build jetbox: %v\n%s", err, out)
	}

	scfg := streams.DefaultConfig()
	scfg.Replicas, scfg.Partitions, scfg.AckWait, scfg.MemberTTL = 3, 8, 5*time.Second, 3*time.Second
	var faults *faultProxy
	rig := testrig.Start(t, testrig.Options{Cluster: true, Streams: scfg, Token: token, Wrap: func(h http.Handler) http.Handler {
		faults = newFaultProxy(h, time.Now())
		return faults
	}})
	c, nc, js, api, store := rig.Cluster, rig.NC, rig.JS, rig.API, rig.API.Store
	ctx, cancel := context.WithTimeout(context.Background(), d+5*time.Minute)
	defer cancel()

	env := []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"NATS_URL=" + c.URLs(), "SOMABRAIN_MEMORY_HTTP_ENDPOINT=" + api.URL, "SOMABRAIN_MEMORY_HTTP_TOKEN=" + token,
		"SOMABRAIN_OUTBOX_REPLICAS=3", "SOMABRAIN_OUTBOX_PARTITIONS=8", "SOMABRAIN_OUTBOX_ACK_WAIT=5s",
		"SOMABRAIN_OUTBOX_MEMBER_TTL=3s", "SOMABRAIN_OUTBOX_REQUEST_TIMEOUT=2s", "SOMABRAIN_MEMORY_RESET_INTERVAL=2",
		"SOMABRAIN_OUTBOX_BACKOFF_BASE=100ms", "SOMABRAIN_OUTBOX_BACKOFF_MAX=2s", "SOMABRAIN_OUTBOX_MAX_ATTEMPTS=30",
		"SOMABRAIN_OUTBOX_HTTP_LISTEN=off", "SOMABRAIN_OUTBOX_INGEST_LISTEN=off", "SOMABRAIN_OUTBOX_LOG_FORMAT=json", "SOMABRAIN_OUTBOX_CONCURRENCY=32",
	}
	// JETBOX_CHAOS_KEEP names a directory that gets the workers' and
	// producers' logs, at debug level, when an invariant breaks.
	keep := os.Getenv("JETBOX_CHAOS_KEEP")
	if keep != "" {
		env = append(env, "SOMABRAIN_OUTBOX_LOG_LEVEL=debug")
	}
	logs := t.TempDir()
	workers := make([]*testrig.Process, 3)
	for i := range workers {
		workers[i] = startWorker(t, bin, env, filepath.Join(logs, fmt.Sprintf("worker%d", i)))
	}
	defer func() {
		for _, w := range workers {
			w.Stop()
		}
	}()

	// Writers: each owns memories and writes to one at a time, waiting for
	// each acknowledgement, so the stream order of a memory's acknowledged
	// writes is the order they were acknowledged in. Most run here; some
	// run in a producer process that is restarted (see producerProcess).
	pconn, _ := c.Connect(t, nats.MaxReconnects(-1))
	p, err := producer.New(pconn, producer.Config{PublishTimeout: 3 * time.Second, SyncTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	led := &ledger{acked: map[string]ackedWrite{}, order: map[memory][]string{}}
	stopWriting := time.Now().Add(d)
	var writers sync.WaitGroup
	for i := range inProcessWriters {
		writers.Add(1)
		go func() {
			defer writers.Done()
			write(ctx, p, i, "w", stopWriting, led.record)
		}()
	}
	var procs producers
	procs.start(t, c.URLs(), led, stopWriting, logs)
	bg, err := producer.New(nc, producer.Config{Mode: streams.ModeBackground})
	if err != nil {
		t.Fatal(err)
	}
	var bgKeys []string
	writers.Add(1)
	go func() {
		defer writers.Done()
		for i := 0; time.Now().Before(stopWriting); i++ {
			key := fmt.Sprintf("bg-%d", i)
			if _, err := bg.Store(ctx, producer.StoreRequest{Tenant: fmt.Sprintf("tenant-%02d", i%tenants), Key: key, Payload: map[string]any{"i": i}}, producer.WithIdempotencyKey(key)); err == nil {
				bgKeys = append(bgKeys, key)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()

	// A hostile tenant publishes, as a raw client, what used to stop or
	// stall workers: writes nats.go would take for server statuses, forged
	// pin ids, reply subjects past the server's control line, ids and
	// namespaces of other tenants. Each must end dead-lettered as bad input
	// (forged pin ids on valid writes are applied) and hurt nobody.
	var hostileSent, hostileTried atomic.Int64
	writers.Add(1)
	go func() {
		defer writers.Done()
		for i := 0; time.Now().Before(stopWriting); i++ {
			m := hostileMessage(i)
			if m.Header.Get("Nats-Pin-Id") == "" {
				hostileTried.Add(1)
			}
			pubCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if _, err := js.PublishMsg(pubCtx, m); err == nil && m.Header.Get("Nats-Pin-Id") == "" {
				hostileSent.Add(1)
			}
			cancel()
			time.Sleep(250 * time.Millisecond)
		}
	}()

	// The faults.
	var kills, leaderStops, producerRestarts int
	chaosDone := make(chan struct{})
	go func() {
		defer close(chaosDone)
		kill := time.NewTicker(4 * time.Second)
		defer kill.Stop()
		leaderAt := time.Now().Add(d / 3)
		restarts := []time.Time{time.Now().Add(d / 2), time.Now().Add(3 * d / 4)}
		for time.Now().Before(stopWriting) {
			<-kill.C
			i := rand.IntN(len(workers))
			workers[i].Kill()
			workers[i] = startWorker(t, bin, env, filepath.Join(logs, fmt.Sprintf("worker%d", i)))
			kills++
			if !leaderAt.IsZero() && time.Now().After(leaderAt) {
				leaderAt = time.Time{}
				if leader := c.StreamLeader(clustertest.DefaultAccount, scfg.Stream); leader != nil {
					c.Stop(leader)
					leaderStops++
					time.Sleep(5 * time.Second)
					c.Restart(t, leader)
				}
			}
			if len(restarts) > 0 && time.Now().After(restarts[0]) {
				// The producer process is restarted: first stopped (SIGTERM),
				// when every call in flight must return an acknowledgement or
				// an error; the second time killed (SIGKILL), when calls in
				// flight are neither and count as not acknowledged.
				graceful := len(restarts) == 2
				restarts = restarts[1:]
				procs.restart(t, c.URLs(), led, stopWriting, logs, graceful)
				producerRestarts++
			}
		}
	}()
	writers.Wait()
	<-chaosDone
	procs.wait(t, led)
	if n := led.unanswered.Load(); n != 0 {
		t.Errorf("%d producer calls in flight at a graceful restart neither acknowledged nor failed", n)
	}
	if err := bg.Close(ctx); err != nil {
		t.Errorf("background producer close: %v", err)
	}
	faults.calm()

	// Everything acknowledged must end applied or dead-lettered. Each
	// memory's history is read once per look.
	dead := map[string]string{}
	histories := func() map[memory]map[string]int {
		out := map[memory]map[string]int{}
		for m := range led.order {
			counts := map[string]int{}
			for _, h := range store.History(m.tenant, m.coord) {
				counts[h.IdempotencyKey]++
			}
			out[m] = counts
		}
		return out
	}
	missing := func() (int, map[memory]map[string]int) {
		if list, err := dlq.List(ctx, js, scfg, dlq.Filter{}); err == nil {
			for _, dl := range list {
				dead[dl.IdempotencyKey] = string(dl.Class)
			}
		}
		h, n := histories(), 0
		for key, w := range led.acked {
			if _, ok := dead[key]; !ok && h[memory(w)][key] == 0 {
				n++
			}
		}
		for _, key := range bgKeys {
			if _, ok := dead[key]; !ok && !appliedKey(store, key) {
				n++
			}
		}
		return n, h
	}
	lost, hist := missing()
	for deadline := time.Now().Add(3 * time.Minute); lost > 0 && time.Now().Before(deadline); lost, hist = missing() {
		time.Sleep(2 * time.Second)
	}

	// The invariants.
	twice, outOfOrder := 0, 0
	for key, w := range led.acked {
		if n := hist[memory(w)][key]; n > 1 {
			twice++
		}
	}
	lateRepeats := 0
	for m, keys := range led.order {
		bad, late := orderViolations(store.History(m.tenant, m.coord), keys)
		lateRepeats += late
		if bad > 0 {
			outOfOrder += bad
			var applied []string
			for _, h := range store.History(m.tenant, m.coord) {
				seq, _ := storedAt.Load(h.IdempotencyKey)
				applied = append(applied, fmt.Sprintf("%s(seq %v, %s)", h.IdempotencyKey, seq, h.At.Format("15:04:05.000")))
			}
			t.Errorf("memory %s %s: %d writes applied out of order\n  applied      %v\n  acknowledged %v", m.tenant, m.coord, bad, applied, keys)
		}
	}
	if lost > 0 {
		t.Errorf("%d acknowledged writes neither applied nor dead-lettered", lost)
		reportLost(t, ctx, js, scfg, led, bgKeys, dead, hist, store)
	}
	byClass := map[string]int{}
	for _, class := range dead {
		byClass[class]++
	}
	breakers, parked := countLog(logs, `"breaker":"open"`), countLog(logs, "tenant parked")

	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	row := func(k string, v any) { fmt.Fprintf(tw, "  %s\t%v\n", k, v) }
	row("duration", d)
	row("writes acknowledged (sync, fast_ack)", len(led.acked))
	row("writes acknowledged (background, flushed)", len(bgKeys))
	row("writes not acknowledged (the call failed)", led.failed.Load())
	total := uint64(0)
	for _, ts := range store.Stats().Tenants {
		total += ts.Applied
	}
	row("applied (all writes, counted by the memory API)", total)
	row("applied more than once (a redelivery; the memory API reads no idempotency key)", twice)
	row("lost", lost)
	row("order violations", outOfOrder)
	row("late repeats (an applied write applied again after a later one)", lateRepeats)
	for class, n := range byClass {
		row("dead-lettered: "+class, n)
	}
	for kind, n := range faults.counts() {
		row("memory API fault: "+kind, n)
	}
	row("hostile messages published (to be dead-lettered)", hostileSent.Load())
	row("breaker openings", breakers)
	row("tenants parked", parked)
	row("workers SIGKILLed", kills)
	row("stream leader stopped", leaderStops)
	row("producer process restarts (SIGTERM, then SIGKILL)", producerRestarts)
	row("producer calls cut by the SIGKILL (outcome unknown)", led.cut.Load())
	tw.Flush()
	t.Logf("chaos campaign:\n%s", b.String())
	// A write applied twice is harmless only when nothing came between:
	// a repeat after a later write is counted as out of order.
	if lost != 0 || outOfOrder != 0 {
		if keep != "" {
			if err := os.CopyFS(filepath.Join(keep, filepath.Base(logs)), os.DirFS(logs)); err != nil {
				t.Logf("keep the logs: %v", err)
			} else {
				t.Logf("logs kept in %s", filepath.Join(keep, filepath.Base(logs)))
			}
		}
		t.Fatalf("invariants broken: %d lost, %d out of order", lost, outOfOrder)
	}
	// A publish that timed out may still have been stored.
	if n := int64(byClass[string(streams.ClassBadInput)]); n < hostileSent.Load() || n > hostileTried.Load() {
		t.Errorf("%d writes dead-lettered as bad input, want the %d hostile ones acknowledged (at most the %d published)", n, hostileSent.Load(), hostileTried.Load())
	}
}

// hostileMessage is the i-th message of the hostile tenant's mix.
func hostileMessage(i int) *nats.Msg {
	modes := []string{"sync", "fast_ack", "background"}
	m := nats.NewMsg("memory.mallory." + modes[i%3] + ".store")
	m.Header.Set("Soma-Idempotency-Key", fmt.Sprintf("hostile-%d", i))
	body := fmt.Sprintf(`{"coord":"%d,9,9","payload":{}}`, i)
	switch i % 6 {
	case 0: // ended the partition's pull loop
		m.Header.Set("Status", "409")
		m.Header.Set("Description", "Consumer Deleted")
		body = ""
	case 1: // swallowed and redelivered forever
		m.Header.Set("Status", "408")
		body = ""
	case 2: // stalled the partition's owner; valid, so applied
		m.Header.Set("Nats-Pin-Id", "forged")
	case 3: // closed the worker's connection
		m.Subject = "memory.mallory.sync.store"
		m.Header.Set("Soma-Reply-To", "_INBOX."+strings.Repeat("r", 5000))
	case 4: // would make tenant-00's write with this id vanish
		m.Header.Set("Nats-Msg-Id", fmt.Sprintf("tenant-00:hostile-%d", i))
	case 5: // would write under another tenant's namespace
		m.Header.Set("Soma-Namespace", "memory:tenant-00")
	}
	m.Data = []byte(body)
	return m
}

// reportLost says which acknowledged writes are missing and where the
// outbox's writes are: what a lost write needs to be traced.
func reportLost(t *testing.T, ctx context.Context, js jetstream.JetStream, scfg streams.Config, led *ledger, bgKeys []string, dead map[string]string, hist map[memory]map[string]int, store *memapi.Store) {
	shown := 0
	for key, w := range led.acked {
		if _, ok := dead[key]; !ok && hist[memory(w)][key] == 0 && shown < 20 {
			shown++
			var applied []string
			for _, h := range store.History(w.tenant, w.coord) {
				applied = append(applied, h.IdempotencyKey)
			}
			t.Logf("lost: %s (%s %s); the memory's history: %v; acknowledged: %v", key, w.tenant, w.coord, applied, led.order[memory(w)])
		}
	}
	for _, key := range bgKeys {
		if _, ok := dead[key]; !ok && !appliedKey(store, key) && shown < 20 {
			shown++
			t.Logf("lost: background write %s", key)
		}
	}
	for _, name := range []string{scfg.Stream, scfg.ParkingStream} {
		if s, err := js.Stream(ctx, name); err == nil {
			info, _ := s.Info(ctx)
			t.Logf("stream %s: %d messages, first seq %d, last seq %d", name, info.State.Msgs, info.State.FirstSeq, info.State.LastSeq)
			for c := range s.ListConsumers(ctx).Info() {
				if c.NumPending > 0 || c.NumAckPending > 0 || c.NumRedelivered > 0 {
					t.Logf("  consumer %s: %d pending, %d ack pending, %d redelivered, pin %v", c.Name, c.NumPending, c.NumAckPending, c.NumRedelivered, c.PriorityGroups)
				}
			}
		}
	}
	if kv, err := js.KeyValue(ctx, scfg.ParkingBucket); err == nil {
		if keys, err := kv.Keys(ctx); err == nil {
			t.Logf("parked: %v", keys)
		}
	}
}

type memory struct{ tenant, coord string }

type ackedWrite struct{ tenant, coord string }

// inProcessWriters write from the test's own process; processWriters from
// the producer process, writers numbered from inProcessWriters on.
const inProcessWriters, processWriters, tenants = 40, 8, 40

// ledger is what the writers were told.
type ledger struct {
	mu     sync.Mutex
	acked  map[string]ackedWrite // by idempotency key
	order  map[memory][]string   // each memory's acknowledged writes, in order
	failed atomic.Int64
	// unanswered counts calls in flight when the producer process was
	// stopped gracefully that never returned; cut, those it was killed in.
	unanswered, cut atomic.Int64
}

// record takes one event of a writer: start, ack or fail of a call.
func (l *ledger) record(event, key, tenant, coord string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch event {
	case "ack":
		m := memory{tenant, coord}
		l.acked[key] = ackedWrite{tenant, coord}
		l.order[m] = append(l.order[m], key)
	case "fail":
		l.failed.Add(1)
	}
}

// storedAt is the outbox sequence of each write acknowledged in this
// process, by key, for the report of an order violation.
var storedAt sync.Map

// write is one writer: three memories of its tenant, written in turn until
// until, each call reported to report. Keys start with prefix, which
// differs between producer processes.
func write(ctx context.Context, p *producer.Producer, writer int, prefix string, until time.Time, report func(event, key, tenant, coord string)) {
	tenant := fmt.Sprintf("tenant-%02d", writer%tenants)
	for n := 0; time.Now().Before(until) && ctx.Err() == nil; n++ {
		// Order is kept per mode (the modes are separate consumer groups),
		// so each memory is written in one mode: the first in sync, the
		// others in fast_ack.
		coord := fmt.Sprintf("%d,%d,0", writer, n%3)
		key := fmt.Sprintf("%s%d-%d", prefix, writer, n)
		mode := streams.ModeFastAck
		if n%3 == 0 {
			mode = streams.ModeSync
		}
		report("start", key, tenant, coord)
		// A call is not cut short by the writer's own context: a stopping
		// producer process lets calls in flight return.
		callCtx := context.WithoutCancel(ctx)
		var res producer.Result
		var err error
		if (n/3)%3 == 1 { // store, delete, store, … on each memory
			res, err = p.Delete(callCtx, producer.DeleteRequest{Tenant: tenant, Coord: coord}, producer.WithMode(mode), producer.WithIdempotencyKey(key))
		} else {
			res, err = p.Store(callCtx, producer.StoreRequest{Tenant: tenant, Coord: coord, Payload: map[string]any{"n": n}}, producer.WithMode(mode), producer.WithIdempotencyKey(key))
		}
		if err != nil && !errors.Is(err, producer.ErrQueued) {
			report("fail", key, tenant, coord)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if res.Sequence > 0 {
			storedAt.Store(key, res.Sequence)
		}
		report("ack", key, tenant, coord)
		time.Sleep(time.Duration(rand.IntN(40)) * time.Millisecond)
	}
}

func countKey(hist []memapi.HistoryEntry, key string) int {
	n := 0
	for _, h := range hist {
		if h.IdempotencyKey == key {
			n++
		}
	}
	return n
}

// appliedKey finds a background write, whose coord the producer derived.
func appliedKey(store *memapi.Store, key string) bool {
	var i int
	fmt.Sscanf(key, "bg-%d", &i)
	coord := producer.CoordFromKey(producer.DefaultUniverse, key)
	return countKey(store.History(fmt.Sprintf("tenant-%02d", i%40), coord), key) > 0
}

// orderViolations counts the acknowledged writes the memory API applied
// after a write acknowledged later.
// orderViolations counts the writes of a memory whose first application
// came after that of a write acknowledged after them. A write applied
// again after a later one (a late repeat: the memory API reads no
// idempotency key, docs/RELIABILITY.md) is counted apart, in late.
func orderViolations(hist []memapi.HistoryEntry, acked []string) (bad, late int) {
	rank := map[string]int{}
	for i, k := range acked {
		rank[k] = i
	}
	seen := map[string]bool{}
	last := -1
	for _, h := range hist {
		r, ok := rank[h.IdempotencyKey]
		if !ok {
			continue // a write whose call failed but which was stored anyway
		}
		if seen[h.IdempotencyKey] {
			if r < last {
				late++
			}
			continue
		}
		seen[h.IdempotencyKey] = true
		if r < last {
			bad++
			continue
		}
		last = r
	}
	return bad, late
}

func countLog(dir, substr string) int {
	n := 0
	files, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, f := range files {
		data, _ := os.ReadFile(f)
		n += strings.Count(string(data), substr)
	}
	return n
}

var runs atomic.Int64

// startWorker starts a 'jetbox run' process, stopped by its PID, its log
// in a new file under logPrefix.
func startWorker(t *testing.T, bin string, env []string, logPrefix string) *testrig.Process {
	t.Helper()
	p, err := testrig.StartProcess(bin, []string{"run"}, env, fmt.Sprintf("%s-%d.log", logPrefix, runs.Add(1)))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// faultProxy stands in front of the memory API and misbehaves: 503s, 429s
// with Retry-After, answers slower than the workers wait, connections
// closed after the write was applied, slow answers, and some tenants fully
// down for longer than the breaker's reset interval.
type faultProxy struct {
	next  http.Handler
	start time.Time
	quiet atomic.Bool
	mu    sync.Mutex
	n     map[string]int
}

func newFaultProxy(next http.Handler, start time.Time) *faultProxy {
	return &faultProxy{next: next, start: start, n: map[string]int{}}
}

func (f *faultProxy) calm() { f.quiet.Store(true) }

func (f *faultProxy) count(kind string) {
	f.mu.Lock()
	f.n[kind]++
	f.mu.Unlock()
}

func (f *faultProxy) counts() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int{}
	for k, v := range f.n {
		out[k] = v
	}
	return out
}

func (f *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tenant := r.Header.Get("X-Soma-Tenant")
	if f.quiet.Load() || r.URL.Path == "/healthz" {
		f.next.ServeHTTP(w, r)
		return
	}
	// tenant-00 .. tenant-02 are down for 6 s out of every 12.
	if strings.HasPrefix(tenant, "tenant-0") && tenant <= "tenant-02" && time.Since(f.start)%(12*time.Second) < 6*time.Second {
		f.count("tenant down (503)")
		http.Error(w, `{"error":"down"}`, http.StatusServiceUnavailable)
		return
	}
	switch x := rand.IntN(100); {
	case x < 4:
		f.count("503")
		http.Error(w, `{"error":"unavailable"}`, http.StatusServiceUnavailable)
	case x < 7:
		f.count("429 with Retry-After")
		w.Header().Set("Retry-After", "1")
		http.Error(w, `{"error":"slow down"}`, http.StatusTooManyRequests)
	case x < 9:
		f.count("timeout (answer after 2.5 s)")
		time.Sleep(2500 * time.Millisecond)
		f.next.ServeHTTP(w, r)
	case x < 11:
		f.count("connection closed after applying")
		f.next.ServeHTTP(httptest.NewRecorder(), r)
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
			}
		}
	case x < 16:
		f.count("slow (300 ms)")
		time.Sleep(300 * time.Millisecond)
		f.next.ServeHTTP(w, r)
	default:
		f.next.ServeHTTP(w, r)
	}
}
