package embedded

import (
	"bytes"
	"errors"
	"strings"
	"testing"

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
