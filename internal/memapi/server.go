package memapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/rs/zerolog"

	"github.com/jetbox-dev/jetbox/internal/config"
)

// shutdownGrace bounds how long Serve waits for requests in flight.
const shutdownGrace = 10 * time.Second

// Serve listens on listenAddr (see Listen) and serves s.Handler until ctx
// ends, then shuts down gracefully. It logs the bound address, so ":0" is
// usable. It returns nil on a clean shutdown.
func Serve(ctx context.Context, listenAddr string, s *Store, log zerolog.Logger) error {
	ln, err := Listen(listenAddr, s, log)
	if err != nil {
		return err
	}
	return ServeListener(ctx, ln, s, log)
}

// Listen opens the listener of the memory API on listenAddr. Without a
// token, anyone who can reach the API reads and writes every tenant's
// memories: beyond loopback Listen refuses that, unless the store's
// AllowInsecure accepts the risk, and then it logs a warning.
func Listen(listenAddr string, s *Store, log zerolog.Logger) (net.Listener, error) {
	if err := s.checkExposure(listenAddr, log); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", listenAddr)
	if err != nil {
		return nil, fmt.Errorf("development memory API: listen on SOMABRAIN_OUTBOX_MEMAPI_LISTEN=%s: %w", listenAddr, err)
	}
	return ln, nil
}

// checkExposure is Listen's decision, before it listens.
func (s *Store) checkExposure(listenAddr string, log zerolog.Logger) error {
	return config.Exposure{
		Server: "development memory API", Addr: listenAddr, ListenVar: "SOMABRAIN_OUTBOX_MEMAPI_LISTEN",
		AuthVars: "SOMABRAIN_MEMORY_HTTP_TOKEN", Authenticated: s.opts.Token != "", AllowInsecure: s.opts.AllowInsecure,
	}.Check(log)
}

// ServeListener is Serve on a listener the caller opened (with Listen, so
// that a listen error surfaces before anything else starts, or on
// loopback in tests).
func ServeListener(ctx context.Context, ln net.Listener, s *Store, log zerolog.Logger) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info().Str("addr", ln.Addr().String()).Msg("memory API listening")

	select {
	case err := <-served:
		return fmt.Errorf("memapi: serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	if err != nil {
		srv.Close() // requests still running past the grace period are cut off
	}
	if serveErr := <-served; !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, serveErr)
	}
	if err != nil {
		return fmt.Errorf("memapi: shut down: %w", err)
	}
	log.Info().Msg("memory API stopped")
	return nil
}
