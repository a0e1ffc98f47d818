package main

import (
	"context"
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"

	"github.com/jetbox-dev/jetbox/frontdoor"
	"github.com/jetbox-dev/jetbox/internal/config"
	"github.com/jetbox-dev/jetbox/internal/natsconn"
	"github.com/jetbox-dev/jetbox/producer"
)

// serveFrontDoor starts the front door of 'jetbox run' on
// SOMABRAIN_OUTBOX_INGEST_LISTEN: SomaFractalMemory's HTTP API, whose
// writes go into the outbox at natsURL and whose reads go to the memory
// API at endpoint. It stops when ctx ends, or when stop is called: no new
// requests, those in progress finish (up to the shutdown timeout), then
// its background writes are flushed.
func serveFrontDoor(ctx context.Context, cfg config.Config, natsURL, endpoint string, reg prometheus.Registerer, tp trace.TracerProvider, log zerolog.Logger) (stop func(), err error) {
	tokens := frontdoor.Tokens{Service: cfg.FrontDoor.Token}
	if cfg.FrontDoor.TokensFile != "" {
		if tokens.Tenant, err = frontdoor.LoadTokensFile(cfg.FrontDoor.TokensFile); err != nil {
			return nil, err
		}
	}
	exposure := config.Exposure{
		Server: "front door", Addr: cfg.FrontDoor.Listen, ListenVar: "SOMABRAIN_OUTBOX_INGEST_LISTEN",
		AuthVars:      "SOMABRAIN_OUTBOX_INGEST_TOKEN or SOMABRAIN_OUTBOX_INGEST_TOKENS_FILE",
		Authenticated: tokens.Service != "" || len(tokens.Tenant) > 0, AllowInsecure: cfg.Embedded.AllowInsecure,
	}
	if err := exposure.Check(log); err != nil {
		return nil, err
	}
	// A connection of its own, so that the workers' traffic never waits
	// behind the front door's publishes or the other way round.
	nc, err := natsconn.Connect(natsSettings(cfg, natsURL, "jetbox front door"), log)
	if err != nil {
		return nil, err
	}
	flog := log.With().Str("component", "front door").Logger()
	pcfg := producerConfig(cfg)
	pcfg.BufferFullError, pcfg.Registerer, pcfg.TracerProvider = true, reg, tp
	pcfg.OnBackgroundError = func(f producer.BackgroundFailure) {
		flog.Error().Err(f.Err).Str("subject", f.Subject).Str("idempotency_key", f.IdempotencyKey).Msg("background write not stored")
	}
	p, err := producer.New(nc, pcfg)
	if err != nil {
		nc.Close()
		return nil, err
	}
	closeProducer := func(ctx context.Context) {
		if err := p.Close(ctx); err != nil {
			flog.Error().Err(err).Msg("background writes not all stored at shutdown")
		}
		nc.Close()
	}
	hcfg, scfg := frontDoorConfig(cfg, endpoint)
	hcfg.Producer, hcfg.Tokens, hcfg.Log = p, tokens, flog
	h, err := frontdoor.New(hcfg)
	if err != nil {
		closeProducer(context.Background())
		return nil, err
	}
	srv, err := frontdoor.Listen(scfg, h, flog)
	if err != nil {
		closeProducer(context.Background())
		return nil, fmt.Errorf("SOMABRAIN_OUTBOX_INGEST_LISTEN: %w", err)
	}
	go func() {
		if err := srv.Serve(); err != nil {
			flog.Error().Err(err).Msg("front door stopped")
		}
	}()
	flog.Info().Str("addr", srv.Addr()).Str("mode", string(hcfg.Mode)).Bool("authenticated", h.Authenticated()).
		Msg("front door serving SomaFractalMemory's API; writes go through the outbox")
	stop = sync.OnceFunc(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cfg.Worker.ShutdownTimeout)
		defer cancel()
		_ = srv.Shutdown(ctx)
		closeProducer(ctx)
	})
	go func() {
		<-ctx.Done()
		stop()
	}()
	return stop, nil
}
