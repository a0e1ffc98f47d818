package parkwatch

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetbox-dev/jetbox/internal/natstest"
	"github.com/jetbox-dev/jetbox/streams"
)

// A watch started on a bucket with entries learns them first, then every
// change; after CatchUp returns, every change made before the call has
// been told.
func TestCatchUpHasSeenEveryEarlierChange(t *testing.T) {
	_, js := natstest.Start(t).Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "PARKED_TEST"})
	if err != nil {
		t.Fatal(err)
	}
	put := func(mode streams.Mode, token string) {
		t.Helper()
		if _, err := kv.Put(ctx, streams.ParkingKey(mode, token), []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	put(streams.ModeSync, "acme")

	var mu sync.Mutex
	learned := map[string]bool{}
	w, err := Start(ctx, kv, func(mode streams.Mode, tenant string, p bool) {
		mu.Lock()
		defer mu.Unlock()
		learned[string(mode)+"/"+tenant] = p
	})
	if err != nil {
		t.Fatal(err)
	}
	seen := func(key string) (parked, told bool) {
		mu.Lock()
		defer mu.Unlock()
		parked, told = learned[key]
		return parked, told
	}

	if err := w.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if p, told := seen("sync/acme"); !told || !p {
		t.Fatalf("after CatchUp, sync/acme parked %v (told %v), want parked", p, told)
	}
	put(streams.ModeFastAck, "beta")
	if err := kv.Delete(ctx, streams.ParkingKey(streams.ModeSync, "acme")); err != nil {
		t.Fatal(err)
	}
	if err := w.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if p, told := seen("fast_ack/beta"); !told || !p {
		t.Fatalf("after CatchUp, fast_ack/beta parked %v (told %v), want parked", p, told)
	}
	if p, told := seen("sync/acme"); !told || p {
		t.Fatalf("after CatchUp, sync/acme parked %v (told %v), want unparked", p, told)
	}

	// An ended context ends the wait.
	done, stop := context.WithCancel(ctx)
	stop()
	if err := w.CatchUp(done); err == nil {
		t.Fatal("CatchUp with an ended context returned nil")
	}
}
