package config

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jetbox-dev/jetbox/streams"
)

func TestDefaultsAreValid(t *testing.T) {
	c, err := Load(map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Memory.WriteMode != "sync" || c.Memory.FailureThreshold != 3 || c.Memory.ResetInterval.Duration() != time.Minute || c.Memory.DefaultTenant != "public" {
		t.Fatalf("contract defaults not kept: %+v", c)
	}
	if modes, _ := c.Worker.GroupModes(); len(modes) != 3 {
		t.Fatalf("groups %v", modes)
	}
}

func TestStreamsLayoutFollowsTheVariables(t *testing.T) {
	c, err := Load(map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	if s := c.Outbox.Streams(); s.Partitions != 24 || s.MemberTTL != 10*time.Second || s.MembersBucket != "MEMORY_WORKERS" {
		t.Fatalf("default layout: %d partitions, member TTL %v, bucket %s", s.Partitions, s.MemberTTL, s.MembersBucket)
	}
	c, err = Load(map[string]string{"SOMABRAIN_OUTBOX_PARTITIONS": "4", "SOMABRAIN_OUTBOX_MEMBER_TTL": "3s", "SOMABRAIN_OUTBOX_MAX_ACK_PENDING": "50"})
	if err != nil {
		t.Fatal(err)
	}
	if s := c.Outbox.Streams(); s.Partitions != 4 || s.MemberTTL != 3*time.Second || s.MaxAckPending != 50 {
		t.Fatalf("layout: %d partitions, member TTL %v, max ack pending %d", s.Partitions, s.MemberTTL, s.MaxAckPending)
	}
	for _, bad := range []string{"0", "-1", "x"} {
		if _, err := Load(map[string]string{"SOMABRAIN_OUTBOX_PARTITIONS": bad}); !errors.Is(err, ErrInvalid) {
			t.Errorf("SOMABRAIN_OUTBOX_PARTITIONS=%s: %v, want ErrInvalid", bad, err)
		}
	}
}

func TestResetIntervalIsSeconds(t *testing.T) {
	for in, want := range map[string]time.Duration{"60": time.Minute, "0.5": 500 * time.Millisecond, "90s": 90 * time.Second} {
		c, err := Load(map[string]string{"SOMABRAIN_MEMORY_RESET_INTERVAL": in})
		if err != nil || c.Memory.ResetInterval.Duration() != want {
			t.Errorf("%q: %v %v, want %v", in, c.Memory.ResetInterval.Duration(), err, want)
		}
	}
}

// A bad value stops start-up with a message that names the variable and
// what it may be.
func TestBadValuesNameTheVariableAndTheAllowedValues(t *testing.T) {
	cases := map[string][2]string{
		"SOMABRAIN_MEMORY_WRITE_MODE":        {"eventually", "sync, fast_ack, background"},
		"SOMABRAIN_MEMORY_FAILURE_THRESHOLD": {"many", "consecutive transient failures"},
		"SOMABRAIN_MEMORY_RESET_INTERVAL":    {"soon", "seconds"},
		"SOMABRAIN_MEMORY_HTTP_ENDPOINT":     {"ftp://x", "http:// or https://"},
		"SOMABRAIN_DEFAULT_TENANT":           {"a\x01b", "control character"},
		"SOMABRAIN_OUTBOX_REPLICAS":          {"2", "1, 3 or 5"},
		"SOMABRAIN_OUTBOX_STORAGE":           {"tape", "file, memory"},
		"SOMABRAIN_OUTBOX_MODES":             {"sync,later", "sync, fast_ack, background"},
		"SOMABRAIN_OUTBOX_REQUEST_TIMEOUT":   {"45s", "shorter than SOMABRAIN_OUTBOX_ACK_WAIT"},
		"SOMABRAIN_OUTBOX_CONCURRENCY":       {"0", "above 0"},
		// The worker would take 0 for its default of 100, not for "none".
		"SOMABRAIN_OUTBOX_METRICS_TENANTS":    {"0", "above 0"},
		"SOMABRAIN_OUTBOX_LOG_LEVEL":          {"loud", "debug, info, warn, error"},
		"SOMABRAIN_OUTBOX_ACK_WAIT":           {"forever", "ACK_WAIT"},
		"SOMABRAIN_OUTBOX_PARTITIONS":         {"1001", "1 to 1000"},
		"SOMABRAIN_OUTBOX_MEMBER_TTL":         {"500ms", "at least 1s"},
		"SOMABRAIN_OUTBOX_NATS_SYNC":          {"often", "or always"},
		"SOMABRAIN_OUTBOX_TENANT_MAX_PENDING": {"0", "at least 1, or -1 for unlimited"},
		// Relay.Concurrency has the name of a Worker field too.
		"SOMABRAIN_RELAY_CONCURRENCY": {"x", "tenants relayed at once"},
	}
	for name, c := range cases {
		_, err := Load(map[string]string{name: c[0]})
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), c[1]) {
			t.Errorf("%s=%q: %v; want it to name the variable and say %q", name, c[0], err, c[1])
		}
	}
}

