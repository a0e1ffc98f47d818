package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetbox-dev/jetbox/producer"
	"github.com/jetbox-dev/jetbox/streams"
	"github.com/jetbox-dev/jetbox/tenancy"
)

// sweep is the concurrencies of the throughput-against-concurrency chart;
// the table reports the first and the last.
var sweep = []int{1, 4, 16, 64}

// asyncWindow is how many raw async publishes may await their ack: the
// producer's default MaxInFlight, so the two publish the same way.
const asyncWindow = 4096

// rawStream is the baselines' own stream: the outbox's settings (file
// storage, work queue, discard new, the same duplicate window) on subjects
// no jetbox consumer filters.
const (
	rawStream  = "BENCH_RAW"
	rawSubject = "bench"
)

func rawStreamConfig() jetstream.StreamConfig {
	c := streams.DefaultConfig().OutboxConfig()
	c.Name, c.Description = rawStream, "jetbox bench: raw NATS baseline"
	c.Subjects, c.SubjectTransform, c.MaxConsumers = []string{rawSubject + ".>"}, nil, -1
	return c
}

// write is what write i of a run is: its tenant, key, coord and a store
// body of exactly the configured size (when the coord leaves room).
type write struct {
	tenant, key, coord string
	payload            json.RawMessage
	body               []byte
}

func (b *bench) write(run, i, tenants int) write {
	w := write{tenant: fmt.Sprintf("t%04d", i%tenants), key: fmt.Sprintf("r%d-%d", run, i), coord: fmt.Sprintf("%d,%d,1", run, i)}
	const head, mid, tail = `{"coord":"`, `","payload":{"text":"`, `"},"memory_type":"episodic"}`
	pad := strings.Repeat("m", max(0, b.opts.size-len(head)-len(w.coord)-len(mid)-len(tail)))
	w.payload = json.RawMessage(`{"text":"` + pad + `"}`)
	w.body = []byte(head + w.coord + mid + pad + tail)
	return w
}

func (b *bench) nextRun() int { b.runs++; return b.runs }

// rawMsg is write w as a raw client would publish it: the contract's
// headers (Nats-Msg-Id as the Go producer makes it) and body.
func rawMsg(w write) (*nats.Msg, string) {
	token, _ := tenancy.Encode(w.tenant)
	m := &nats.Msg{Subject: rawSubject + "." + token + ".background.store", Data: w.body, Header: nats.Header{
		streams.HeaderIdempotencyKey: {w.key},
		streams.HeaderTenant:         {w.tenant},
	}}
	return m, token + ":" + w.key
}

func (b *bench) rawPhase(ctx context.Context, e *env) error {
	s, err := e.js.CreateOrUpdateStream(ctx, rawStreamConfig())
	if err != nil {
		return err
	}
	// Long enough (a few seconds at c=1) that a burst of the machine's
	// other work does not decide a ratio.
	n := b.n(100000)
	for _, c := range sweep {
		run := b.nextRun()
		elapsed, lat, err := load(ctx, fmt.Sprintf("raw sync publish c=%d", c), n, c, func(ctx context.Context, i int) error {
			m, id := rawMsg(b.write(run, i, 100))
			_, err := e.js.PublishMsg(ctx, m, jetstream.WithMsgID(id))
			return err
		}, nil)
		if err != nil {
			return err
		}
		b.add(newMeasurement("raw_sync", c, n, elapsed, lat))
		if err := s.Purge(ctx); err != nil {
			return err
		}
	}
	// Async last at c=1, so its writes are what the consume baseline reads.
	for _, c := range []int{64, 16, 4, 1} {
		m, err := b.rawAsync(ctx, e, n, c)
		if err != nil {
			return err
		}
		b.add(m)
		if c != 1 {
			if err := s.Purge(ctx); err != nil {
				return err
			}
		}
	}
	m, err := rawConsume(ctx, s, n)
	if err != nil {
		return err
	}
	b.add(m)
	return e.js.DeleteStream(ctx, rawStream)
}

