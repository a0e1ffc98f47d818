package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jetbox-dev/jetbox/dlq"
	"github.com/jetbox-dev/jetbox/internal/memapi"
	"github.com/jetbox-dev/jetbox/internal/natstest"
	"github.com/jetbox-dev/jetbox/producer"
	"github.com/jetbox-dev/jetbox/streams"
)

// What an operator sees while a tenant's memory API fails and two writes
// are dead letters: 'jetbox status --json' has the parked tenant with its
// waiting writes and its open breaker with the failures that opened it;
// 'jetbox dlq' lists, shows, dry-runs a replay and drops.
func TestOperatorSeesParkedTenantsBreakersAndDeadLetters(t *testing.T) {
	srv := natstest.Start(t)
	nc, js := srv.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := streams.Provision(ctx, js, streams.DefaultConfig()); err != nil {
		t.Fatal(err)
	}
	store, err := memapi.Open(memapi.Options{Path: filepath.Join(t.TempDir(), "m.db"), Fail: func(tenant string) bool { return tenant == "down" }})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	// The memory API refuses every write of tenant "ops" with a 422.
	handler := store.Handler()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Soma-Tenant") == "ops" {
			http.Error(w, `{"detail":"ops may not write here"}`, http.StatusUnprocessableEntity)
			return
		}
		handler.ServeHTTP(w, r)
	}))
	defer api.Close()
	env := []string{
		"NATS_URL=" + srv.ClientURL(), "SOMABRAIN_MEMORY_HTTP_ENDPOINT=" + api.URL,
		"SOMABRAIN_OUTBOX_HTTP_LISTEN=off", "SOMABRAIN_OUTBOX_BACKOFF_BASE=20ms", "SOMABRAIN_MEMORY_FAILURE_THRESHOLD=2",
	}
	worker := startRun(t, env)

	prod, err := producer.New(nc, producer.Config{Mode: streams.ModeFastAck})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close(ctx)
	for i := range 3 {
		if _, err := prod.Store(ctx, producer.StoreRequest{Tenant: "down", Key: strconv.Itoa(i), Payload: map[string]any{"i": i}}); err != nil {
			t.Fatal(err)
		}
	}
	// Two dead letters: a body no worker can decode, published as the
	// nats CLI would (bad_input, never sent to the memory API), and a
	// write the memory API refuses (422, permanent).
	const secret = "body-marker-Zq9"
	if err := nc.Publish("memory.ops.fast_ack.store", []byte("not json "+secret)); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	waitUntil(t, 20*time.Second, "the bad body dead-lettered", func() bool { return streamMsgs(ctx, js, scfgDLQ) == 1 })
	if _, err := prod.Store(ctx, producer.StoreRequest{Tenant: "ops", Key: "refused", Payload: map[string]any{"text": secret}}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, "two dead letters and the failing tenant parked", func() bool {
		return streamMsgs(ctx, js, scfgDLQ) == 2 && streamMsgs(ctx, js, scfgParked) >= 1
	})

	// status --json: the parked tenant and its open breaker.
	out, err := jetbox(t, env, "status", "--json")
	if err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	var report statusReport
	if err := json.Unmarshal([]byte(out), &report); err != nil {
		t.Fatalf("status --json printed %q: %v", out, err)
	}
	if len(report.Groups) != 3 || report.Groups[1].Group != streams.ModeFastAck || report.Groups[1].Partitions != 24 || len(report.Members) != 1 || len(report.Workers) != 1 || report.Errors != nil {
		t.Fatalf("status --json: groups, members, workers or errors wrong:\n%s", out)
	}
	if len(report.Parked) != 1 || report.Parked[0].Tenant != "down" || report.Parked[0].Group != streams.ModeFastAck ||
		report.Parked[0].Waiting < 1 || report.Parked[0].Since.IsZero() || report.Parked[0].Reason == "" {
		t.Fatalf("status --json: parked = %+v, want tenant down with its waiting writes", report.Parked)
	}
	owned, openBreaker := 0, false
	for _, g := range report.Workers[0].Groups {
		owned += len(g.Partitions)
		for _, b := range g.Breakers {
			if b.Tenant == "down" && b.State == "open" {
				openBreaker = true
				if b.ConsecutiveFailures < 2 || b.OpenSince.IsZero() {
					t.Errorf("open breaker %+v: want the failures that opened it (at least 2) and since when", b)
				}
			}
		}
	}
	if owned != 72 || !openBreaker {
		t.Fatalf("status --json: the worker owns %d partitions (want 72), open breaker of down: %v\n%s", owned, openBreaker, out)
	}
	out, err = jetbox(t, env, "status")
	if err != nil || !strings.Contains(out, "owns 72 partitions: sync 0-23, fast_ack 0-23, background 0-23") ||
		!strings.Contains(out, "1 parked tenants") || !strings.Contains(out, "OPEN SINCE") {
		t.Fatalf("status: %v\n%s", err, out)
	}
	t.Logf("jetbox status:\n%s", out)

	// dlq list: the status of a write that never reached the memory API is "-".
	out, err = jetbox(t, env, "dlq", "list", "--tenant", "ops")
	if err != nil || !strings.Contains(out, "2 dead letters") {
		t.Fatalf("dlq list: %v\n%s", err, out)
	}
	for _, line := range strings.Split(out, "\n") {
		fields := strings.Fields(line)
		if len(fields) > 4 && fields[3] == "bad_input" && fields[4] != "-" {
			t.Errorf("bad_input dead letter shows status %q, want -:\n%s", fields[4], out)
		}
		if len(fields) > 4 && fields[3] == "permanent" && fields[4] != "422" {
			t.Errorf("refused write shows status %q, want 422:\n%s", fields[4], out)
		}
	}
	letters := map[string]uint64{}
	out, err = jetbox(t, env, "dlq", "list", "--json", "--mode", "fast_ack", "--op", "store")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var d dlq.DeadLetter
		if err := json.Unmarshal([]byte(line), &d); err != nil {
			t.Fatalf("dlq list --json line %q: %v", line, err)
		}
		letters[d.Class] = d.Seq
	}
	bad, refused := letters["bad_input"], letters["permanent"]
	if bad == 0 || refused == 0 {
		t.Fatalf("dlq list --json: %v, want a bad_input and a permanent dead letter", letters)
	}
	if out, _ := jetbox(t, env, "dlq", "list", "--class", "bad_input", "--seq", strconv.FormatUint(bad, 10)); !strings.Contains(out, "1 dead letters") {
		t.Fatalf("dlq list --class --seq:\n%s", out)
	}
	if out, _ := jetbox(t, env, "dlq", "list", "--op", "link"); !strings.Contains(out, "0 dead letters") {
		t.Fatalf("dlq list --op link:\n%s", out)
	}

	// dlq show: why, the memory API's answer, headers, and the body.
	out, err = jetbox(t, env, "dlq", "show", strconv.FormatUint(refused, 10))
	if err != nil {
		t.Fatalf("dlq show: %v\n%s", err, out)
	}
	for _, want := range []string{"permanent", "422", "ops may not write here", "Soma-Dlq-Class: permanent", "memory.ops.fast_ack.store", secret} {
		if !strings.Contains(out, want) {
			t.Errorf("dlq show lacks %q:\n%s", want, out)
		}
	}
	t.Logf("jetbox dlq show:\n%s", out)
	out, err = jetbox(t, env, "dlq", "show", "--json", strconv.FormatUint(bad, 10))
	var shownBad struct {
		Class      string              `json:"class"`
		HTTPStatus int                 `json:"http_status"`
		Body       string              `json:"body"`
		Headers    map[string][]string `json:"headers"`
	}
	if err != nil || json.Unmarshal([]byte(out), &shownBad) != nil || shownBad.Class != "bad_input" || shownBad.HTTPStatus != 0 ||
		shownBad.Body != "not json "+secret || shownBad.Headers["Soma-Dlq-Class"][0] != "bad_input" {
		t.Fatalf("dlq show --json: %v\n%s", err, out)
	}
	if out, err := jetbox(t, env, "dlq", "show", "999"); err == nil || !strings.Contains(out, "no such dead letter") {
		t.Fatalf("dlq show 999: %v\n%s", err, out)
	}

	// replay --dry-run lists the one it would replay, leaves the
	// bad_input one, and changes nothing.
	out, err = jetbox(t, env, "dlq", "replay", "--tenant", "ops", "--dry-run")
	if err != nil || !strings.Contains(out, "would replay 1 dead letters; 1 bad_input left in place") {
		t.Fatalf("dlq replay --dry-run: %v\n%s", err, out)
	}
	if n := streamMsgs(ctx, js, scfgDLQ); n != 2 {
		t.Fatalf("after a dry run: %d dead letters, want 2", n)
	}
	// drop asks, and refuses without a terminal to ask on.
	out, err = jetbox(t, env, "dlq", "drop", "--seq", strconv.FormatUint(bad, 10))
	if err == nil || !strings.Contains(out, "--yes") || streamMsgs(ctx, js, scfgDLQ) != 2 {
		t.Fatalf("dlq drop without a terminal or --yes: %v\n%s", err, out)
	}
	out, err = jetbox(t, env, "dlq", "drop", "--seq", strconv.FormatUint(bad, 10), "--yes")
	if err != nil || !strings.Contains(out, "dropped 1 dead letters") || streamMsgs(ctx, js, scfgDLQ) != 1 {
		t.Fatalf("dlq drop --yes: %v\n%s", err, out)
	}
	if _, err := dlq.Get(ctx, js, streams.DefaultConfig(), refused); err != nil {
		t.Fatalf("the other dead letter went too: %v", err)
	}
	if err := worker.stop(t, syscall.SIGTERM, 30*time.Second); err != nil {
		t.Fatalf("worker exit: %v", err)
	}
	if strings.Contains(worker.out.String(), secret) {
		t.Fatal("a dead letter's body appeared in the worker's log")
	}
}
