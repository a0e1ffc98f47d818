package ingest_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"

	"github.com/jetbox-dev/jetbox/ingest"
	"github.com/jetbox-dev/jetbox/internal/natstest"
	"github.com/jetbox-dev/jetbox/streams"
)

// env is a nats-server with the outbox, and a gateway on its own
// connection, as a worker runs it.
type env struct {
	srv    *natstest.Server
	js     jetstream.JetStream // the workers' view: reads the outbox
	outbox jetstream.Stream
	cfg    streams.Config
	reg    *prometheus.Registry
}

const body = `{"coord":"1,2,3","payload":{"text":"hello"},"memory_type":"episodic"}`

func newEnv(t testing.TB, gateways int) *env {
	t.Helper()
	e := &env{srv: natstest.Start(t), cfg: streams.DefaultConfig(), reg: prometheus.NewRegistry()}
	e.cfg.Partitions = 4
	_, e.js = e.srv.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := streams.Provision(ctx, e.js, e.cfg); err != nil {
		t.Fatalf("provision: %v", err)
	}
	var err error
	if e.outbox, err = e.js.Stream(ctx, e.cfg.Stream); err != nil {
		t.Fatal(err)
	}
	for i := range gateways {
		reg := prometheus.Registerer(e.reg)
		if i > 0 {
			reg = nil
		}
		e.startGateway(t, reg)
	}
	return e
}

// startGateway runs a gateway on a connection of its own.
func (e *env) startGateway(t testing.TB, reg prometheus.Registerer) {
	t.Helper()
	nc, _ := e.srv.Connect(t)
	gw, err := ingest.Start(nc, ingest.Config{Registerer: reg, Log: zerolog.Nop()})
	if err != nil {
		t.Fatalf("start gateway: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := gw.Stop(ctx); err != nil {
			t.Errorf("stop gateway: %v", err)
		}
	})
}

// client is a publisher's connection.
func (e *env) client(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	return e.srv.Connect(t)
}

func (e *env) stored(t *testing.T, seq uint64) *jetstream.RawStreamMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := e.outbox.GetMsg(ctx, seq)
	if err != nil {
		t.Fatalf("get stored message %d: %v", seq, err)
	}
	return m
}

