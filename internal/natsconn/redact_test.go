package natsconn_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/jetbox-dev/jetbox/internal/natsconn"
	"github.com/jetbox-dev/jetbox/internal/natstest"
)

// A failed connection says where it tried and why, and never shows a
// secret of NATS_URL: not a password or token that reached a server, not
// one in a URL that does not parse, not one in a list. Each secret holds
// "S3CR".
func TestConnectErrorsHideSecrets(t *testing.T) {
	srv := natstest.Start(t, natstest.WithServerOptions(func(o *server.Options) { o.Username, o.Password = "jetbox", "right-pw" }))
	addr := srv.Addr().String()
	for _, c := range []struct {
		name, url string
		want      error  // errors.Is, or nil
		wantText  string // in the error
	}{
		{"wrong password", "nats://jetbox:S3CR@" + addr, nats.ErrAuthorization, "nats://jetbox:[redacted]@" + addr},
		{"wrong token", "nats://S3CR@" + addr, nats.ErrAuthorization, "nats://[redacted]@" + addr},
		// nats.go tries a list in random order: the error is the refusal
		// or, when the closed port came last, no servers available.
		{"list", "nats://jetbox:S3CR@127.0.0.1:1,nats://jetbox:S3CR@" + addr, nil, "nats://jetbox:[redacted]@127.0.0.1:1,nats://jetbox:[redacted]@" + addr},
		{"bad escape", "nats://jetbox:p%zzS3CR@" + addr, natsconn.ErrSettings, "NATS_URL does not parse"},
		{"password with /", "nats://jetbox:12/S3CR@" + addr, nil, "nats://[redacted]@" + addr},
		{"password with a space", "nats://jetbox:S3CR pw@" + addr, natsconn.ErrSettings, "nats://[redacted]@" + addr},
		{"bad host, nothing secret", "nats://[::1", natsconn.ErrSettings, "missing ']' in host"},
	} {
		t.Run(c.name, func(t *testing.T) {
			nc, err := natsconn.Connect(natsconn.Settings{URL: c.url}, zerolog.Nop())
			if err == nil {
				nc.Close()
				t.Fatal("connected")
			}
			if strings.Contains(err.Error(), "S3CR") {
				t.Fatalf("the error shows a secret: %v", err)
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Errorf("error %v; want %v", err, c.want)
			}
			if !strings.Contains(err.Error(), c.wantText) {
				t.Errorf("error %q does not say %q", err, c.wantText)
			}
		})
	}
}
