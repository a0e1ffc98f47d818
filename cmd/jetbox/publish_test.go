package main

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/jetbox-dev/jetbox/internal/natstest"
	"github.com/jetbox-dev/jetbox/streams"
)

// 'jetbox publish' past a tenant's quota says so and exits non-zero, in
// every mode, background included.
func TestPublishPastTheTenantQuotaFails(t *testing.T) {
	srv := natstest.Start(t)
	_, js := srv.Connect(t)
	cfg := streams.DefaultConfig()
	cfg.TenantMaxPending = 2
	if _, err := streams.Provision(context.Background(), js, cfg); err != nil {
		t.Fatal(err)
	}
	env := []string{"NATS_URL=" + srv.ClientURL(), "SOMABRAIN_OUTBOX_PUBLISH_TIMEOUT=300ms", "SOMABRAIN_OUTBOX_SYNC_TIMEOUT=200ms"}
	for _, mode := range []string{"fast_ack", "sync", "background"} {
		for i := range 2 {
			if out, err := jetbox(t, env, "publish", "--mode", mode, "--tenant", "acme", "--coord", "1,2,3"); err != nil {
				t.Fatalf("%s write %d: %v\n%s", mode, i+1, err, out)
			}
		}
		out, err := jetbox(t, env, "publish", "--mode", mode, "--tenant", "acme", "--coord", "1,2,3")
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 {
			t.Fatalf("%s write past the quota: %v, want exit code 1\n%s", mode, err, out)
		}
		if !strings.Contains(out, `tenant backlog full: tenant "acme"`) || !strings.Contains(out, "SOMABRAIN_OUTBOX_TENANT_MAX_PENDING") {
			t.Fatalf("%s write past the quota printed:\n%s", mode, out)
		}
		t.Logf("%s: %s", mode, strings.TrimSpace(out))
	}
	// Another tenant is not held back.
	if out, err := jetbox(t, env, "publish", "--mode", "fast_ack", "--tenant", "globex", "--coord", "1,2,3"); err != nil {
		t.Fatalf("globex: %v\n%s", err, out)
	}
}