// rawAsync publishes n writes with PublishMsgAsync from c callers sharing one
// JetStream context, at most asyncWindow awaiting their ack; the run ends
// when every ack came. A call's latency is how long PublishMsgAsync took.
func (b *bench) rawAsync(ctx context.Context, e *env, n, c int) (Measurement, error) {
	var failed atomic.Int64
	js, err := jetstream.New(e.nc,
		jetstream.WithPublishAsyncMaxPending(asyncWindow),
		jetstream.WithPublishAsyncErrHandler(func(jetstream.JetStream, *nats.Msg, error) { failed.Add(1) }))
	if err != nil {
		return Measurement{}, err
	}
	defer js.CleanupPublisher()
	run := b.nextRun()
	elapsed, lat, err := load(ctx, fmt.Sprintf("raw async publish c=%d", c), n, c, func(ctx context.Context, i int) error {
		m, id := rawMsg(b.write(run, i, 100))
		// Past the window the call waits for room, as the producer does.
		_, err := js.PublishMsgAsync(m, jetstream.WithMsgID(id), jetstream.WithStallWait(10*time.Second))
		return err
	}, func(ctx context.Context) error {
		select {
		case <-js.PublishAsyncComplete():
		case <-ctx.Done():
			return ctx.Err()
		}
		if f := failed.Load(); f > 0 {
			return fmt.Errorf("raw async publish: %d of %d publishes failed", f, n)
		}
		return nil
	})
	return newMeasurement("raw_async", c, n, elapsed, lat), err
}

// rawConsume reads the n writes in the stream with a durable pull consumer
// and acks each (explicit acks, as many in flight as one jetbox mode allows
// across its partitions).
func rawConsume(ctx context.Context, s jetstream.Stream, n int) (Measurement, error) {
	cfg := streams.DefaultConfig()
	cons, err := s.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable: "bench_raw", AckPolicy: jetstream.AckExplicitPolicy, AckWait: cfg.AckWait,
		MaxAckPending: cfg.MaxAckPending * cfg.Partitions,
	})
	if err != nil {
		return Measurement{}, err
	}
	bar := newProgress("raw durable consume + ack", n)
	defer bar.done()
	var got atomic.Int64
	done := make(chan struct{})
	start := time.Now()
	cc, err := cons.Consume(func(m jetstream.Msg) {
		if m.Ack() != nil {
			return
		}
		bar.add(1)
		if got.Add(1) == int64(n) {
			close(done)
		}
	})
	if err != nil {
		return Measurement{}, err
	}
	defer cc.Stop()
	select {
	case <-done:
	case <-ctx.Done():
		return Measurement{}, fmt.Errorf("raw consume: %d of %d: %w", got.Load(), n, ctx.Err())
	}
	return newMeasurement("raw_consume", 1, n, time.Since(start), nil), nil
}

// httpPhase is the memory API's own capacity: the request a worker sends,
// POSTed straight from c callers.
func (b *bench) httpPhase(ctx context.Context, e *env) error {
	client := newAPIClient(sweep[len(sweep)-1])
	defer client.CloseIdleConnections()
	n := b.n(10000) // the development memory API takes hundreds a second at c=1
	if b.opts.instantAPI {
		// 10,000 calls to an API that answers at once last a quarter of a
		// second at c=64, too short to be a steady capacity: runs of the
		// same build read 35,000 to 48,000/s.
		n = b.n(100000)
	}
	for _, c := range sweep {
		run := b.nextRun()
		elapsed, lat, err := load(ctx, fmt.Sprintf("direct HTTP POST c=%d", c), n, c, func(ctx context.Context, i int) error {
			return postMemory(ctx, client, e.apiURL, b.write(run, i, 100))
		}, nil)
		if err != nil {
			return err
		}
		b.add(newMeasurement("http", c, n, elapsed, lat))
	}
	return nil
}

// newAPIClient keeps twice as many idle connections as there are callers,
// so no call opens one once all are open.
func newAPIClient(callers int) *http.Client {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConns, transport.MaxIdleConnsPerHost = 2*callers, 2*callers
	return &http.Client{Transport: transport}
}

// postMemory sends write w as consumer/internal/memclient does.
func postMemory(ctx context.Context, client *http.Client, base string, w write) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/memories", bytes.NewReader(w.body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+apiToken)
	req.Header.Set("X-Soma-Tenant", w.tenant)
	req.Header.Set("X-Idempotency-Key", w.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("memory API answered %d", resp.StatusCode)
	}
	return nil
}

