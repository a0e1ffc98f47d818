package main

import (
	"path/filepath"

	"github.com/jetbox-dev/jetbox/consumer"
	"github.com/jetbox-dev/jetbox/frontdoor"
	"github.com/jetbox-dev/jetbox/ingest"
	"github.com/jetbox-dev/jetbox/internal/config"
	"github.com/jetbox-dev/jetbox/internal/embedded"
	"github.com/jetbox-dev/jetbox/internal/memapi"
	"github.com/jetbox-dev/jetbox/producer"
	"github.com/jetbox-dev/jetbox/relay"
	"github.com/jetbox-dev/jetbox/streams"
)

// The configuration of each part jetbox runs, as cfg sets it. cfg is valid
// (config.Load checked it). What only the running process has (loggers,
// metrics registries, tracer providers, connections, callbacks) is left
// for the caller to fill in. These live here rather than in
// internal/config because the packages they configure are tested with
// servers that import internal/config.

// embeddedOptions is the embedded nats-server of 'jetbox run'. Its
// clients authenticate as the workers connect (NATS_USER and
// NATS_PASSWORD, or NATS_TOKEN), when those are set.
func embeddedOptions(cfg config.Config) embedded.Options {
	interval, always, _ := cfg.EmbeddedSync()
	return embedded.Options{
		Listen: cfg.NATSListen, StoreDir: filepath.Join(cfg.DataDir, "nats"), Name: "jetbox",
		SyncInterval: interval, SyncAlways: always,
		User: cfg.NATSUser, Password: cfg.NATSPassword, Token: cfg.NATSToken,
		AllowInsecure: cfg.AllowInsecure,
	}
}

// memAPIOptions is the development memory API.
func memAPIOptions(cfg config.Config) memapi.Options {
	return memapi.Options{Path: filepath.Join(cfg.DataDir, "memapi.db"), Token: cfg.MemoryToken, AllowInsecure: cfg.AllowInsecure}
}

// workerConfig is the worker of 'jetbox run', calling the memory API at
// endpoint.
func workerConfig(cfg config.Config, endpoint string) consumer.Config {
	modes, _ := cfg.GroupModes()
	return consumer.Config{
		Endpoint: endpoint, Token: cfg.MemoryToken, Streams: cfg.Streams(), Modes: modes,
		Concurrency: cfg.Concurrency, RequestTimeout: cfg.RequestTimeout, MaxAttempts: cfg.MaxAttempts,
		BackoffBase: cfg.BackoffBase, BackoffMax: cfg.BackoffMax, MaxRetryAfter: cfg.MaxRetryAfter,
		FailureThreshold: cfg.FailureThreshold, ResetInterval: cfg.ResetInterval.Duration(),
		BreakerIdleTTL: cfg.BreakerIdleTTL, ShutdownTimeout: cfg.ShutdownTimeout, ReplyPrefixes: cfg.ReplyPrefixList(),
		LogPayloads: cfg.LogPayloads, MetricsTenants: cfg.MetricsTenants, PullMaxBytes: cfg.PullMaxBytes,
	}
}

// gatewayConfig is the ingest gateway of 'jetbox run'.
func gatewayConfig(cfg config.Config) ingest.Config {
	return ingest.Config{ReplyPrefixes: cfg.ReplyPrefixList()}
}

// producerConfig is the producer of the front door and of 'jetbox
// publish', in cfg's write mode (SOMABRAIN_MEMORY_WRITE_MODE).
func producerConfig(cfg config.Config) producer.Config {
	mode, _ := streams.ParseMode(cfg.WriteMode)
	return producer.Config{
		Mode: mode, DefaultTenant: cfg.DefaultTenant, Universe: cfg.Universe,
		SyncTimeout: cfg.SyncTimeout, PublishTimeout: cfg.PublishTimeout, BufferSize: cfg.BufferSize,
	}
}

// frontDoorConfig is the front door of 'jetbox run': its handler, whose
// reads go to the memory API at endpoint, and its server. The caller adds
// the producer, the tokens and the logger.
func frontDoorConfig(cfg config.Config, endpoint string) (frontdoor.Config, frontdoor.ServerConfig) {
	mode, _ := streams.ParseMode(cfg.WriteMode)
	return frontdoor.Config{
			Mode: mode, DefaultTenant: cfg.DefaultTenant,
			MemoryAPI: endpoint, MemoryToken: cfg.MemoryToken,
			MaxBodyBytes: cfg.IngestMaxBodyBytes, MaxConcurrent: cfg.IngestMaxConcurrent, ProxyTimeout: cfg.RequestTimeout,
		}, frontdoor.ServerConfig{
			Addr: cfg.IngestListen, ReadTimeout: cfg.IngestReadTimeout, IdleTimeout: cfg.IngestIdleTimeout,
			MaxHeaderBytes: cfg.IngestMaxHeaderBytes,
		}
}

// relayConfig is 'jetbox relay'. The caller adds its id, progress output,
// logger and registry.
func relayConfig(cfg config.Config) relay.Config {
	mode, _ := streams.ParseMode(cfg.RelayMode)
	return relay.Config{
		Mode: mode, DefaultTenant: cfg.DefaultTenant, Universe: cfg.Universe, FailUnknown: cfg.RelayFailUnknown,
		PollInterval: cfg.RelayPollInterval, BatchSize: cfg.RelayBatchSize, Concurrency: cfg.RelayConcurrency,
		PublishTimeout: cfg.PublishTimeout,
	}
}
