package streams_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetbox-dev/jetbox/internal/natstest"
	"github.com/jetbox-dev/jetbox/streams"
)

// liveHeap is the process's live heap after a full collection. The test
// server runs in this process, so its memory is in it.
func liveHeap() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// Every distinct Nats-Msg-Id a stream stores stays in the server's memory
// for the whole duplicate window, whatever becomes of its message. This
// measures what one id costs (docs/TOPOLOGY.md, Dedupe window memory): a
// stream that keeps one message and a 10-minute window takes n writes with
// distinct ids of a given length; what the heap grew by, over n, is the
// cost of one id.
func TestDedupeWindowMemoryPerID(t *testing.T) {
	if testing.Short() {
		t.Skip("measures the heap over 120,000 publishes")
	}
	s := natstest.Start(t)
	nc, js := s.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "DEDUPE", Subjects: []string{"dedupe"}, Storage: jetstream.MemoryStorage,
		MaxMsgs: 1, Discard: jetstream.DiscardOld, Duplicates: 10 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	async, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(1024))
	if err != nil {
		t.Fatal(err)
	}
	// publish stores n writes with ids of idLen bytes (none when 0) that no
	// earlier run used.
	run := 0
	publish := func(n, idLen int) {
		run++
		for i := range n {
			m := nats.NewMsg("dedupe")
			if idLen > 0 {
				id := fmt.Sprintf("%d-%d-", run, i)
				m.Header.Set(jetstream.MsgIDHeader, id+strings.Repeat("x", idLen-len(id)))
			}
			if _, err := async.PublishMsgAsync(m, jetstream.WithStallWait(time.Minute)); err != nil {
				t.Fatal(err)
			}
		}
		select {
		case <-async.PublishAsyncComplete():
		case <-ctx.Done():
			t.Fatal("publishes not acknowledged")
		}
	}
	const n = 20000
	publish(n, 64) // warm-up: the server's buffers and the map's first growth
	perID := map[int]float64{}
	for _, idLen := range []int{0, 64, 1000} {
		before := liveHeap()
		publish(n, idLen)
		perID[idLen] = float64(int64(liveHeap())-int64(before)) / n
		t.Logf("%4d-byte ids: %7.0f bytes of server heap per write (n = %d, window 10m)", idLen, perID[idLen], n)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Fatalf("stream holds %d messages, want 1: the growth measured would not be the ids alone", info.State.Msgs)
	}
	// The ids outlive their messages: the first is still a duplicate.
	first := nats.NewMsg("dedupe")
	first.Header.Set(jetstream.MsgIDHeader, "1-0-"+strings.Repeat("x", 60))
	if ack, err := js.PublishMsg(ctx, first); err != nil || !ack.Duplicate {
		t.Fatalf("the first id published again: %+v, %v; want a duplicate", ack, err)
	}
	// An id costs its length and a fixed overhead; writes without one
	// cost nothing that lasts.
	if perID[0] > 16 || perID[64] < 64 || perID[64] > 64+512 || perID[1000] < 1000 || perID[1000] > 1000+512 {
		t.Fatalf("per-write heap growth %v: not the id's length plus a bounded overhead", perID)
	}
}

// An account's max payload, lower than the server's, bounds the outbox's
// largest write too, leaving room to dead-letter it.
func TestProvisionHonoursTheAccountMaxPayload(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(conf, []byte(`accounts { JETBOX { jetstream: enabled, limits: { max_payload: 65536 }, users: [ { user: w, password: p } ] } }`), 0o600); err != nil {
		t.Fatal(err)
	}
	s := natstest.Start(t, natstest.WithConfigFile(t, conf))
	_, js := s.Connect(t, nats.UserInfo("w", "p"))
	// A context without a deadline, as a caller may pass.
	top, err := streams.Provision(context.Background(), js, streams.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := top.Outbox.CachedInfo().Config.MaxMsgSize, int32(65536-streams.DLQHeadroom); got != want {
		t.Fatalf("outbox max message size %d under an account max payload of 65536, want %d", got, want)
	}
}
