package consumer

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetbox-dev/jetbox/internal/memapi"
	"github.com/jetbox-dev/jetbox/internal/sfmapi"
	"github.com/jetbox-dev/jetbox/streams"
)

// hotpathBody is a store as the Go producer writes it.
const hotpathBody = `{"coord":"-0.12503166683018208,-0.7219827054068446,0.24664257746189833","payload":{"text":"likes tea","user":"user-42","tags":["drink","morning"],"score":0.75},"memory_type":"episodic"}`

// hotpathMsg is a pulled store with the headers the Go producer sets; key
// makes its idempotency key unique.
func hotpathMsg(key string) fuzzMsg {
	h := nats.Header{}
	h.Set(streams.HeaderIdempotencyKey, key)
	h.Set(streams.HeaderMsgID, "sandbox-tenant:"+key)
	h.Set(streams.HeaderTenant, "sandbox-tenant")
	h.Set(streams.HeaderNamespace, "memory:sandbox-tenant")
	return fuzzMsg{subject: "memory.fast_ack.3.sandbox-tenant.store", header: h, data: []byte(hotpathBody)}
}

// BenchmarkHotpath measures what a worker does for one write between
// pulling it and settling it: decodeWrite, then one memory API call over
// the keep-alive client. One op is one write, so allocs/op is allocations
// per applied write (the memapi case counts the in-process server's too).
func BenchmarkHotpath(b *testing.B) {
	prefixes := []string{"_INBOX."}
	b.Run("decode", func(b *testing.B) {
		msg := hotpathMsg("k")
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeWrite(msg, 42, prefixes); err != nil {
				b.Fatal(err)
			}
		}
	})
	apply := func(b *testing.B, handler http.Handler, unique bool) {
		srv := httptest.NewServer(handler)
		b.Cleanup(srv.Close)
		api := newMemoryAPI(Config{Endpoint: srv.URL, Token: testToken, Concurrency: 4, RequestTimeout: 5 * time.Second})
		ctx := context.Background()
		// Every write has its own key, as in production; building the
		// messages is not part of the measure.
		msgs := []fuzzMsg{hotpathMsg("k")}
		if unique {
			msgs = make([]fuzzMsg, b.N)
			for i := range msgs {
				msgs[i] = hotpathMsg("k" + strconv.Itoa(i))
			}
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			w, err := decodeWrite(msgs[i%len(msgs)], uint64(i), prefixes)
			if err != nil {
				b.Fatal(err)
			}
			if a := api.apply(ctx, w); a.class != sfmapi.Applied {
				b.Fatalf("answer %d %s: %v", a.status, a.body, a.err)
			}
		}
	}
	b.Run("memapi", func(b *testing.B) {
		store, err := memapi.Open(memapi.Options{Path: b.TempDir() + "/memapi.db", Token: testToken})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { store.Close() })
		apply(b, store.Handler(), true)
	})
	b.Run("ok", func(b *testing.B) {
		apply(b, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusOK)
		}), false)
	})
	// The duplicate and case-variant key check on its own: what the single
	// pass does with each top-level key of hotpathBody.
	b.Run("keys", func(b *testing.B) {
		keys := [][]byte{[]byte(`"coord"`), []byte(`"payload"`), []byte(`"memory_type"`)}
		value := []byte(`"x"`)
		b.ReportAllocs()
		for b.Loop() {
			var body scannedBody
			for _, k := range keys {
				body.key(k, value)
			}
			if body.keyErr != nil {
				b.Fatal(body.keyErr)
			}
		}
	})
}
