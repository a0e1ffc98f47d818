package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/jetbox-dev/jetbox/internal/memapi"
	"github.com/jetbox-dev/jetbox/producer"
	"github.com/jetbox-dev/jetbox/streams"
)

// Secrets (the memory API token, the NATS password, also inside NATS_URL
// and the endpoint, in any form) and payloads never show in what a worker prints: its log, through
// retries, dead letters and a failed start; its metrics; 'jetbox status'
// and 'jetbox config'.
func TestSecretsAndPayloadsStayOutOfLogsMetricsAndOutput(t *testing.T) {
	const (
		apiToken = "api-token-s3cr3t"
		natsPass = "nats-pass-s3cr3t"
		marker   = "payload-marker-7Qx"
	)
	secrets := []string{apiToken, natsPass, marker}

	srv := startNATSWithPassword(t, "jetbox", natsPass)
	natsURL := "nats://jetbox:" + natsPass + "@" + srv.Addr().String()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := streams.Provision(ctx, js, streams.DefaultConfig()); err != nil {
		t.Fatal(err)
	}

	// The memory API: "down" fails every call (retries, then the breaker),
	// and "rejected" gets a 4xx the write is dead-lettered for.
	store, err := memapi.Open(memapi.Options{Path: filepath.Join(t.TempDir(), "m.db"), Token: apiToken, Fail: func(tenant string) bool { return tenant == "down" }})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	apiCtx, stopAPI := context.WithCancel(context.Background())
	defer stopAPI()
	go memapi.ServeListener(apiCtx, ln, store, zerolog.Nop())

	httpAddr := freeAddr(t)
	env := []string{
		"NATS_URL=" + natsURL, "NATS_PASSWORD=" + natsPass,
		"SOMABRAIN_MEMORY_HTTP_ENDPOINT=http://" + ln.Addr().String(), "SOMABRAIN_MEMORY_HTTP_TOKEN=" + apiToken,
		"SOMABRAIN_OUTBOX_HTTP_LISTEN=" + httpAddr, "SOMABRAIN_OUTBOX_LOG_LEVEL=debug",
		"SOMABRAIN_OUTBOX_BACKOFF_BASE=20ms", "SOMABRAIN_MEMORY_FAILURE_THRESHOLD=2",
	}
	p := startRun(t, env)
	waitReady(t, httpAddr)

	prod, err := producer.New(nc, producer.Config{Mode: streams.ModeFastAck})
	if err != nil {
		t.Fatal(err)
	}
	payload := map[string]any{"text": marker}
	for i, tenant := range []string{"fine", "down", "down", "down"} {
		if _, err := prod.Store(ctx, producer.StoreRequest{Tenant: tenant, Key: string(rune('a' + i)), Payload: payload}); err != nil {
			t.Fatal(err)
		}
	}
	// A store whose payload is not an object is refused by the memory API
	// (422) and dead-lettered: the answer is logged, the payload is not.
	bad := nats.NewMsg("memory.rejected.fast_ack.store")
	bad.Data = []byte(`{"coord":"1,2,3","payload":{"text":"` + marker + `"},"memory_type":"` + marker + `"}`)
	if _, err := js.PublishMsg(ctx, bad); err != nil {
		t.Fatal(err)
	}
	// The log is read only once the worker has exited; meanwhile the
	// streams say how far it got.
	waitUntil(t, 20*time.Second, "the good write applied, one dead-lettered, the failing tenant parked", func() bool {
		return store.TenantStats("fine").Applied == 1 && streamMsgs(ctx, js, scfgDLQ) == 1 && streamMsgs(ctx, js, scfgParked) >= 1
	})

	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics := new(bytes.Buffer)
	metrics.ReadFrom(resp.Body)
	resp.Body.Close()
	status, err := jetbox(t, env, "status")
	if err != nil {
		t.Fatalf("status: %v\n%s", err, status)
	}
	config, err := jetbox(t, env, "config")
	if err != nil {
		t.Fatalf("config: %v\n%s", err, config)
	}
	// Secrets in every form a URL carries them: a list, a token as the
	// user, a query parameter, a URL that does not parse.
	urlForms, err := jetbox(t, []string{
		"NATS_URL=nats://jetbox:" + natsPass + "@127.0.0.1:4222,nats://" + natsPass + "@127.0.0.1:4223",
		"SOMABRAIN_MEMORY_HTTP_ENDPOINT=https://mem.example/v1?api_key=" + apiToken + "&page=2",
	}, "config")
	if err != nil {
		t.Fatalf("config: %v\n%s", err, urlForms)
	}
	config += urlForms
	if urlForms, err = jetbox(t, []string{"NATS_URL=nats://jetbox:p%zz" + natsPass + "@127.0.0.1:4222"}, "config"); err != nil {
		t.Fatalf("config: %v\n%s", err, urlForms)
	}
	config += urlForms
	if err := p.stop(t, syscall.SIGTERM, 30*time.Second); err != nil {
		t.Fatalf("jetbox run exited with %v", err)
	}
	if log := p.out.String(); !strings.Contains(log, "dead-lettered") || !strings.Contains(log, "tenant parked") {
		t.Fatalf("the worker log lacks the dead letter or the parking:\n%s", log)
	}
	// A start that fails to connect says why without the password, also
	// when NATS_URL does not parse, and when the endpoint does not.
	failed, err := jetbox(t, append(env, "NATS_URL=nats://jetbox:wrong-"+natsPass+"@"+srv.Addr().String(), "SOMABRAIN_OUTBOX_HTTP_LISTEN=off"), "run")
	if err == nil {
		t.Fatalf("run with a wrong NATS password started:\n%s", failed)
	}
	for _, broken := range []string{
		"NATS_URL=nats://jetbox:p%zz" + natsPass + "@" + srv.Addr().String(),
		"SOMABRAIN_MEMORY_HTTP_ENDPOINT=http://api:" + apiToken + "@[::1",
	} {
		out, err := jetbox(t, append(env, broken, "SOMABRAIN_OUTBOX_HTTP_LISTEN=off"), "run")
		if err == nil {
			t.Fatalf("run with %s started:\n%s", broken, out)
		}
		failed += out
	}

	for what, text := range map[string]string{"worker log": p.out.String(), "metrics": metrics.String(), "status": status, "config": config, "failed start": failed} {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("%q appears in the %s:\n%s", s, what, grep(text, s))
			}
		}
	}
	for _, why := range []string{"uthorization", "NATS_URL does not parse", "SOMABRAIN_MEMORY_HTTP_ENDPOINT"} {
		if !strings.Contains(failed, why) {
			t.Errorf("the failed starts do not say %q:\n%s", why, failed)
		}
	}
}

var (
	scfgDLQ    = streams.DefaultConfig().DLQStream
	scfgParked = streams.DefaultConfig().ParkingStream
)

// streamMsgs is the number of messages a stream holds, -1 if unknown.
func streamMsgs(ctx context.Context, js jetstream.JetStream, name string) int64 {
	s, err := js.Stream(ctx, name)
	if err != nil {
		return -1
	}
	info, err := s.Info(ctx)
	if err != nil {
		return -1
	}
	return int64(info.State.Msgs)
}

// startNATSWithPassword runs a JetStream server on a random loopback port
// that lets in only user:password.
func startNATSWithPassword(t *testing.T, user, password string) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
		Username: user, Password: password, NoSigs: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}
