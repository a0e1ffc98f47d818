package dlq_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetbox-dev/jetbox/dlq"
	"github.com/jetbox-dev/jetbox/internal/natstest"
	"github.com/jetbox-dev/jetbox/streams"
)

// deadLetter stores a dead letter the way a worker does for a write the
// outbox stored under subject.
func deadLetter(ctx context.Context, t *testing.T, js jetstream.JetStream, subject string, seq int, key string) {
	t.Helper()
	msg := nats.NewMsg(streams.DLQSubjectFor(subject))
	msg.Header.Set(streams.HeaderIdempotencyKey, key)
	msg.Header.Set(streams.HeaderDLQSubject, subject)
	msg.Header.Set(streams.HeaderDLQStreamSeq, strconv.Itoa(seq))
	msg.Header.Set(streams.HeaderDLQClass, string(streams.ClassExhausted))
	msg.Data = []byte(`{"coord":"1,2,3","payload":{}}`)
	if _, err := js.PublishMsg(ctx, msg, jetstream.WithMsgID("dlq:MEMORY:"+strconv.Itoa(seq))); err != nil {
		t.Fatalf("store dead letter: %v", err)
	}
}

// A dead letter records the subject the outbox stored the write under,
// partition token included; replay publishes it to the four-token subject
// a producer uses, which the outbox partitions again.
func TestReplayRepublishesToThePublishSubject(t *testing.T) {
	s := natstest.Start(t)
	_, js := s.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg := streams.DefaultConfig()
	top, err := streams.Provision(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	addr, err := streams.NewAddress("acme.eu", streams.ModeSync, streams.OpStore)
	if err != nil {
		t.Fatal(err)
	}
	p := streams.PartitionOf(addr.Token, cfg.Partitions)
	stored := streams.StoredSubject(addr, p)
	earlier := addr.Subject() + "." + strconv.Itoa(p) // stored by an earlier jetbox, partition last
	deadLetter(ctx, t, js, stored, 41, "k-stored")
	deadLetter(ctx, t, js, earlier, 42, "k-earlier")
	deadLetter(ctx, t, js, addr.Subject(), 43, "k-unpartitioned") // dead-lettered before the outbox was partitioned

	list, err := dlq.List(ctx, js, cfg, dlq.Filter{Subject: stored})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 || list[0].OriginalSubject != stored || list[1].OriginalSubject != earlier || list[2].OriginalSubject != addr.Subject() {
		t.Fatalf("List = %+v, want the three dead letters with their recorded subjects", list)
	}

	res, err := dlq.Replay(ctx, js, cfg, dlq.Filter{Tenant: "acme.eu"})
	if err != nil || res.Replayed != 3 || res.Failed != 0 {
		t.Fatalf("Replay = %+v, %v", res, err)
	}
	for i, key := range []string{"k-stored", "k-earlier", "k-unpartitioned"} {
		got, err := top.Outbox.GetMsg(ctx, uint64(i+1))
		if err != nil {
			t.Fatalf("replayed write %d: %v", i+1, err)
		}
		if got.Subject != stored {
			t.Errorf("replay of %s stored as %q, want %q", key, got.Subject, stored)
		}
		if got.Header.Get(streams.HeaderIdempotencyKey) != key || got.Header.Get(streams.HeaderDLQSubject) != "" {
			t.Errorf("replay of %s has headers %v", key, got.Header)
		}
	}
	if left, err := dlq.List(ctx, js, cfg, dlq.Filter{}); err != nil || len(left) != 0 {
		t.Fatalf("after replay: %d dead letters left, %v", len(left), err)
	}
}
