package main

import (
	"testing"
	"time"

	"github.com/jetbox-dev/jetbox/internal/config"
	"github.com/jetbox-dev/jetbox/internal/embedded"
)

// SOMABRAIN_OUTBOX_NATS_SYNC reaches the embedded nats-server: how often it
// flushes its files decides what a machine crash can take of acknowledged
// writes.
func TestEmbeddedServerFlushesAsConfigured(t *testing.T) {
	cases := []struct {
		value    string // "" leaves the variable unset
		interval time.Duration
		always   bool
	}{
		{"", time.Second, false},
		{"2m", 2 * time.Minute, false},
		{"always", 0, true},
	}
	for _, c := range cases {
		environ := map[string]string{"SOMABRAIN_OUTBOX_DATA_DIR": t.TempDir(), "SOMABRAIN_OUTBOX_NATS_LISTEN": "127.0.0.1:0"}
		if c.value != "" {
			environ["SOMABRAIN_OUTBOX_NATS_SYNC"] = c.value
		}
		cfg, err := config.Load(environ)
		if err != nil {
			t.Fatal(err)
		}
		ns, err := embedded.Start(embeddedOptions(cfg))
		if err != nil {
			t.Fatal(err)
		}
		got := ns.JetStreamConfig()
		ns.Shutdown()
		ns.WaitForShutdown()
		if got.SyncAlways != c.always || (!c.always && got.SyncInterval != c.interval) {
			t.Errorf("SOMABRAIN_OUTBOX_NATS_SYNC=%q: server syncs always=%v every %s; want always=%v every %s",
				c.value, got.SyncAlways, got.SyncInterval, c.always, c.interval)
		}
	}
}
