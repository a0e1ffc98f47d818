package producer

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetbox-dev/jetbox/streams"
)

// cpuTime is the process's user plus system CPU time. Reported per op next
// to ns/op, it is steadier than wall time on a shared machine, and counts the
// embedded server's work too.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/op")
}

// benchPayload makes a store body of about 512 bytes.
var benchPayload = json.RawMessage(`{"text":"` + strings.Repeat("m", 400) + `"}`)

func BenchmarkBackgroundStore(b *testing.B) {
	e := newEnv(b, Config{Mode: streams.ModeBackground})
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(int64(len(benchPayload)))
	b.ResetTimer()
	cpu := cpuTime(b)
	for range b.N {
		if _, err := e.p.Store(ctx, StoreRequest{Tenant: "bench", Coord: "0.1,0.2,0.3", Payload: benchPayload}); err != nil {
			b.Fatal(err)
		}
	}
	// Timed: the writes are done when they are stored.
	if err := e.p.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	reportCPU(b, cpu)
}

func BenchmarkFastAckStore(b *testing.B) {
	e := newEnv(b, Config{Mode: streams.ModeFastAck})
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(int64(len(benchPayload)))
	cpu := cpuTime(b)
	for b.Loop() {
		if _, err := e.p.Store(ctx, StoreRequest{Tenant: "bench", Coord: "0.1,0.2,0.3", Payload: benchPayload}); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu)
}

// rawBody is the store body the producer makes of benchPayload.
var rawBody, _ = json.Marshal(map[string]any{"coord": "0.1,0.2,0.3", "payload": benchPayload, "memory_type": "episodic"})

// rawMsg is write key in mode as a client without the producer publishes
// it: the contract's headers and rawBody (the publish adds Nats-Msg-Id).
func rawMsg(mode streams.Mode, key string) *nats.Msg {
	return &nats.Msg{Subject: "memory.bench." + string(mode) + ".store", Data: rawBody, Header: nats.Header{
		streams.HeaderIdempotencyKey: {key},
		streams.HeaderTenant:         {"bench"},
	}}
}

// rawAsyncJS is a JetStream context on e's connection with the producer's
// window of 4,096 publishes awaiting their acks.
func rawAsyncJS(b *testing.B, e *env) jetstream.JetStream {
	js, err := jetstream.New(e.nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		b.Fatal(err)
	}
	return js
}

// BenchmarkRawAsyncPublish is the baseline of BenchmarkBackgroundStore:
// nats.go async publish of the same message (contract headers and body),
// built once, without the producer.
func BenchmarkRawAsyncPublish(b *testing.B) {
	e := newEnv(b, Config{})
	js := rawAsyncJS(b, e)
	b.ReportAllocs()
	b.SetBytes(int64(len(benchPayload)))
	b.ResetTimer()
	cpu := cpuTime(b)
	for i := range b.N {
		key := strconv.Itoa(i)
		if _, err := js.PublishMsgAsync(rawMsg(streams.ModeBackground, key), jetstream.WithMsgID("bench:"+key)); err != nil {
			b.Fatal(err)
		}
	}
	<-js.PublishAsyncComplete()
	reportCPU(b, cpu)
}

// benchWrite is write i as cmd/bench makes it: one of 100 tenants, its own
// idempotency key and coord.
func benchWrite(i int) (StoreRequest, WriteOption) {
	return StoreRequest{Tenant: fmt.Sprintf("t%04d", i%100), Coord: fmt.Sprintf("%d,1,1", i), Payload: benchPayload},
		WithIdempotencyKey("r" + strconv.Itoa(i))
}

// BenchmarkFastAckStore64 is fast_ack from 64 concurrent callers sharing
// one producer.
func BenchmarkFastAckStore64(b *testing.B) {
	e := newEnv(b, Config{Mode: streams.ModeFastAck})
	cpu := store64(b, e)
	reportCPU(b, cpu)
}

// store64 makes b.N Store calls from 64 concurrent callers sharing e's
// producer, and returns the CPU time at the start.
func store64(b *testing.B, e *env) time.Duration {
	ctx := context.Background()
	return run64(b, func(i int) error {
		r, opt := benchWrite(i)
		_, err := e.p.Store(ctx, r, opt)
		return err
	})
}

// run64 calls call b.N times from 64 concurrent callers, with i counting
// from 1, and returns the CPU time at the start.
func run64(b *testing.B, call func(i int) error) time.Duration {
	var next atomic.Int64
	b.ReportAllocs()
	b.SetBytes(int64(len(benchPayload)))
	b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	cpu := cpuTime(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := call(int(next.Add(1))); err != nil {
				b.Error(err)
				return
			}
		}
	})
	return cpu
}

// BenchmarkBackgroundStore64 is background from 64 concurrent callers; the
// writes are done when Flush returns.
func BenchmarkBackgroundStore64(b *testing.B) {
	e := newEnv(b, Config{Mode: streams.ModeBackground})
	cpu := store64(b, e)
	if err := e.p.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	reportCPU(b, cpu)
}

// BenchmarkRawSyncPublish is the baseline of BenchmarkFastAckStore: one
// synchronous publish at a time of the same message.
func BenchmarkRawSyncPublish(b *testing.B) {
	e := newEnv(b, Config{})
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(int64(len(benchPayload)))
	cpu := cpuTime(b)
	i := 0
	for b.Loop() {
		i++
		key := strconv.Itoa(i)
		if _, err := e.js.PublishMsg(ctx, rawMsg(streams.ModeFastAck, key), jetstream.WithMsgID("bench:"+key)); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu)
}

// BenchmarkRawAsyncWait64 is the baseline of BenchmarkFastAckStore64: 64
// callers each publishing asynchronously and waiting for its own ack, the
// most a caller that must know its write is stored can pipeline.
func BenchmarkRawAsyncWait64(b *testing.B) {
	e := newEnv(b, Config{})
	js := rawAsyncJS(b, e)
	cpu := run64(b, func(i int) error {
		key := strconv.Itoa(i)
		f, err := js.PublishMsgAsync(rawMsg(streams.ModeFastAck, key), jetstream.WithMsgID("bench:"+key))
		if err != nil {
			return err
		}
		select {
		case <-f.Ok():
			return nil
		case err := <-f.Err():
			return err
		}
	})
	reportCPU(b, cpu)
}
