package jspull

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Fetch returns the stored writes, the one that looks like a server status
// among them.
func TestFetchReturnsStoredWrites(t *testing.T) {
	e := newEnv(t)
	e.consumer(t, "C")
	e.publish(t, "", poisonHeader("409", "Consumer Deleted"))
	e.publish(t, "w", nil)

	msgs, err := Fetch(ctxT(t), e.nc, testStream, "C", 10, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 || msgs[0].Headers().Get("Status") != "409" || string(msgs[1].Data()) != "w" {
		t.Fatalf("Fetch returned %d writes, want the poison one and w", len(msgs))
	}
	for _, m := range msgs {
		if err := m.Ack(); err != nil {
			t.Fatal(err)
		}
	}

	start := time.Now()
	msgs, err = Fetch(ctxT(t), e.nc, testStream, "C", 10, 500*time.Millisecond)
	if err != nil || len(msgs) != 0 {
		t.Fatalf("Fetch on an empty consumer: %d writes, %v", len(msgs), err)
	}
	if took := time.Since(start); took < 400*time.Millisecond || took > 1400*time.Millisecond {
		t.Fatalf("Fetch on an empty consumer returned after %v, want about its 500ms wait", took)
	}
}

// Fetch from a consumer that does not exist says so.
func TestFetchMissingConsumer(t *testing.T) {
	e := newEnv(t)
	_, err := Fetch(ctxT(t), e.nc, testStream, "NONE", 1, time.Second)
	if !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("Fetch from a missing consumer: %v, want no responders", err)
	}
}

func TestParseMetadata(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	for _, tc := range []struct {
		reply string
		want  *jetstream.MsgMetadata
	}{
		{"$JS.ACK.OUT.C.2.10.7.1767323045000000006.3", &jetstream.MsgMetadata{
			Stream: "OUT", Consumer: "C", NumDelivered: 2, NumPending: 3, Timestamp: ts,
			Sequence: jetstream.SequencePair{Stream: 10, Consumer: 7}}},
		{"$JS.ACK.hub.ACCHASH.OUT.C.2.10.7.1767323045000000006.3.rnd", &jetstream.MsgMetadata{
			Domain: "hub", Stream: "OUT", Consumer: "C", NumDelivered: 2, NumPending: 3, Timestamp: ts,
			Sequence: jetstream.SequencePair{Stream: 10, Consumer: 7}}},
		{"$JS.ACK._.ACCHASH.OUT.C.2.10.7.1767323045000000006.3", &jetstream.MsgMetadata{
			Stream: "OUT", Consumer: "C", NumDelivered: 2, NumPending: 3, Timestamp: ts,
			Sequence: jetstream.SequencePair{Stream: 10, Consumer: 7}}},
		{"", nil},
		{"$JS.ACK.OUT.C.2.10.7.1767323045000000006", nil},           // 8 tokens
		{"$JS.ACK.x.OUT.C.2.10.7.1767323045000000006.3", nil},       // 10 tokens
		{"$JS.ACK.OUT.C.2.x.7.1767323045000000006.3", nil},          // not a number
		{"$JS.ACK.OUT.C.2.-1.7.1767323045000000006.3", nil},         // negative
		{"$JS.ACK..C.2.10.7.1767323045000000006.3", nil},            // empty stream
		{"$JS.ACK.OUT.C.2.10.7.18446744073709551615.3", nil},        // time out of range
		{"$JS.NAK.OUT.C.2.10.7.1767323045000000006.3", nil},         // not an ack subject
		{"_INBOX.x.OUT.C.2.10.7.1767323045000000006.3.4.5", nil},    // not an ack subject
		{"$JS.ACK.OUT.C.2.10.7.1767323045000000006.3.a.b.c.d", nil}, // 14 tokens
	} {
		got, err := parseMetadata(tc.reply)
		if tc.want == nil {
			if !errors.Is(err, ErrBadAckSubject) || !errors.Is(err, jetstream.ErrNotJSMessage) {
				t.Errorf("%q: %+v, %v; want ErrBadAckSubject", tc.reply, got, err)
			}
			continue
		}
		if err == nil && got.Timestamp.Equal(tc.want.Timestamp) {
			got.Timestamp = tc.want.Timestamp // same instant, whatever the location
		}
		if err != nil || *got != *tc.want {
			t.Errorf("%q: %+v, %v; want %+v", tc.reply, got, err, tc.want)
		}
	}
}

// A Fetch whose context ends while the server is delivering returns every
// write that had reached it, not only those it had looked at: a write
// dropped with the subscription stays pending on the consumer until its ack
// wait and comes back behind later writes.
func TestFetchCancelledKeepsWhatCame(t *testing.T) {
	e := newEnv(t)
	const writes, rounds = 200, 20
	ended := 0
	e.publishN(t, writes, "w%d")
	for round := range rounds {
		// A fresh consumer each round: all the writes are there to deliver
		// at once, and the Fetch is ended as it takes the tenth.
		name := fmt.Sprintf("C%d", round)
		e.consumer(t, name, func(c *jetstream.ConsumerConfig) { c.AckWait = time.Minute })
		ctx, cancel := context.WithCancel(ctxT(t))
		left := -1
		probe := func(o *options) error {
			o.probe = &fetchProbe{
				took: func(n int) {
					if n == 10 {
						cancel()
					}
				},
				left: func(n int) { left = n },
			}
			return nil
		}
		msgs, err := Fetch(ctx, e.nc, testStream, name, writes, 5*time.Second, probe)
		cancel()
		switch {
		case errors.Is(err, context.Canceled):
			ended++
		case err != nil || len(msgs) != writes:
			// Taken all before it looked at its context: as good.
			t.Fatalf("round %d: Fetch returned %d writes and %v", round, len(msgs), err)
		}
		if left != 0 {
			t.Fatalf("round %d: Fetch took %d writes and left %d delivered ones untaken", round, len(msgs), left)
		}
		for i, m := range msgs {
			if want := fmt.Sprintf("w%d", i); string(m.Data()) != want {
				t.Fatalf("round %d: write %d is %q, want %q", round, i, m.Data(), want)
			}
		}
	}
	if ended == 0 {
		t.Fatal("no Fetch was ended by its context: the test shows nothing")
	}
}
