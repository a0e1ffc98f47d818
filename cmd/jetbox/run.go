package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"path/filepath"
	"runtime"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/jetbox-dev/jetbox/consumer"
	"github.com/jetbox-dev/jetbox/ingest"
	"github.com/jetbox-dev/jetbox/internal/buildinfo"
	"github.com/jetbox-dev/jetbox/internal/config"
	"github.com/jetbox-dev/jetbox/internal/embedded"
	"github.com/jetbox-dev/jetbox/internal/memapi"
	"github.com/jetbox-dev/jetbox/internal/natsconn"
	"github.com/jetbox-dev/jetbox/internal/opsmetrics"
	"github.com/jetbox-dev/jetbox/internal/tracing"
	"github.com/jetbox-dev/jetbox/streams"
)

// runWorkers is 'jetbox run': everything a laptop needs in one process, or
// only the workers when NATS and the memory API are elsewhere.
func runWorkers(ctx context.Context, cfg config.Config, log zerolog.Logger) error {
	tp, stopTracing, err := tracing.Setup(ctx, cfg.Ops.Tracing, log)
	if err != nil {
		return err
	}
	defer flushSpans(ctx, stopTracing, log)
	url := cfg.NATS.URL
	if url == "" {
		opts := embeddedOptions(cfg)
		opts.Log = log
		ns, err := embedded.Start(opts)
		if err != nil {
			return err
		}
		defer func() {
			ns.Shutdown()
			ns.WaitForShutdown()
		}()
		url = ns.ClientURL()
		log.Info().Str("url", url).Str("data", filepath.Join(cfg.Embedded.DataDir, "nats")).Str("sync", cfg.Embedded.NATSSync).Msg("embedded nats-server with JetStream listening")
	}
	nc, err := natsconn.Connect(natsSettings(cfg, url, "jetbox worker"), log)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	scfg := cfg.Outbox.Streams()
	provisionCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	_, err = streams.Provision(provisionCtx, js, scfg)
	cancel()
	if err != nil {
		return err
	}

	endpoint := cfg.Memory.Endpoint
	if endpoint == "" {
		store, err := memapi.Open(memAPIOptions(cfg))
		if err != nil {
			return err
		}
		defer store.Close()
		ln, err := memapi.Listen(cfg.Embedded.MemAPIListen, store, log)
		if err != nil {
			return err
		}
		memCtx, stopMem := context.WithCancel(context.WithoutCancel(ctx))
		defer stopMem()
		memDone := make(chan error, 1)
		go func() { memDone <- memapi.ServeListener(memCtx, ln, store, log) }()
		defer func() {
			stopMem()
			<-memDone
		}()
		endpoint = "http://" + cfg.Embedded.MemAPIListen
		log.Info().Str("url", endpoint).Msg("development memory API listening")
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(opsmetrics.New(js, scfg, opsmetrics.DefaultCacheTTL), opsmetrics.BuildInfo(buildinfo.Read()))
	wcfg := workerConfig(cfg, endpoint)
	wcfg.Log, wcfg.Registerer, wcfg.TracerProvider = log, reg, tp
	w, err := consumer.New(nc, wcfg)
	if err != nil {
		return err
	}
	if cfg.Worker.NATSGateway {
		gcfg := gatewayConfig(cfg)
		gcfg.Registerer, gcfg.Log = reg, log
		gw, err := ingest.Start(nc, gcfg)
		if err != nil {
			return err
		}
		defer func() {
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.Worker.ShutdownTimeout)
			defer cancel()
			if err := gw.Stop(stopCtx); err != nil {
				log.Warn().Err(err).Msg("ingest gateway stop")
			}
		}()
	}
	if cfg.FrontDoor.Listen != config.HTTPListenOff {
		stopFrontDoor, err := serveFrontDoor(ctx, cfg, url, endpoint, reg, tp, log)
		if err != nil {
			return err
		}
		defer stopFrontDoor()
	}
	ready := func(ctx context.Context) error {
		if err := streams.Check(ctx, js, scfg); err != nil {
			return err
		}
		return w.Ready()
	}
	reg.MustRegister(opsmetrics.Ready(ready, opsmetrics.DefaultCacheTTL))
	if cfg.Ops.HTTPListen != config.HTTPListenOff {
		srv, err := serveOps(cfg.Ops.HTTPListen, reg, cfg.Ops.Pprof, func() error {
			if !nc.IsConnected() {
				return errors.New("not connected to NATS")
			}
			return nil
		}, ready, log)
		if err != nil {
			return err
		}
		defer srv.Close()
	}
	log.Info().Str("endpoint", config.RedactURL(endpoint)).Msg("jetbox running; SIGTERM or Ctrl-C drains and stops")
	return w.Run(ctx)
}

// flushSpans exports the spans not yet sent, for a few seconds at most: a
// collector that is down must not hold the process up.
func flushSpans(ctx context.Context, shutdown func(context.Context) error, log zerolog.Logger) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := shutdown(ctx); err != nil {
		log.Warn().Err(err).Msg("tracing: spans not exported on shutdown")
	}
}

// mutexSampling is the rate of the mutex profile served with the other
// profiles: one contention event in 10 is recorded.
const mutexSampling = 10

// serveOps serves /metrics, /healthz (the process is alive and connected)
// and /readyz (streams present, consumers bound).
func serveOps(addr string, reg *prometheus.Registry, profiles bool, healthy func() error, ready func(context.Context) error, log zerolog.Logger) (*http.Server, error) {
	mux := http.NewServeMux()
	if profiles {
		// Records one lock contention in mutexSampling for the mutex
		// profile, which Go leaves empty unless asked.
		runtime.SetMutexProfileFraction(mutexSampling)
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	probe := func(check func(context.Context) error) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			defer cancel()
			if err := check(ctx); err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintln(w, "ok")
		}
	}
	mux.Handle("GET /healthz", probe(func(context.Context) error { return healthy() }))
	mux.Handle("GET /readyz", probe(ready))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("SOMABRAIN_OUTBOX_HTTP_LISTEN: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Msg("ops HTTP server")
		}
	}()
	log.Info().Str("addr", ln.Addr().String()).Msg("serving /metrics, /healthz, /readyz")
	return srv, nil
}

// runMemAPI is 'jetbox memapi': the development memory API alone.
func runMemAPI(ctx context.Context, cfg config.Config, log zerolog.Logger) error {
	store, err := memapi.Open(memAPIOptions(cfg))
	if err != nil {
		return err
	}
	defer store.Close()
	log.Info().Str("addr", cfg.Embedded.MemAPIListen).Msg("development memory API")
	return memapi.Serve(ctx, cfg.Embedded.MemAPIListen, store, log)
}
