package embedded

import (
	"bytes"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/jetbox-dev/jetbox/internal/config"
)

// Beyond loopback, the server starts only when its clients must
// authenticate or the risk is accepted (with a warning). The decision is
// tested on addresses it never listens on.
func TestCheckExposure(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", "[::]:0", "10.1.2.3:4222"} {
		t.Run(addr, func(t *testing.T) {
			var log bytes.Buffer
			opts := Options{Listen: addr, Log: zerolog.New(&log)}
			err := checkExposure(opts, &server.Options{})
			if !errors.Is(err, config.ErrExposed) {
				t.Fatalf("no authentication: %v; want %v", err, config.ErrExposed)
			}
			for _, name := range []string{"SOMABRAIN_OUTBOX_NATS_LISTEN=" + addr, "NATS_USER", "NATS_PASSWORD", "NATS_TOKEN", "SOMABRAIN_OUTBOX_ALLOW_INSECURE=true"} {
				if !strings.Contains(err.Error(), name) {
					t.Errorf("the refusal does not name %s: %v", name, err)
				}
			}
			if err := checkExposure(opts, &server.Options{Users: []*server.User{{Username: "u", Password: "p"}}, NoAuthUser: "u"}); !errors.Is(err, config.ErrExposed) {
				t.Errorf("users with a no-auth user: %v; want %v", err, config.ErrExposed)
			}
			for what, sopts := range map[string]*server.Options{
				"user and password":   {Username: "u", Password: "p"},
				"token":               {Authorization: "t"},
				"users":               {Users: []*server.User{{Username: "u", Password: "p"}}},
				"client certificates": {TLSVerify: true},
			} {
				if err := checkExposure(opts, sopts); err != nil {
					t.Errorf("%s: %v", what, err)
				}
			}
			if log.Len() != 0 {
				t.Fatalf("warned without cause: %s", log.String())
			}

			opts.AllowInsecure = true
			if err := checkExposure(opts, &server.Options{}); err != nil {
				t.Fatalf("accepted risk: %v", err)
			}
			if !strings.Contains(log.String(), `"level":"warn"`) || !strings.Contains(log.String(), "SOMABRAIN_OUTBOX_ALLOW_INSECURE") {
				t.Fatalf("no warning for the accepted risk: %q", log.String())
			}
		})
	}
}

// User and Password make clients authenticate.
func TestStartWithUserAndPassword(t *testing.T) {
	var log bytes.Buffer
	s, err := Start(Options{Listen: "127.0.0.1:0", StoreDir: t.TempDir(), User: "jetbox", Password: "pw", Log: zerolog.New(&log)})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Shutdown(); s.WaitForShutdown() }()
	if nc, err := nats.Connect(s.ClientURL()); !errors.Is(err, nats.ErrAuthorization) {
		if nc != nil {
			nc.Close()
		}
		t.Fatalf("connect without credentials: %v; want %v", err, nats.ErrAuthorization)
	}
	nc, err := nats.Connect(s.ClientURL(), nats.UserInfo("jetbox", "pw"))
	if err != nil {
		t.Fatalf("connect with credentials: %v", err)
	}
	nc.Close()
	if log.Len() != 0 {
		t.Fatalf("warned on loopback: %s", log.String())
	}
}

// A port another process holds fails the start at once, naming the
// variable, the address and the cause, instead of a wait for a server
// that never becomes ready.
func TestBusyPortFailsAtOnceWithTheCause(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	start := time.Now()
	s, err := Start(Options{Listen: ln.Addr().String(), StoreDir: t.TempDir()})
	if err == nil {
		s.Shutdown()
		t.Fatal("started on a busy port")
	}
	var le *ListenError
	if !errors.As(err, &le) || !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("error %v (%T), want a *ListenError wrapping EADDRINUSE", err, err)
	}
	for _, want := range []string{"SOMABRAIN_OUTBOX_NATS_LISTEN=" + ln.Addr().String(), "address already in use", "NATS_URL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("took %s to report a busy port", took)
	}
}

// A failure nats-server only logs (here: JetStream cannot use its store
// directory) is returned at once too.
func TestStartFailureIsReturnedAtOnce(t *testing.T) {
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	s, err := Start(Options{Listen: "127.0.0.1:0", StoreDir: file})
	if err == nil {
		s.Shutdown()
		t.Fatal("started with a file as its store directory")
	}
	var se *StartError
	if !errors.As(err, &se) || time.Since(start) > 5*time.Second {
		t.Fatalf("error %v (%T) after %s, want a *StartError at once", err, err, time.Since(start))
	}
	t.Log(err)
}

// A port taken between the check and the server's own listen is reported
// from what the server says, as the same *ListenError.
func TestPortLostAfterTheCheckIsReportedAtOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := ln.Addr().(*net.TCPAddr).Port
	start := time.Now()
	s, err := Start(Options{Listen: "127.0.0.1:0", StoreDir: t.TempDir(), Configure: func(o *server.Options) { o.Port = busy }})
	if err == nil {
		s.Shutdown()
		t.Fatal("started on a busy port")
	}
	var le *ListenError
	if !errors.As(err, &le) || !strings.Contains(err.Error(), "address already in use") || time.Since(start) > 5*time.Second {
		t.Fatalf("error %v (%T) after %s, want a *ListenError at once", err, err, time.Since(start))
	}
}
