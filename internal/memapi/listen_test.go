package memapi

import (
	"bytes"
	"context"
	"errors"
	"net"
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

// Serve refuses before it listens. 203.0.113.1 (TEST-NET-3, for
// documentation) is not this machine's, so nothing could listen there
// anyway: the error tells which stopped it.
func TestServeRefusesBeyondLoopbackWithoutAToken(t *testing.T) {
	skipIfLocal(t, "203.0.113.1")
	s := openTestStore(t, Options{})
	err := Serve(context.Background(), "203.0.113.1:9595", s, zerolog.Nop())
	if !errors.Is(err, config.ErrExposed) {
		t.Fatalf("Serve: %v; want %v", err, config.ErrExposed)
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

// skipIfLocal skips a test that must not be able to listen on ip, should
// this machine have it.
func skipIfLocal(t *testing.T, ip string) {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Skipf("interface addresses: %v", err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(net.ParseIP(ip)) {
			t.Skipf("this machine has %s", ip)
		}
	}
}
