package jspull

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Requests go under the API prefix, reply to an inbox under the
// connection's inbox prefix, and carry the options; when no heartbeat comes
// back for a request, the iterator says so and pulls again.
func TestRequestsAndHeartbeatLoss(t *testing.T) {
	e := newEnv(t)
	e.consumer(t, "C")
	nc, _ := e.srv.Connect(t, nats.CustomInboxPrefix("_MYBOX"))
	requests := make(chan *nats.Msg, 64)
	if _, err := nc.ChanSubscribe("FAKE.API.CONSUMER.MSG.NEXT.OUT.C", requests); err != nil {
		t.Fatal(err)
	}
	it, err := Messages(nc, testStream, "C", APIPrefix("FAKE.API"), Expiry(2*time.Second),
		Heartbeat(100*time.Millisecond), MaxMessages(8), MaxBytes(1<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer it.Stop()

	receive := func() *nats.Msg {
		t.Helper()
		select {
		case r := <-requests:
			return r
		case <-time.After(5 * time.Second):
			t.Fatal("no pull request")
			return nil
		}
	}
	first := receive()
	var body map[string]any
	if err := json.Unmarshal(first.Data, &body); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"batch": 8.0, "expires": 2e9, "idle_heartbeat": 1e8, "max_bytes": float64(1 << 20)}
	for k, v := range want {
		if body[k] != v {
			t.Errorf("request %s = %v, want %v (body %s)", k, body[k], v, first.Data)
		}
	}
	if !strings.HasPrefix(first.Reply, "_MYBOX.") {
		t.Errorf("request replies to %q, want an inbox under _MYBOX", first.Reply)
	}

	// Nobody answered the first request: no heartbeat, so another comes.
	if _, err := next(it, 2*time.Second); !errors.Is(err, jetstream.ErrNoHeartbeat) {
		t.Fatalf("Next with the request swallowed: %v, want ErrNoHeartbeat", err)
	}
	second := receive()
	if it.Stats().HeartbeatsLost == 0 {
		t.Fatal("HeartbeatsLost not counted")
	}
	// Hand that one to the server: the iterator gets what it delivers.
	if err := nc.PublishRequest("$JS.API.CONSUMER.MSG.NEXT.OUT.C", second.Reply, second.Data); err != nil {
		t.Fatal(err)
	}
	e.publish(t, "w", nil)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		m, err := next(it, time.Until(deadline))
		if errors.Is(err, jetstream.ErrNoHeartbeat) {
			continue // reported before the handed-over request was heard from
		}
		if err != nil {
			t.Fatal(err)
		}
		if string(m.Data()) != "w" {
			t.Fatalf("got %q, want w", m.Data())
		}
		return
	}
	t.Fatal("the write never came")
}
