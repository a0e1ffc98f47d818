package main

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/jetbox-dev/jetbox/consumer"
	"github.com/jetbox-dev/jetbox/frontdoor"
	"github.com/jetbox-dev/jetbox/ingest"
	"github.com/jetbox-dev/jetbox/internal/config"
	"github.com/jetbox-dev/jetbox/producer"
	"github.com/jetbox-dev/jetbox/relay"
	"github.com/jetbox-dev/jetbox/streams"
	"github.com/jetbox-dev/jetbox/tenancy"
)

// With no variable set, every part jetbox runs gets the defaults its
// package declares: each default is declared once, by the package that
// uses it, and the environment's defaults follow it. notFromEnv names the
// settings no variable sets; jetbox leaves them to the library (zero) or
// fills them in at run time.
func TestDefaultsAreTheLibrarys(t *testing.T) {
	cfg, err := config.Load(map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	hcfg, scfg := frontDoorConfig(cfg, "")
	for _, c := range []struct {
		what       string
		got, want  any
		notFromEnv []string
	}{
		{"streams.Config", cfg.Outbox.Streams(), streams.DefaultConfig(), nil},
		{"consumer.Config", workerConfig(cfg, ""), consumer.DefaultConfig(),
			[]string{"Endpoint", "Token", "MisconfiguredProbe", "Log", "Registerer", "HTTPClient", "TracerProvider"}},
		{"producer.Config", producerConfig(cfg), producer.DefaultConfig(),
			[]string{"BufferFullError", "MaxInFlight", "OnBackgroundError", "SubjectPrefix", "Registerer", "TracerProvider"}},
		{"ingest.Config", gatewayConfig(cfg), ingest.Config{ReplyPrefixes: ingest.DefaultReplyPrefixes},
			[]string{"Registerer", "Log"}},
		{"frontdoor.Config", hcfg, frontdoor.Config{
			Mode: streams.ModeSync, DefaultTenant: tenancy.DefaultTenant,
			MaxBodyBytes: frontdoor.DefaultMaxBodyBytes, MaxConcurrent: frontdoor.DefaultMaxConcurrent,
			ProxyTimeout: frontdoor.DefaultProxyTimeout,
		}, []string{"Producer", "MemoryAPI", "MemoryToken", "Tokens", "Log"}},
		{"frontdoor.ServerConfig", scfg, frontdoor.ServerConfig{
			Addr: frontdoor.DefaultListen, ReadTimeout: frontdoor.DefaultReadTimeout,
			IdleTimeout: frontdoor.DefaultIdleTimeout, MaxHeaderBytes: frontdoor.DefaultMaxHeaderBytes,
		}, nil},
		{"relay.Config", relayConfig(cfg), relay.Config{
			Mode: relay.DefaultMode, DefaultTenant: tenancy.DefaultTenant, Universe: producer.DefaultUniverse,
			PollInterval: relay.DefaultPollInterval, BatchSize: relay.DefaultBatchSize,
			Concurrency: relay.DefaultConcurrency, PublishTimeout: relay.DefaultPublishTimeout,
		}, []string{"StatusBucket", "ID", "Progress", "ProgressTerminal", "Log", "Registerer"}},
	} {
		got, want := reflect.ValueOf(c.got), reflect.ValueOf(c.want)
		for i := range got.NumField() {
			f := got.Type().Field(i)
			if slices.Contains(c.notFromEnv, f.Name) {
				if !got.Field(i).IsZero() {
					t.Errorf("%s.%s: jetbox's configuration sets it to %v; it is listed as set by no variable", c.what, f.Name, got.Field(i))
				}
				continue
			}
			if !reflect.DeepEqual(got.Field(i).Interface(), want.Field(i).Interface()) {
				t.Errorf("%s.%s: jetbox's default is %v, the library's %v; change the variable's default (internal/config) or the library's, whichever drifted", c.what, f.Name, got.Field(i), want.Field(i))
			}
		}
	}
}

// The parts jetbox runs get what the variables say.
func TestPartsFollowTheVariables(t *testing.T) {
	cfg, err := config.Load(map[string]string{
		"SOMABRAIN_MEMORY_WRITE_MODE": "background", "SOMABRAIN_MEMORY_HTTP_TOKEN": "tok",
		"SOMABRAIN_MEMORY_RESET_INTERVAL": "2.5", "SOMABRAIN_OUTBOX_MODES": "background,sync",
		"SOMABRAIN_OUTBOX_REPLY_PREFIXES": "_INBOX.a., _R.", "SOMABRAIN_OUTBOX_CONCURRENCY": "7",
		"SOMABRAIN_OUTBOX_PARTITIONS": "4", "SOMABRAIN_OUTBOX_BUFFER_SIZE": "9",
		"SOMABRAIN_OUTBOX_INGEST_LISTEN": "127.0.0.1:1", "SOMABRAIN_OUTBOX_INGEST_MAX_HEADER_BYTES": "100",
		"SOMABRAIN_OUTBOX_REQUEST_TIMEOUT": "3s", "SOMABRAIN_RELAY_MODE": "sync", "SOMABRAIN_RELAY_BATCH_SIZE": "5",
	})
	if err != nil {
		t.Fatal(err)
	}
	w := workerConfig(cfg, "http://127.0.0.1:2")
	if w.Endpoint != "http://127.0.0.1:2" || w.Token != "tok" || w.ResetInterval != 2500*time.Millisecond ||
		!slices.Equal(w.Modes, []streams.Mode{streams.ModeBackground, streams.ModeSync}) ||
		!slices.Equal(w.ReplyPrefixes, []string{"_INBOX.a.", "_R."}) || w.Concurrency != 7 || w.Streams.Partitions != 4 {
		t.Errorf("worker: %+v", w)
	}
	if g := gatewayConfig(cfg); !slices.Equal(g.ReplyPrefixes, []string{"_INBOX.a.", "_R."}) {
		t.Errorf("gateway: %+v", g)
	}
	if p := producerConfig(cfg); p.Mode != streams.ModeBackground || p.BufferSize != 9 {
		t.Errorf("producer: %+v", p)
	}
	h, s := frontDoorConfig(cfg, "http://127.0.0.1:2")
	if h.Mode != streams.ModeBackground || h.MemoryAPI != "http://127.0.0.1:2" || h.MemoryToken != "tok" || h.ProxyTimeout != 3*time.Second ||
		s.Addr != "127.0.0.1:1" || s.MaxHeaderBytes != 100 {
		t.Errorf("front door: %+v %+v", h, s)
	}
	if r := relayConfig(cfg); r.Mode != streams.ModeSync || r.BatchSize != 5 {
		t.Errorf("relay: %+v", r)
	}
}
