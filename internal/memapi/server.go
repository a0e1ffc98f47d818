package memapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/rs/zerolog"
)

// shutdownGrace bounds how long Serve waits for requests in flight.
const shutdownGrace = 10 * time.Second

// Serve listens on listenAddr and serves s.Handler until ctx ends, then shuts
// down gracefully. It logs the bound address, so ":0" is usable. It returns
// nil on a clean shutdown.
func Serve(ctx context.Context, listenAddr string, s *Store, log zerolog.Logger) error {
	ln, err := net.Listen("tcp", listenAddr)
	if err != nil {
		return fmt.Errorf("memapi: listen on %s: %w", listenAddr, err)
	}
	return ServeListener(ctx, ln, s, log)
}

// ServeListener is Serve on a listener the caller opened, so a listen error
// surfaces before anything else starts.
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
