package dlq_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
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
	deadLetterOf(ctx, t, js, subject, seq, key, streams.ClassExhausted)
}

func deadLetterOf(ctx context.Context, t *testing.T, js jetstream.JetStream, subject string, seq int, key string, class streams.DLQClass) {
	t.Helper()
	h := nats.Header{}
	h.Set(streams.HeaderIdempotencyKey, key)
	w := dlq.Write{
		Subject:    subject,
		Seq:        uint64(seq),
		Header:     h,
		Data:       []byte(`{"coord":"1,2,3","payload":{}}`),
		Deliveries: 1,
		Group:      streams.Mode(strings.Split(subject, ".")[2]),
	}
	msg := dlq.Letter(w, dlq.Failure{Class: class, Reason: "refused"})
	if _, err := js.PublishMsg(ctx, msg, jetstream.WithMsgID(dlq.MsgID(streams.DefaultConfig().Stream, w.Seq))); err != nil {
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

// The filters select by tenant, mode, op, class and sequence at once; Get
// reads one dead letter; Drop removes exactly the ones named; Replay
// leaves bad_input letters in place unless forced.
func TestFiltersGetDropAndRefusedReplay(t *testing.T) {
	s := natstest.Start(t)
	_, js := s.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg := streams.DefaultConfig()
	top, err := streams.Provision(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	letters := []struct {
		subject string
		class   streams.DLQClass
	}{
		{"memory.acme.sync.store", streams.ClassExhausted},    // 1
		{"memory.acme.sync.store", streams.ClassBadInput},     // 2
		{"memory.acme.fast_ack.link", streams.ClassPermanent}, // 3
		{"memory.globex.sync.store", streams.ClassBadInput},   // 4
		{"memory.acme.sync.delete", streams.ClassExhausted},   // 5
	}
	for i, l := range letters {
		deadLetterOf(ctx, t, js, l.subject, 100+i, "k"+strconv.Itoa(i+1), l.class)
	}
	seqs := func(f dlq.Filter) []uint64 {
		t.Helper()
		list, err := dlq.List(ctx, js, cfg, f)
		if err != nil {
			t.Fatalf("List(%+v): %v", f, err)
		}
		var out []uint64
		for _, d := range list {
			out = append(out, d.Seq)
		}
		return out
	}
	badInput := []streams.DLQClass{streams.ClassBadInput}
	for _, c := range []struct {
		f    dlq.Filter
		want []uint64
	}{
		{dlq.Filter{Tenant: "acme", Mode: streams.ModeSync}, []uint64{1, 2, 5}},
		{dlq.Filter{Op: streams.OpLink}, []uint64{3}},
		{dlq.Filter{Classes: badInput}, []uint64{2, 4}},
		{dlq.Filter{Tenant: "acme", Classes: badInput}, []uint64{2}},
		{dlq.Filter{Seqs: dlq.SeqRanges{{From: 2, To: 3}, {From: 5}}}, []uint64{2, 3, 5}},
		{dlq.Filter{Seqs: dlq.SeqRanges{{From: 4, To: 4}}, Tenant: "acme"}, nil},
		{dlq.Filter{Until: time.Now().Add(-time.Hour)}, nil},
	} {
		if got := seqs(c.f); !slices.Equal(got, c.want) {
			t.Errorf("List(%+v) = %v, want %v", c.f, got, c.want)
		}
	}

	d, err := dlq.Get(ctx, js, cfg, 2)
	if err != nil || d.Class != "bad_input" || d.OriginalSeq != 101 || d.IdempotencyKey != "k2" || string(d.Data) != `{"coord":"1,2,3","payload":{}}` {
		t.Fatalf("Get(2) = %+v, %v", d, err)
	}
	if _, err := dlq.Get(ctx, js, cfg, 99); !errors.Is(err, dlq.ErrNotFound) {
		t.Fatalf("Get(99): %v, want ErrNotFound", err)
	}

	var progress []dlq.ReplayResult
	res, err := dlq.Replay(ctx, js, cfg, dlq.Filter{Tenant: "acme", Mode: streams.ModeSync, Op: streams.OpStore},
		dlq.WithProgress(func(r dlq.ReplayResult) { progress = append(progress, r) }))
	if err != nil || res != (dlq.ReplayResult{Replayed: 1, Refused: 1}) {
		t.Fatalf("Replay = %+v, %v; want 1 replayed, the bad_input one refused", res, err)
	}
	if len(progress) != 2 || progress[1] != res {
		t.Fatalf("progress %v, want a report after each of the 2 letters", progress)
	}
	if got := seqs(dlq.Filter{}); !slices.Equal(got, []uint64{2, 3, 4, 5}) {
		t.Fatalf("after replay: %v, want the refused letter 2 left", got)
	}
	res, err = dlq.Replay(ctx, js, cfg, dlq.Filter{Seqs: dlq.SeqRanges{{From: 2, To: 2}}}, dlq.Force())
	if err != nil || res != (dlq.ReplayResult{Replayed: 1}) {
		t.Fatalf("forced Replay = %+v, %v", res, err)
	}
	if info, err := top.Outbox.Info(ctx); err != nil || info.State.Msgs != 2 {
		t.Fatalf("outbox after replays: %+v %v, want the 2 replayed writes", info, err)
	}

	n, err := dlq.Drop(ctx, js, cfg, []uint64{3, 4, 42})
	if err != nil || n != 2 {
		t.Fatalf("Drop = %d, %v; want 2 dropped", n, err)
	}
	if got := seqs(dlq.Filter{}); !slices.Equal(got, []uint64{5}) {
		t.Fatalf("after drop: %v, want [5]", got)
	}
}
