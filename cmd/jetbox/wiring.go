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
	interval, always, _ := cfg.Embedded.DiskSync()
	return embedded.Options{
		Listen: cfg.Embedded.NATSListen, StoreDir: filepath.Join(cfg.Embedded.DataDir, "nats"), Name: "jetbox",
		SyncInterval: interval, SyncAlways: always,
		User: cfg.NATS.User, Password: cfg.NATS.Password, Token: cfg.NATS.Token,
		AllowInsecure: cfg.Embedded.AllowInsecure,
	}
}

// memAPIOptions is the development memory API.
func memAPIOptions(cfg config.Config) memapi.Options {
	return memapi.Options{Path: filepath.Join(cfg.Embedded.DataDir, "memapi.db"), Token: cfg.Memory.Token, AllowInsecure: cfg.Embedded.AllowInsecure}
}

// workerConfig is the worker of 'jetbox run', calling the memory API at
// endpoint.
func workerConfig(cfg config.Config, endpoint string) consumer.Config {
	modes, _ := cfg.Worker.GroupModes()
	return consumer.Config{
		Endpoint: endpoint, Token: cfg.Memory.Token, Streams: cfg.Outbox.Streams(), Modes: modes,
		Concurrency: cfg.Worker.Concurrency, RequestTimeout: cfg.Worker.RequestTimeout, MaxAttempts: cfg.Worker.MaxAttempts,
		BackoffBase: cfg.Worker.BackoffBase, BackoffMax: cfg.Worker.BackoffMax, MaxRetryAfter: cfg.Worker.MaxRetryAfter,
		FailureThreshold: cfg.Memory.FailureThreshold, ResetInterval: cfg.Memory.ResetInterval.Duration(),
		BreakerIdleTTL: cfg.Worker.BreakerIdleTTL, ShutdownTimeout: cfg.Worker.ShutdownTimeout, ReplyPrefixes: cfg.Worker.ReplyPrefixList(),
		LogPayloads: cfg.Log.Payloads, MetricsTenants: cfg.Ops.MetricsTenants, PullMaxBytes: cfg.Worker.PullMaxBytes,
		QueuedPerPartition: cfg.Worker.QueuedPerPartition,
	}
}

// gatewayConfig is the ingest gateway of 'jetbox run'.
func gatewayConfig(cfg config.Config) ingest.Config {
	return ingest.Config{ReplyPrefixes: cfg.Worker.ReplyPrefixList()}
}

// producerConfig is the producer of the front door and of 'jetbox
// publish', in cfg's write mode (SOMABRAIN_MEMORY_WRITE_MODE).
func producerConfig(cfg config.Config) producer.Config {
	mode, _ := streams.ParseMode(cfg.Memory.WriteMode)
	return producer.Config{
		Mode: mode, DefaultTenant: cfg.Memory.DefaultTenant, Universe: cfg.Producer.Universe,
		SyncTimeout: cfg.Producer.SyncTimeout, PublishTimeout: cfg.Producer.PublishTimeout, BufferSize: cfg.Producer.BufferSize,
	}
}

// frontDoorConfig is the front door of 'jetbox run': its handler, whose
// reads go to the memory API at endpoint, and its server. The caller adds
// the producer, the tokens and the logger.
func frontDoorConfig(cfg config.Config, endpoint string) (frontdoor.Config, frontdoor.ServerConfig) {
	mode, _ := streams.ParseMode(cfg.Memory.WriteMode)
	return frontdoor.Config{
			Mode: mode, DefaultTenant: cfg.Memory.DefaultTenant,
			MemoryAPI: endpoint, MemoryToken: cfg.Memory.Token,
			MaxBodyBytes: cfg.FrontDoor.MaxBodyBytes, MaxConcurrent: cfg.FrontDoor.MaxConcurrent, ProxyTimeout: cfg.Worker.RequestTimeout,
		}, frontdoor.ServerConfig{
			Addr: cfg.FrontDoor.Listen, ReadTimeout: cfg.FrontDoor.ReadTimeout, IdleTimeout: cfg.FrontDoor.IdleTimeout,
			MaxHeaderBytes: cfg.FrontDoor.MaxHeaderBytes,
		}
}

// relayConfig is 'jetbox relay'. The caller adds its id, progress output,
// logger and registry.
func relayConfig(cfg config.Config) relay.Config {
	mode, _ := streams.ParseMode(cfg.Relay.Mode)
	return relay.Config{
		Mode: mode, DefaultTenant: cfg.Memory.DefaultTenant, Universe: cfg.Producer.Universe, FailUnknown: cfg.Relay.FailUnknown,
		PollInterval: cfg.Relay.PollInterval, BatchSize: cfg.Relay.BatchSize, Concurrency: cfg.Relay.Concurrency,
		PublishTimeout: cfg.Producer.PublishTimeout,
	}
}
