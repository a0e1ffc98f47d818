package memapi

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/jetbox-dev/jetbox/internal/config"
)

// Without a token the memory API listens beyond loopback only when the
// risk is accepted, and then warns. The decision is tested on addresses
// it never listens on.
func TestListenBeyondLoopbackNeedsATokenOrAcceptedRisk(t *testing.T) {
	open := openTestStore(t, Options{})
	withToken := openTestStore(t, Options{Token: "tok"})
	accepted := openTestStore(t, Options{AllowInsecure: true})
	for _, addr := range []string{"0.0.0.0:0", "[::]:0", "10.1.2.3:4222"} {
		var log bytes.Buffer
		err := open.checkExposure(addr, zerolog.New(&log))
		if !errors.Is(err, config.ErrExposed) {
			t.Fatalf("%s without a token: %v; want %v", addr, err, config.ErrExposed)
		}
		for _, name := range []string{"SOMABRAIN_OUTBOX_MEMAPI_LISTEN=" + addr, "SOMABRAIN_MEMORY_HTTP_TOKEN", "SOMABRAIN_OUTBOX_ALLOW_INSECURE=true"} {
			if !strings.Contains(err.Error(), name) {
				t.Errorf("the refusal does not name %s: %v", name, err)
			}
		}
		if err := withToken.checkExposure(addr, zerolog.New(&log)); err != nil {
			t.Errorf("%s with a token: %v", addr, err)
		}
		if log.Len() != 0 {
			t.Fatalf("warned without cause: %s", log.String())
		}
		if err := accepted.checkExposure(addr, zerolog.New(&log)); err != nil {
			t.Errorf("%s with the risk accepted: %v", addr, err)
		}
		if !strings.Contains(log.String(), `"level":"warn"`) || !strings.Contains(log.String(), "SOMABRAIN_MEMORY_HTTP_TOKEN") {
			t.Errorf("%s with the risk accepted: no warning: %q", addr, log.String())
		}
	}
}

// On loopback the memory API needs no token and says nothing about it.
func TestListenOnLoopbackWithoutAToken(t *testing.T) {
	s := openTestStore(t, Options{})
	var log bytes.Buffer
	ln, err := Listen("127.0.0.1:0", s, zerolog.New(&log))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- ServeListener(ctx, ln, s, zerolog.Nop()) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cancel()
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || log.Len() != 0 {
		t.Fatalf("healthz %d, log %q; want 200 and no log", resp.StatusCode, log.String())
	}
}
