package memapi

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// logLines hands each zerolog event (one Write per event) to the test.
type logLines chan string

func (l logLines) Write(p []byte) (int, error) {
	select {
	case l <- string(p):
	default: // the test reads only what it needs; never block the server
	}
	return len(p), nil
}

func TestServeAnswersAndShutsDownCleanly(t *testing.T) {
	s := openTestStore(t, Options{Token: "tok"})
	lines := make(logLines, 16)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	served := make(chan error, 1)
	go func() { served <- Serve(ctx, "127.0.0.1:0", s, zerolog.New(lines)) }()

	var addr string
	select {
	case line := <-lines:
		var event struct {
			Addr string `json:"addr"`
		}
		if err := json.Unmarshal([]byte(line), &event); err != nil || event.Addr == "" {
			t.Fatalf("first log line %q does not carry the address", line)
		}
		addr = event.Addr
	case err := <-served:
		t.Fatalf("Serve returned before listening: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not log its address")
	}

	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatalf("healthz: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("healthz status %d, want 200", resp.StatusCode)
	}

	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve returned %v on shutdown, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after ctx ended")
	}
	if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
		resp.Body.Close()
		t.Fatal("server still answers after Serve returned")
	}
}

func TestServeReportsListenFailure(t *testing.T) {
	s := openTestStore(t, Options{})
	if err := Serve(context.Background(), "127.0.0.1:-1", s, zerolog.Nop()); err == nil {
		t.Fatal("Serve on an invalid address returned nil")
	}
}
