package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetbox-dev/jetbox/internal/memapi"
	"github.com/jetbox-dev/jetbox/internal/natstest"
	"github.com/jetbox-dev/jetbox/producer"
	"github.com/jetbox-dev/jetbox/streams"
)

// binary is jetbox built once for the tests that run it as a process.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "jetbox-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "jetbox")
	args := []string{"build", "-o", binary}
	if raceEnabled {
		args = append(args, "-race")
	}
	out, err := exec.Command("go", append(args, ".")...).CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build jetbox: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// jetbox runs the binary to completion with env added to a clean base.
func jetbox(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(baseEnv(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func baseEnv() []string {
	return []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "SOMABRAIN_OUTBOX_LOG_FORMAT=json", "SOMABRAIN_OUTBOX_INGEST_LISTEN=off"}
}

// process is a 'jetbox run' started by a test and stopped by its PID.
type process struct {
	cmd  *exec.Cmd
	out  *bytes.Buffer
	done chan error
}

func startRun(t *testing.T, env []string) *process {
	t.Helper()
	cmd := exec.Command(binary, "run")
	cmd.Env = append(baseEnv(), env...)
	p := &process{cmd: cmd, out: &bytes.Buffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("jetbox run output:\n%s", p.out.String())
		}
	})
	return p
}

func (p *process) stop(t *testing.T, sig syscall.Signal, within time.Duration) error {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		return err
	case <-time.After(within):
		t.Fatalf("jetbox run did not exit within %s of %s", within, sig)
		return nil
	}
}

