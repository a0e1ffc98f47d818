package consumer

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/jetbox-dev/jetbox/consumer/internal/intake"
	"github.com/jetbox-dev/jetbox/consumer/internal/intake/intaketest"
	"github.com/jetbox-dev/jetbox/internal/memapi"
	"github.com/jetbox-dev/jetbox/internal/sfmapi"
)

// storeWrite is a store as the Go producer writes it, decoded.
func storeWrite(t *testing.T) *intake.Write {
	t.Helper()
	w, err := intake.Decode(intaketest.StoreMsg("k"), 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// BenchmarkHotpath measures what a worker does for one write between
// pulling it and settling it: intake.Decode, then one memory API call over
// the keep-alive client. One op is one write, so allocs/op is allocations
// per applied write (the memapi case counts the in-process server's too).
func BenchmarkHotpath(b *testing.B) {
	prefixes := []string{"_INBOX."}
	b.Run("decode", func(b *testing.B) {
		msg := intaketest.StoreMsg("k")
		b.ReportAllocs()
		for b.Loop() {
			if _, err := intake.Decode(msg, 42, prefixes); err != nil {
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
		msgs := []intaketest.Msg{intaketest.StoreMsg("k")}
		if unique {
			msgs = make([]intaketest.Msg, b.N)
			for i := range msgs {
				msgs[i] = intaketest.StoreMsg("k" + strconv.Itoa(i))
			}
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			w, err := intake.Decode(msgs[i%len(msgs)], uint64(i), prefixes)
			if err != nil {
				b.Fatal(err)
			}
			if a := api.Apply(ctx, w); a.Class != sfmapi.Applied {
				b.Fatalf("answer %d %s: %v", a.Status, a.Body, a.Err)
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
}