func (e *env) count(t *testing.T, filter string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n, err := streams.CountStored(ctx, e.outbox, filter)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// counter reads one series of a counter of the gateway's metrics.
func (e *env) counter(t *testing.T, name, label, value string) float64 {
	t.Helper()
	families, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if label == "" || hasLabel(m, label, value) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

func (e *env) waitCounter(t *testing.T, name, label, value string, want float64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for e.counter(t, name, label, value) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s{%s=%q} = %v; want %v", name, label, value, e.counter(t, name, label, value), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// directGetHeaders are added by the stream's direct get, which reads a
// stored message; they are not the message's own.
var directGetHeaders = []string{"Nats-Stream", "Nats-Sequence", "Nats-Subject", "Nats-Time-Stamp"}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func write(subject string, headers map[string]string) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Data = []byte(body)
	for k, v := range headers {
		m.Header.Set(k, v)
	}
	return m
}

// TestGatewayHidesOtherTenantsWrites: Nats-Expected-Last-Subject-Sequence
// with its -Subject naming another tenant's stored subject (literal or
// wildcard) makes the nats-server answer a publish straight into the
// outbox with that tenant's last stream sequence. Through the gateway the
// headers are dropped and the publish is stored like any other.
func TestGatewayHidesOtherTenantsWrites(t *testing.T) {
	e := newEnv(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, js := e.client(t)

	// The victim has a write waiting in the outbox.
	victim, err := streams.NewAddress("victim", streams.ModeSync, streams.OpStore)
	if err != nil {
		t.Fatal(err)
	}
	victimAck, err := js.PublishMsg(ctx, write(victim.Subject(), nil))
	if err != nil {
		t.Fatal(err)
	}
	storedVictim := streams.StoredSubject(victim, streams.PartitionOf(victim.Token, e.cfg.Partitions))

	for i, probe := range []string{storedVictim, "memory.sync.*.victim.store", "memory.sync.*.*.*"} {
		probeHeaders := map[string]string{
			"Nats-Expected-Last-Subject-Sequence":         "0",
			"Nats-Expected-Last-Subject-Sequence-Subject": probe,
		}
		t.Run("straight into the outbox "+probe, func(t *testing.T) {
			_, err := js.PublishMsg(ctx, write("memory.attacker.fast_ack.store", probeHeaders))
			var apiErr *jetstream.APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("error %v; want the outbox's refusal", err)
			}
			want := "wrong last sequence: " + strconv.FormatUint(victimAck.Sequence, 10)
			if apiErr.Description != want {
				t.Fatalf("refusal %q; want %q", apiErr.Description, want)
			}
			t.Logf("published straight, the refusal leaks the victim's stream sequence: %q", apiErr.Description)
		})
		t.Run("through the gateway "+probe, func(t *testing.T) {
			probeHeaders[streams.HeaderMsgID] = "attacker:probe-" + strconv.Itoa(i)
			ack, err := js.PublishMsg(ctx, write(ingest.SubjectPrefix+"memory.attacker.fast_ack.store", probeHeaders))
			if err != nil {
				t.Fatalf("publish through the gateway: %v", err)
			}
			if ack.Stream != e.cfg.Stream || ack.Duplicate || ack.Sequence <= victimAck.Sequence {
				t.Fatalf("PubAck %+v; want a new write stored in %s", ack, e.cfg.Stream)
			}
			m := e.stored(t, ack.Sequence)
			for name := range m.Header {
				if strings.HasPrefix(name, "Nats-Expected") {
					t.Fatalf("stored with %s", name)
				}
			}
		})
	}
	if got := e.counter(t, "jetbox_ingest_dropped_headers_total", "header", "Nats-Expected-Last-Subject-Sequence-Subject"); got != 3 {
		t.Fatalf("dropped Nats-Expected-Last-Subject-Sequence-Subject counted %v times; want 3", got)
	}
}

// TestGatewayForwardsTheContractHeadersOnly: the outbox message carries
// the contract's headers (first value) and the body unchanged; every
// other header is dropped and counted, under its name when the server
// obeys it, else as other. A repeated Nats-Msg-Id is a duplicate.
func TestGatewayForwardsTheContractHeadersOnly(t *testing.T) {
	e := newEnv(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, js := e.client(t)

	contract := map[string]string{
		streams.HeaderMsgID:          "acme~2Eeu:key-1",
		streams.HeaderIdempotencyKey: "key-1",
		streams.HeaderTenant:         "acme.eu",
		streams.HeaderNamespace:      "memory:acme.eu",
		streams.HeaderRequestID:      "req-1",
		streams.HeaderReplyTo:        "_INBOX.acme~2Eeu.outcome",
		streams.HeaderTraceparent:    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		streams.HeaderTracestate:     "congo=t61rcWkgMzE",
	}
	obeyed := map[string]string{
		"Nats-Expected-Stream":        "SOMETHING_ELSE", // straight, the outbox would refuse the write
		"Nats-Expected-Last-Sequence": "1",
		"Nats-Rollup":                 "sub", // the outbox does not allow rollups
		"Nats-TTL":                    "1s",  // nor per-message TTLs
		"Nats-Pin-Id":                 "pin",
		"Status":                      "503",
		"Description":                 "No Responders",
	}
	others := map[string]string{"Nats-Something-New": "x", "X-Custom": "y", "nats-expected-stream": "lower case"}
	msg := write(ingest.SubjectPrefix+"memory.acme~2Eeu.sync.store", nil)
	for _, hs := range []map[string]string{contract, obeyed, others} {
		for k, v := range hs {
			msg.Header[k] = []string{v}
		}
	}
	msg.Header[streams.HeaderIdempotencyKey] = []string{"key-1", "key-2"} // the first value counts

	ack, err := js.PublishMsg(ctx, msg)
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	if ack.Duplicate {
		t.Fatal("first publish acked as a duplicate")
	}
	stored := e.stored(t, ack.Sequence)
	got := map[string]string{}
	for k, v := range stored.Header {
		if slices.Contains(directGetHeaders, k) {
			continue
		}
		if len(v) != 1 {
			t.Errorf("header %s stored %d times", k, len(v))
		}
		got[k] = v[0]
	}
	if !maps.Equal(got, contract) {
		t.Fatalf("stored headers %v; want exactly %v", got, contract)
	}
	if string(stored.Data) != body {
		t.Fatalf("stored body %q; want %q", stored.Data, body)
	}
	addr, _ := streams.NewAddress("acme.eu", streams.ModeSync, streams.OpStore)
	if want := streams.StoredSubject(addr, streams.PartitionOf(addr.Token, e.cfg.Partitions)); stored.Subject != want {
		t.Fatalf("stored under %q; want %q", stored.Subject, want)
	}
	for name := range obeyed {
		if n := e.counter(t, "jetbox_ingest_dropped_headers_total", "header", name); n != 1 {
			t.Errorf("dropped %s counted %v times; want 1", name, n)
		}
	}
	if n := e.counter(t, "jetbox_ingest_dropped_headers_total", "header", "other"); n != float64(len(others)) {
		t.Errorf("dropped other headers counted %v; want %d", n, len(others))
	}

	again, err := js.PublishMsg(ctx, msg)
	if err != nil {
		t.Fatalf("publish again: %v", err)
	}
	if !again.Duplicate || again.Sequence != ack.Sequence {
		t.Fatalf("second PubAck %+v; want a duplicate of sequence %d", again, ack.Sequence)
	}
	if n := e.count(t, streams.StoredTenantFilter("acme~2Eeu")); n != 1 {
		t.Fatalf("outbox holds %d writes; want 1", n)
	}
}

// TestGatewayRefuses: a Nats-Msg-Id claiming another tenant and a subject
// that is no write address are answered with an API error; a plain
// publish, which could get no PubAck, and a reply subject outside the
// inboxes are dropped. Nothing of them is stored.
func TestGatewayRefuses(t *testing.T) {
	e := newEnv(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc, js := e.client(t)

	t.Run("foreign Nats-Msg-Id", func(t *testing.T) {
		_, err := js.PublishMsg(ctx, write(ingest.SubjectPrefix+"memory.attacker.fast_ack.store", map[string]string{streams.HeaderMsgID: "victim:key-1"}))
		if !errors.Is(err, ingest.ErrForeignMsgID) {
			t.Fatalf("error %v; want %v", err, ingest.ErrForeignMsgID)
		}
		var apiErr *jetstream.APIError
		if !errors.As(err, &apiErr) || apiErr.Code != 400 || !strings.Contains(apiErr.Description, `"victim"`) {
			t.Fatalf("error %#v; want a 400 naming the claimed token", apiErr)
		}
		// The attacker's own id is accepted.
		if _, err := js.PublishMsg(ctx, write(ingest.SubjectPrefix+"memory.attacker.fast_ack.store", map[string]string{streams.HeaderMsgID: "attacker:key-1"})); err != nil {
			t.Fatalf("own id: %v", err)
		}
		e.waitCounter(t, "jetbox_ingest_refused_total", "reason", "foreign_msg_id", 1)
	})

	for _, subject := range []string{
		"ingest.memory.caf~c3~a9.sync.store", // bad tenant token
		"ingest.memory.~41.sync.store",       // a kept byte escaped
		"ingest.memory.acme.weird.store",
		"ingest.memory.acme.sync.bogus",
		"ingest.memory.*.sync.store",
	} {
		t.Run("bad subject "+subject, func(t *testing.T) {
			_, err := js.PublishMsg(ctx, write(subject, nil))
			if !errors.Is(err, ingest.ErrBadSubject) {
				t.Fatalf("error %v; want %v", err, ingest.ErrBadSubject)
			}
		})
	}
	e.waitCounter(t, "jetbox_ingest_refused_total", "reason", "bad_subject", 5)

	t.Run("no gateway subject", func(t *testing.T) {
		// Four or six tokens: no gateway subscribes, so no responders.
		for _, subject := range []string{"ingest.memory.acme.sync", "ingest.memory.acme.sync.store.1"} {
			if _, err := js.PublishMsg(ctx, write(subject, nil), jetstream.WithRetryAttempts(0)); !errors.Is(err, jetstream.ErrNoStreamResponse) {
				t.Fatalf("%s: error %v; want %v", subject, err, jetstream.ErrNoStreamResponse)
			}
		}
	})

	t.Run("plain publish", func(t *testing.T) {
		if err := nc.PublishMsg(write(ingest.SubjectPrefix+"memory.plain.fast_ack.store", nil)); err != nil {
			t.Fatal(err)
		}
		e.waitCounter(t, "jetbox_ingest_refused_total", "reason", "no_reply", 1)
		if n := e.count(t, streams.StoredTenantFilter("plain")); n != 0 {
			t.Fatalf("outbox holds %d writes of a plain publish; want 0", n)
		}
	})

	t.Run("straight, a reply subject writes into another tenant", func(t *testing.T) {
		// Why the gateway checks reply subjects: the outbox publishes its
		// PubAck to the reply subject inside the account, and the outbox
		// stores what is published to a victim's subject.
		m := write("memory.attacker.fast_ack.store", nil)
		m.Reply = "memory.victim.fast_ack.store"
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the PubAck stored under the victim", func() bool { return e.count(t, streams.StoredTenantFilter("victim")) == 1 })
		t.Log("published straight, the PubAck was stored as a write of the victim")
		if err := e.outbox.Purge(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("reply outside the inboxes", func(t *testing.T) {
		// The outbox would send its PubAck there: into the victim's
		// subjects, or to the JetStream API.
		for _, reply := range []string{"memory.victim.fast_ack.store", "$JS.API.STREAM.PURGE.MEMORY", "_INBOX.*", "elsewhere.x"} {
			m := write(ingest.SubjectPrefix+"memory.attacker.fast_ack.store", nil)
			m.Reply = reply
			if err := nc.PublishMsg(m); err != nil {
				t.Fatal(err)
			}
		}
		e.waitCounter(t, "jetbox_ingest_refused_total", "reason", "bad_reply", 4)
		if n := e.count(t, streams.StoredTenantFilter("victim")); n != 0 {
			t.Fatalf("outbox holds %d writes of the victim; want 0", n)
		}
	})

	if n := e.count(t, streams.StoredTenantFilter("attacker")); n != 0 {
		t.Fatalf("outbox holds %d writes of the attacker after the purge; want 0", n)
	}
	if n := e.counter(t, "jetbox_ingest_forwarded_total", "", ""); n != 1 {
		t.Fatalf("forwarded %v writes; want 1", n)
	}
}

// TestPubAcksReachEveryKindOfInbox: the outbox answers the publisher on
// the reply subject the gateway forwards verbatim, whether nats.go made
// it for a request (its response mux), for an async publish, or for a
// connection with a custom inbox prefix.
func TestPubAcksReachEveryKindOfInbox(t *testing.T) {
	e := newEnv(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc, _ := e.srv.Connect(t, nats.CustomInboxPrefix("_INBOX.acme~2Eeu"))
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	subject := ingest.SubjectPrefix + "memory.acme~2Eeu.fast_ack.store"
	ack, err := js.PublishMsg(ctx, write(subject, map[string]string{streams.HeaderMsgID: "acme~2Eeu:sync-1"}))
	if err != nil || ack.Sequence == 0 {
		t.Fatalf("PublishMsg: %+v, %v", ack, err)
	}
	const n = 200
	futures := make([]jetstream.PubAckFuture, n)
	for i := range futures {
		if futures[i], err = js.PublishMsgAsync(write(subject, map[string]string{streams.HeaderMsgID: "acme~2Eeu:async-" + strconv.Itoa(i)})); err != nil {
			t.Fatal(err)
		}
	}
	var seqs []uint64
	for i, f := range futures {
		select {
		case a := <-f.Ok():
			seqs = append(seqs, a.Sequence)
		case err := <-f.Err():
			t.Fatalf("async publish %d: %v", i, err)
		case <-ctx.Done():
			t.Fatalf("async publish %d: no PubAck", i)
		}
	}
	slices.Sort(seqs)
	if len(slices.Compact(seqs)) != n {
		t.Fatalf("%d distinct sequences; want %d", len(slices.Compact(seqs)), n)
	}
	if got := e.count(t, streams.StoredTenantFilter("acme~2Eeu")); got != n+1 {
		t.Fatalf("outbox holds %d; want %d", got, n+1)
	}
}
