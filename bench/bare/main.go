// Command bare is the drain's floor: the least a Go program does to apply
// the outbox's backlog. It pulls each write from the outbox's partition
// consumers (the ones a worker binds, one Consume each), POSTs its body
// with the tenant's and idempotency headers to the memory API, and acks
// it once the memory API answered 2xx. It has none of a worker's policy:
// no decoding or checks, no order per memory, no fair slots, breakers,
// retries, parking, dead letters, metrics, traces or logs.
//
// The bench runs it on a backlog stored beforehand, in a process of its
// own, and reads the one JSON object it prints: the same figures as
// bench/watermill's drain-only run, timed from every consumer started.
// Writes that fail are counted and not acked; the run then never ends,
// and the bench's time-out says so.
//
// With -mode sync it is also the floor of a sync write: it publishes the
// outcome a producer waits for (applied, with the memory API's status and
// answer) before it acks, as a worker does. With -n 0 it runs until
// SIGTERM.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetbox-dev/jetbox/internal/procstat"
	"github.com/jetbox-dev/jetbox/streams"
)

// drain is what bare prints, under "drain", named as bench/watermill's.
type drain struct {
	N               int     `json:"n"`
	Secs            float64 `json:"seconds"`
	PerSec          float64 `json:"per_sec"`
	Errors          int64   `json:"errors"`
	ReadySecs       float64 `json:"ready_seconds"`
	AppliedAtReady  int64   `json:"applied_at_ready"`
	FromReadySecs   float64 `json:"from_ready_seconds"`
	FromReadyPerSec float64 `json:"from_ready_per_sec"`
	CPUSeconds      float64 `json:"cpu_seconds"`
	PeakRSS         int64   `json:"peak_rss_bytes"`
	// Syscalls is the read and write system calls (syscr + syscw of
	// /proc/self/io) from ready to the last write applied.
	Syscalls int64 `json:"rw_syscalls"`
}

func main() {
	natsURL := flag.String("nats", nats.DefaultURL, "the nats-server holding the outbox")
	api := flag.String("api", "", "the memory API's base URL")
	token := flag.String("token", "", "the memory API's bearer token")
	n := flag.Int("n", 0, "writes to apply, then exit; 0: until SIGTERM")
	partitions := flag.Int("partitions", streams.DefaultConfig().Partitions, "partitions of the mode")
	mode := flag.String("mode", string(streams.ModeBackground), "the mode whose consumers to drain")
	concurrency := flag.Int("concurrency", 64, "memory API calls at once")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	out, err := run(ctx, *natsURL, *api, *token, *n, *partitions, streams.Mode(*mode), *concurrency)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bare:", err)
		os.Exit(1)
	}
	_ = json.NewEncoder(os.Stdout).Encode(map[string]drain{"drain": out})
}

func run(ctx context.Context, natsURL, api, token string, n, partitions int, mode streams.Mode, concurrency int) (drain, error) {
	start := time.Now()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		return drain{}, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return drain{}, err
	}
	s, err := js.Stream(ctx, streams.DefaultConfig().Stream)
	if err != nil {
		return drain{}, err
	}
	// The transport straight, as a worker calls it: no client copying
	// headers for redirects.
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = concurrency
	defer transport.CloseIdleConnections()

	var applied, failed atomic.Int64
	done := make(chan struct{})
	slots := make(chan struct{}, concurrency)
	handle := func(m jetstream.Msg) {
		slots <- struct{}{}
		go func() {
			defer func() { <-slots }()
			replyTo := m.Headers().Get(streams.HeaderReplyTo)
			status, answer, err := post(ctx, transport, api+"/memories", token, m, replyTo != "")
			if err != nil {
				failed.Add(1)
				return
			}
			if replyTo != "" {
				reply(nc, m, replyTo, status, answer)
			}
			if m.Ack() == nil && applied.Add(1) == int64(n) {
				close(done)
			}
		}()
	}
	for p := range partitions {
		c, err := s.Consumer(ctx, streams.PartitionConsumerName(mode, p))
		if err != nil {
			return drain{}, err
		}
		cc, err := c.Consume(handle, jetstream.PullPriorityGroup(streams.OwnerGroup))
		if err != nil {
			return drain{}, err
		}
		defer cc.Stop()
	}
	ready, atReady := time.Now(), applied.Load()
	self := os.Getpid()
	used := procstat.Of(self)
	select {
	case <-done:
	case <-ctx.Done():
		if n > 0 {
			return drain{}, fmt.Errorf("%d of %d applied, %d failed: %w", applied.Load(), n, failed.Load(), ctx.Err())
		}
		n = int(applied.Load())
	}
	end := time.Now()
	total := procstat.Of(self)
	return drain{
		N: n, Secs: end.Sub(start).Seconds(), PerSec: float64(n) / end.Sub(start).Seconds(),
		Errors: failed.Load(), ReadySecs: ready.Sub(start).Seconds(), AppliedAtReady: atReady,
		FromReadySecs: end.Sub(ready).Seconds(), FromReadyPerSec: float64(int64(n)-atReady) / end.Sub(ready).Seconds(),
		CPUSeconds: (total.CPU - used.CPU).Seconds(), PeakRSS: int64(total.PeakMB * (1 << 20)), Syscalls: total.Syscalls - used.Syscalls,
	}, nil
}

// post makes the memory API call of one stored write, and returns the
// memory API's status, and its answer when keep is set.
func post(ctx context.Context, transport *http.Transport, url, token string, m jetstream.Msg, keep bool) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(m.Data()))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("X-Soma-Tenant", m.Headers().Get(streams.HeaderTenant))
	req.Header.Set("X-Idempotency-Key", m.Headers().Get(streams.HeaderIdempotencyKey))
	req.Header.Set("Content-Type", "application/json")
	resp, err := transport.RoundTrip(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var answer []byte
	if keep {
		answer, err = io.ReadAll(resp.Body)
	} else {
		_, err = io.Copy(io.Discard, resp.Body)
	}
	if err != nil {
		return 0, nil, err
	}
	if resp.StatusCode/100 != 2 {
		return 0, nil, fmt.Errorf("memory API answered %d", resp.StatusCode)
	}
	return resp.StatusCode, answer, nil
}

// reply publishes a sync write's outcome, as a worker does before it acks.
func reply(nc *nats.Conn, m jetstream.Msg, to string, status int, answer []byte) {
	out := nats.NewMsg(to)
	out.Header.Set(streams.HeaderOutcome, string(streams.OutcomeApplied))
	out.Header.Set(streams.HeaderHTTPStatus, strconv.Itoa(status))
	if meta, err := m.Metadata(); err == nil {
		out.Header.Set(streams.HeaderStreamSeq, strconv.FormatUint(meta.Sequence.Stream, 10))
	}
	out.Data = answer
	_ = nc.PublishMsg(out)
}