// producerRun makes n Store calls in mode from c callers sharing one
// producer. Background runs end when Flush returns: every write stored.
// starts, when not nil, gets each call's start time.
func (b *bench) producerRun(ctx context.Context, e *env, label string, mode streams.Mode, n, c, tenants int, starts []time.Time) (Measurement, []write, error) {
	var failed atomic.Int64
	p, err := producer.New(e.nc, producer.Config{Mode: mode, OnBackgroundError: func(producer.BackgroundFailure) { failed.Add(1) }})
	if err != nil {
		return Measurement{}, nil, err
	}
	run := b.nextRun()
	writes := make([]write, n)
	elapsed, lat, err := load(ctx, label, n, c, func(ctx context.Context, i int) error {
		w := b.write(run, i, tenants)
		writes[i] = w
		if starts != nil {
			starts[i] = time.Now()
		}
		_, err := p.Store(ctx, producer.StoreRequest{Tenant: w.tenant, Coord: w.coord, Payload: w.payload}, producer.WithIdempotencyKey(w.key))
		return err
	}, func(ctx context.Context) error {
		if mode != streams.ModeBackground {
			return nil
		}
		if err := p.Flush(ctx); err != nil {
			return err
		}
		if f := failed.Load(); f > 0 {
			return fmt.Errorf("%d of %d background writes failed", f, n)
		}
		return nil
	})
	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	err = errors.Join(err, p.Close(closeCtx))
	return newMeasurement(string(mode), c, n, elapsed, lat), writes, err
}

