package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
)

// publishResult is the publisher's throughput and the latency of one
// Publish call, which returns once JetStream has stored the message.
type publishResult struct {
	N      int     `json:"n"`
	Errors int     `json:"errors"`
	Secs   float64 `json:"seconds"`
	PerSec float64 `json:"per_sec"`
	P50us  float64 `json:"p50_us"`
	P99us  float64 `json:"p99_us"`
	P999us float64 `json:"p999_us"`
}

// publishAttempts is how many times a message is published before the run
// fails. A retry is safe: Nats-Msg-Id makes the stream store it once.
const publishAttempts = 3

// publishAll publishes the run's n messages from s.Publishers goroutines.
func publishAll(ctx context.Context, s settings, logger watermill.LoggerAdapter) (publishResult, error) {
	pub, err := newPublisher(s, logger)
	if err != nil {
		return publishResult{}, fmt.Errorf("watermill publisher: %w", err)
	}
	defer pub.Close()

	messages := newStoreMessages(s)
	latencies := make([]time.Duration, s.N)
	var (
		next      atomic.Int64
		published atomic.Int64
		failures  atomic.Int64
		wg        sync.WaitGroup
		once      sync.Once
		firstErr  error
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	for range s.Publishers {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= s.N {
					return
				}
				msg := messages.message(i)
				var err error
				for range publishAttempts {
					began := time.Now()
					msg.Metadata.Set(metaPublishedAt, strconv.FormatInt(began.UnixNano(), 10))
					if err = pub.Publish(topic, msg); err == nil {
						latencies[i] = time.Since(began)
						published.Add(1)
						break
					}
					failures.Add(1)
				}
				if err != nil {
					once.Do(func() { firstErr = fmt.Errorf("publish message %d: %w", i, err) })
					cancel()
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr == nil && ctx.Err() != nil {
		firstErr = fmt.Errorf("%d of %d messages published: %w", published.Load(), s.N, ctx.Err())
	}
	if firstErr != nil {
		return publishResult{}, firstErr
	}
	q := quantiles(latencies, 0.50, 0.99, 0.999)
	return publishResult{
		N:      s.N,
		Errors: int(failures.Load()),
		Secs:   elapsed.Seconds(),
		PerSec: float64(s.N) / elapsed.Seconds(),
		P50us:  micros(q[0]),
		P99us:  micros(q[1]),
		P999us: micros(q[2]),
	}, nil
}