// An empty variable means its default (caarlos0/env), so the ops server is
// turned off with "off", not with an empty value.
func TestHTTPListenOff(t *testing.T) {
	c, err := Load(map[string]string{"SOMABRAIN_OUTBOX_HTTP_LISTEN": ""})
	if err != nil || c.Ops.HTTPListen != "127.0.0.1:9464" {
		t.Fatalf("empty: %q %v, want the default", c.Ops.HTTPListen, err)
	}
	c, err = Load(map[string]string{"SOMABRAIN_OUTBOX_HTTP_LISTEN": "off"})
	if err != nil || c.Ops.HTTPListen != HTTPListenOff {
		t.Fatalf("off: %q %v", c.Ops.HTTPListen, err)
	}
}

func TestVarsRedactSecrets(t *testing.T) {
	c, err := Load(map[string]string{
		"SOMABRAIN_MEMORY_HTTP_TOKEN": "s3cret-token", "NATS_PASSWORD": "s3cret-pw", "NATS_TOKEN": "s3cret-nt",
		"NATS_URL": "nats://alice:s3cret-url@127.0.0.1:4222,nats://s3cret-tok@127.0.0.1:4223", "SOMABRAIN_MEMORY_HTTP_ENDPOINT": "https://bob:s3cret-ep@127.0.0.1:9595",
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range c.Vars() {
		if strings.Contains(v.Value, "s3cret") {
			t.Errorf("%s shows a secret: %q", v.Name, v.Value)
		}
	}
}

// The tenant quota's default is the one the streams package declares; an
// empty value means it too, -1 means unlimited, and 0 is refused.
func TestTenantMaxPending(t *testing.T) {
	for in, want := range map[string]int64{"": streams.DefaultTenantMaxPending, "-1": -1, "5": 5} {
		environ := map[string]string{}
		if in != "" {
			environ["SOMABRAIN_OUTBOX_TENANT_MAX_PENDING"] = in
		}
		for _, env := range []map[string]string{environ, {"SOMABRAIN_OUTBOX_TENANT_MAX_PENDING": in}} {
			c, err := Load(env)
			if err != nil || c.Outbox.TenantMaxPending != want || c.Outbox.Streams().TenantMaxPending != want {
				t.Errorf("%v: %d (streams %d), %v; want %d", env, c.Outbox.TenantMaxPending, c.Outbox.Streams().TenantMaxPending, err, want)
			}
		}
	}
	for _, bad := range []string{"0", "-2", "many"} {
		_, err := Load(map[string]string{"SOMABRAIN_OUTBOX_TENANT_MAX_PENDING": bad})
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "SOMABRAIN_OUTBOX_TENANT_MAX_PENDING") {
			t.Errorf("%q: %v, want ErrInvalid naming the variable", bad, err)
		}
	}
	c, _ := Load(map[string]string{})
	for _, v := range c.Vars() {
		if v.Name == "SOMABRAIN_OUTBOX_TENANT_MAX_PENDING" && v.Default != "10000" {
			t.Errorf("documented default %q, want 10000", v.Default)
		}
	}
}

// SomaBrain's SOMABRAIN_MEMORY_FAST_ACK is read as the write mode when
// jetbox's own name is unset, and said so; jetbox's name wins.
func TestSomaBrainFastAckAlias(t *testing.T) {
	for _, c := range []struct {
		env      map[string]string
		mode     string
		note     string
		badInput bool
	}{
		{map[string]string{"SOMABRAIN_MEMORY_FAST_ACK": "true"}, "fast_ack", "read as SOMABRAIN_MEMORY_WRITE_MODE=fast_ack", false},
		{map[string]string{"SOMABRAIN_MEMORY_FAST_ACK": "false"}, "sync", "keeps its default", false},
		{map[string]string{"SOMABRAIN_MEMORY_FAST_ACK": "1", "SOMABRAIN_MEMORY_WRITE_MODE": "background"}, "background", "is ignored", false},
		{map[string]string{"SOMABRAIN_MEMORY_FAST_ACK": "sometimes"}, "", "", true},
	} {
		cfg, err := Load(c.env)
		if c.badInput {
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "SOMABRAIN_MEMORY_FAST_ACK") {
				t.Errorf("%v: err %v, want one naming the variable", c.env, err)
			}
			continue
		}
		if err != nil || cfg.Memory.WriteMode != c.mode {
			t.Errorf("%v: mode %q, err %v; want %q", c.env, cfg.Memory.WriteMode, err, c.mode)
		}
		if notes := AliasNotes(c.env); len(notes) != 1 || !strings.Contains(notes[0], c.note) {
			t.Errorf("%v: notes %q, want one saying %q", c.env, notes, c.note)
		}
	}
}