// producerPhase measures a mode's calls over the concurrency sweep. Without
// workers (fast_ack, background) the outbox is emptied after each run.
func (b *bench) producerPhase(ctx context.Context, e *env, mode streams.Mode) error {
	n := b.n(100000) // as many as the raw publishes they are compared with
	if mode == streams.ModeSync {
		n = b.n(5000) // a sync call waits for the memory API: hundreds a second at c=1
	}
	for _, c := range sweep {
		m, _, err := b.producerRun(ctx, e, fmt.Sprintf("jetbox %s c=%d", mode, c), mode, n, c, 100, nil)
		if err != nil {
			return err
		}
		b.add(m)
		if len(e.workers) == 0 {
			if err := e.purgeOutbox(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// ensureWorkers starts the workers once and waits until a sync write comes
// back applied.
func (b *bench) ensureWorkers(ctx context.Context, e *env) error {
	if len(e.workers) > 0 {
		return nil
	}
	if err := b.buildJetbox(); err != nil {
		return err
	}
	e.bin = b.bin
	if err := e.startWorkers(b.opts.workers); err != nil {
		return err
	}
	return waitApplying(ctx, e, "workers")
}

// waitApplying sends sync writes until one comes back applied: whoever
// consumes the sync partitions is running.
func waitApplying(ctx context.Context, e *env, who string) error {
	p, err := producer.New(e.nc, producer.Config{Mode: streams.ModeSync, SyncTimeout: 2 * time.Second})
	if err != nil {
		return err
	}
	defer p.Close(context.WithoutCancel(ctx))
	deadline := time.Now().Add(60 * time.Second)
	for i := 0; ; i++ {
		_, err := p.Store(ctx, producer.StoreRequest{Tenant: "warmup", Coord: fmt.Sprintf("%d,0,0", i), Payload: map[string]any{"warm": true}})
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s not applying writes: %w", who, err)
		}
	}
}

// bareSync measures sync writes from one caller with bench/bare as the
// worker: pull, POST, the outcome published, ack, and none of a worker's
// policy. It is the floor of a sync write on this machine, measured in the
// same run as jetbox's and before it. Workers left running by an earlier
// phase are stopped first; the sync phase starts them again.
func (b *bench) bareSync(ctx context.Context, e *env) error {
	bin, err := b.buildBare()
	if err != nil {
		return err
	}
	if len(e.workers) > 0 {
		e.stopWorkers()
		e.unpin(context.WithoutCancel(ctx), streams.ModeSync)
	}
	cmd := exec.Command(bin, "-nats", e.nats.ClientURL(), "-api", e.apiURL, "-token", apiToken, "-n", "0",
		"-partitions", strconv.Itoa(e.partitions), "-mode", string(streams.ModeSync), "-concurrency", strconv.Itoa(sweep[len(sweep)-1]))
	logFile, err := os.Create(filepath.Join(b.work, "bare-sync.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		e.unpin(context.WithoutCancel(ctx), streams.ModeSync)
	}()
	if err := waitApplying(ctx, e, "bench/bare"); err != nil {
		return err
	}
	m, _, err := b.producerRun(ctx, e, "bare sync c=1", streams.ModeSync, b.n(5000), 1, 100, nil)
	if err != nil {
		return err
	}
	m.Name = "bare_sync"
	b.add(m)
	return nil
}

// endToEnd publishes n writes in mode from 64 callers while the workers run,
// and times each from the call to the memory API applying it.
func (b *bench) endToEnd(ctx context.Context, e *env, mode streams.Mode) error {
	// A worker keeps lower modes to 1/16 of its slots for a second after a
	// higher mode was active: let the previous run's mode go quiet.
	time.Sleep(1100 * time.Millisecond)
	n, c := b.n(20000), sweep[len(sweep)-1]
	before, cpu := e.applied.count(), e.workersUsage().CPU
	starts := make([]time.Time, n)
	callM, writes, err := b.producerRun(ctx, e, fmt.Sprintf("end-to-end %s c=%d: publish", mode, c), mode, n, c, 100, starts)
	if err != nil {
		return err
	}
	bar := newProgressSince(fmt.Sprintf("end-to-end %s c=%d: applied", mode, c), n, starts[0])
	_, err = e.waitApplied(ctx, before+n, bar, before)
	bar.done()
	if err != nil {
		return err
	}
	cpu = e.workersUsage().CPU - cpu
	lat, last, err := e.appliedLatencies(writes, starts)
	if err != nil {
		return fmt.Errorf("end-to-end %s: %w", mode, err)
	}
	m := newMeasurement("e2e_"+string(mode), c, n, last.Sub(starts[0]), lat)
	m.Note = fmt.Sprintf("publish %.0f/s; worker CPU %.1f us per applied write", callM.PerSec, us(cpu)/float64(n))
	b.add(m)
	b.res.WorkerCPUus["e2e_"+string(mode)] = us(cpu) / float64(n)
	return nil
}

// pacedEndToEnd publishes fast_ack writes from one caller at a rate far
// below what the pipeline can carry, so publish→applied is the pipeline's
// own latency rather than the time spent queued behind a backlog.
func (b *bench) pacedEndToEnd(ctx context.Context, e *env) error {
	const rate = 200 // writes/s
	time.Sleep(1100 * time.Millisecond)
	n := max(10, b.n(2000))
	start := time.Now()
	paced := func(ctx context.Context, i int) error {
		select {
		case <-time.After(time.Until(start.Add(time.Duration(i) * time.Second / rate))):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	p, err := producer.New(e.nc, producer.Config{Mode: streams.ModeFastAck})
	if err != nil {
		return err
	}
	defer p.Close(context.WithoutCancel(ctx))
	before := e.applied.count()
	run := b.nextRun()
	writes, starts := make([]write, n), make([]time.Time, n)
	bar := newProgress(fmt.Sprintf("end-to-end fast_ack, 1 caller at %d/s", rate), n)
	for i := range n {
		if err := paced(ctx, i); err != nil {
			bar.done()
			return err
		}
		writes[i], starts[i] = b.write(run, i, 100), time.Now()
		if _, err := p.Store(ctx, producer.StoreRequest{Tenant: writes[i].tenant, Coord: writes[i].coord, Payload: writes[i].payload},
			producer.WithIdempotencyKey(writes[i].key)); err != nil {
			bar.done()
			return err
		}
		bar.add(1)
	}
	bar.done()
	if _, err := e.waitApplied(ctx, before+n, nil, 0); err != nil {
		return err
	}
	lat, last, err := e.appliedLatencies(writes, starts)
	if err != nil {
		return err
	}
	b.add(newMeasurement("e2e_paced_fast_ack", 1, n, last.Sub(starts[0]), lat))
	return nil
}

// appliedLatencies is, for each write, the time from its start to the
// memory API applying it, and when the last one was applied.
func (e *env) appliedLatencies(writes []write, starts []time.Time) ([]time.Duration, time.Time, error) {
	lat := make([]time.Duration, len(writes))
	var last time.Time
	for i, w := range writes {
		at, ok := e.applied.when(w.tenant, w.key)
		if !ok {
			return nil, last, fmt.Errorf("write %s of %s not applied", w.key, w.tenant)
		}
		lat[i] = at.Sub(starts[i])
		if at.After(last) {
			last = at
		}
	}
	return lat, last, nil
}
