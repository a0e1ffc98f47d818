package ingest_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jetbox-dev/jetbox/ingest"
	"github.com/jetbox-dev/jetbox/producer"
	"github.com/jetbox-dev/jetbox/streams"
)

// BenchmarkFastAck compares fast_ack writes published straight into the
// outbox with the same writes through one gateway, from 1 and 64 callers.
// The nats-server, the gateway and the producer share the process (and
// the machine's cores); the outbox is on file storage, as by default.
func BenchmarkFastAck(b *testing.B) {
	payload := map[string]any{"text": strings.Repeat("m", 400)}
	for _, route := range []struct{ name, prefix string }{{"straight", ""}, {"gateway", ingest.SubjectPrefix}} {
		for _, callers := range []int{1, 64} {
			b.Run(fmt.Sprintf("%s/callers=%d", route.name, callers), func(b *testing.B) {
				e := newEnv(b, 1)
				p := e.producer(b, producer.Config{SubjectPrefix: route.prefix, Mode: streams.ModeFastAck})
				ctx := context.Background()
				var next atomic.Int64
				var wg sync.WaitGroup
				b.ResetTimer()
				for c := range callers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						coord := "0.1,0.2," + strconv.Itoa(c)
						for next.Add(1) <= int64(b.N) {
							if _, err := p.Store(ctx, producer.StoreRequest{Tenant: "bench", Coord: coord, Payload: payload}); err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
			})
		}
	}
}