// waitReady waits for a 'jetbox run' to answer /readyz with 200.
func waitReady(t *testing.T, httpAddr string) {
	t.Helper()
	waitUntil(t, 30*time.Second, "readyz", func() bool {
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

func waitUntil(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The README's walk-through: 'jetbox run' with embedded defaults, then a
// write in each mode from the shell, each applied.
func TestRunWithEmbeddedDefaultsAppliesAWriteInEachMode(t *testing.T) {
	data := t.TempDir()
	natsAddr, memAddr, httpAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	env := []string{
		"SOMABRAIN_OUTBOX_DATA_DIR=" + data, "SOMABRAIN_OUTBOX_NATS_LISTEN=" + natsAddr,
		"SOMABRAIN_OUTBOX_MEMAPI_LISTEN=" + memAddr, "SOMABRAIN_OUTBOX_HTTP_LISTEN=" + httpAddr,
		"SOMABRAIN_MEMORY_HTTP_TOKEN=walkthrough-secret",
	}
	p := startRun(t, env)
	waitReady(t, httpAddr)

	for _, mode := range []string{"sync", "fast_ack", "background"} {
		out, err := jetbox(t, env, "publish", "--mode", mode, "--namespace", "memory:walk-tenant", "--key", "hello-"+mode, "--payload", `{"text":"hello"}`)
		if err != nil {
			t.Fatalf("publish %s: %v\n%s", mode, err, out)
		}
		var res struct {
			Outcome string `json:"outcome"`
			Coord   string `json:"coord"`
			Status  int    `json:"status"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("publish %s printed %q", mode, out)
		}
		want := map[string]string{"sync": "applied", "fast_ack": "stored", "background": "stored"}[mode]
		if res.Outcome != want || res.Coord == "" {
			t.Fatalf("publish %s: %+v, want outcome %s", mode, res, want)
		}
		waitUntil(t, 10*time.Second, mode+" write readable from the memory API", func() bool {
			req, _ := http.NewRequest("GET", "http://"+memAddr+"/memories/"+res.Coord, nil)
			req.Header.Set("Authorization", "Bearer walkthrough-secret")
			req.Header.Set("X-Soma-Tenant", "walk-tenant")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == 200
		})
	}

	// The same through the ingest gateway the worker runs.
	out, err := jetbox(t, env, "publish", "--via-gateway", "--mode", "sync", "--namespace", "memory:walk-tenant", "--key", "hello-gateway", "--payload", `{"text":"hello"}`)
	if err != nil || !strings.Contains(out, `"outcome": "applied"`) || !strings.Contains(out, `"subject": "ingest.memory.walk-tenant.sync.store"`) {
		t.Fatalf("publish --via-gateway: %v\n%s", err, out)
	}

	resp0, err := http.Get("http://" + httpAddr + "/healthz")
	if err != nil || resp0.StatusCode != 200 {
		t.Fatalf("/healthz: %v %v", resp0, err)
	}
	resp0.Body.Close()

	out, err = jetbox(t, env, "status")
	if err != nil || !strings.Contains(out, "1 workers answered") || !strings.Contains(out, "walk-tenant") {
		t.Fatalf("status: %v\n%s", err, out)
	}
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body := new(bytes.Buffer)
	body.ReadFrom(resp.Body)
	resp.Body.Close()
	if !strings.Contains(body.String(), `jetbox_worker_applied_total{group="sync",tenant="walk-tenant"} 2`) ||
		!strings.Contains(body.String(), `jetbox_worker_received_total{group="background",tenant="walk-tenant"} 1`) ||
		!strings.Contains(body.String(), "jetbox_ingest_forwarded_total 1") {
		t.Fatalf("metrics lack the applied sync write:\n%s", grep(body.String(), "jetbox_worker_applied"))
	}

	// A dead letter, as the README makes one with the nats CLI: a body no
	// worker can decode. Then show it, dry-run its replay, and drop it.
	nc, err := nats.Connect("nats://" + natsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := nc.Publish("memory.walk-tenant.fast_ack.store", []byte("not json")); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	waitUntil(t, 20*time.Second, "the dead letter listed", func() bool {
		out, _ = jetbox(t, env, "dlq", "list", "--tenant", "walk-tenant")
		return strings.Contains(out, "1 dead letters")
	})
	if fields := strings.Fields(grep(out, "bad_input")); len(fields) < 5 || fields[0] != "1" || fields[4] != "-" {
		t.Fatalf("dlq list: want dead letter 1, bad_input, status -:\n%s", out)
	}
	if out, err := jetbox(t, env, "dlq", "show", "1"); err != nil || !strings.Contains(out, "bad_input") || !strings.Contains(out, "body is not valid JSON") || !strings.Contains(out, "not json") {
		t.Fatalf("dlq show 1: %v\n%s", err, out)
	}
	if out, err := jetbox(t, env, "dlq", "replay", "--tenant", "walk-tenant", "--dry-run"); err != nil || !strings.Contains(out, "would replay 0 dead letters; 1 bad_input left in place") {
		t.Fatalf("dlq replay --dry-run: %v\n%s", err, out)
	}
	if out, err := jetbox(t, env, "dlq", "drop", "--seq", "1", "--yes"); err != nil || !strings.Contains(out, "dropped 1 dead letters") {
		t.Fatalf("dlq drop: %v\n%s", err, out)
	}
	if out, _ := jetbox(t, env, "dlq", "list"); !strings.Contains(out, "0 dead letters") {
		t.Fatalf("after drop:\n%s", out)
	}

	if err := p.stop(t, syscall.SIGTERM, 30*time.Second); err != nil {
		t.Fatalf("jetbox run exited with %v", err)
	}
	if strings.Contains(p.out.String(), "walkthrough-secret") {
		t.Fatal("the memory API token appeared in the log")
	}
}

func grep(s, substr string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// SIGTERM while writes stream in: the worker drains and exits 0, a second
// worker finishes the rest, and every write is applied exactly once.
func TestSIGTERMUnderLoadLosesNothing(t *testing.T) {
	srv := natstest.Start(t)
	nc, js := srv.Connect(t)
	store, err := memapi.Open(memapi.Options{Path: filepath.Join(t.TempDir(), "m.db"), Delay: 2 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	api := httptest.NewServer(store.Handler())
	defer api.Close()
	ctx := context.Background()
	if _, err := streams.Provision(ctx, js, streams.DefaultConfig()); err != nil {
		t.Fatal(err)
	}
	env := []string{"NATS_URL=" + srv.ClientURL(), "SOMABRAIN_MEMORY_HTTP_ENDPOINT=" + api.URL, "SOMABRAIN_OUTBOX_HTTP_LISTEN=off", "SOMABRAIN_OUTBOX_CONCURRENCY=16"}

	first := startRun(t, env)
	prod, err := producer.New(nc, producer.Config{Mode: streams.ModeFastAck})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close(ctx)
	const total = 2000
	sent := make(chan error, 1)
	go func() {
		for i := 0; i < total; i++ {
			if _, err := prod.Store(ctx, producer.StoreRequest{Tenant: "t" + strconv.Itoa(i%10), Key: strconv.Itoa(i), Payload: map[string]any{"i": i}}); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	applied := func() uint64 { // different writes: a redelivery the memory API applied again counts once
		var n uint64
		for _, s := range store.Stats().Tenants {
			n += s.Distinct()
		}
		return n
	}
	waitUntil(t, 30*time.Second, "the first worker under load", func() bool { return applied() >= 200 })
	if err := first.stop(t, syscall.SIGTERM, 40*time.Second); err != nil {
		t.Fatalf("first worker exited with %v after SIGTERM\n%s", err, first.out.String())
	}
	if !strings.Contains(first.out.String(), "worker drained") {
		t.Fatalf("no drain on SIGTERM:\n%s", first.out.String())
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	atStop := applied()
	startRun(t, env)
	waitUntil(t, 60*time.Second, "all writes applied", func() bool { return applied() >= total })
	time.Sleep(300 * time.Millisecond)
	var repeated uint64
	for _, s := range store.Stats().Tenants {
		repeated += s.Repeated
	}
	if got := applied(); got != total {
		t.Fatalf("applied %d different writes, want exactly %d", got, total)
	}
	t.Logf("first worker applied %d before SIGTERM; writes the memory API applied again: %d", atStop, repeated)
	stream, _ := js.Stream(ctx, "MEMORY")
	info, _ := stream.Info(ctx)
	if info.State.Msgs != 0 {
		t.Fatalf("%d writes left in the outbox", info.State.Msgs)
	}
}

func TestConfigRedactsSecretsAndRejectsBadValues(t *testing.T) {
	env := []string{"SOMABRAIN_MEMORY_HTTP_TOKEN=tok-very-secret", "NATS_PASSWORD=pw-very-secret", "NATS_URL=nats://u:pw-very-secret@127.0.0.1:4222"}
	out, err := jetbox(t, env, "config")
	if err != nil {
		t.Fatalf("config: %v\n%s", err, out)
	}
	if strings.Contains(out, "very-secret") {
		t.Fatalf("secret in 'jetbox config' output:\n%s", out)
	}
	if !strings.Contains(out, "SOMABRAIN_MEMORY_HTTP_TOKEN") || !strings.Contains(out, "[redacted]") {
		t.Fatalf("config output lacks the redacted token:\n%s", out)
	}
	out, err = jetbox(t, []string{"SOMABRAIN_MEMORY_WRITE_MODE=eventually"}, "config")
	if err == nil || !strings.Contains(out, "SOMABRAIN_MEMORY_WRITE_MODE") || !strings.Contains(out, "sync, fast_ack, background") {
		t.Fatalf("bad write mode: %v\n%s", err, out)
	}
	out, err = jetbox(t, []string{"SOMABRAIN_MEMORY_FAILURE_THRESHOLD=many"}, "run")
	if err == nil || !strings.Contains(out, "SOMABRAIN_MEMORY_FAILURE_THRESHOLD") {
		t.Fatalf("bad threshold: %v\n%s", err, out)
	}
}
