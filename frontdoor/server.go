package frontdoor

import (
	"context"
	"errors"
	stdlog "log"
	"net"
	"net/http"
	"time"

	"github.com/rs/zerolog"
)

// ServerConfig is where and how the front door listens.
type ServerConfig struct {
	Addr           string        // host:port
	ReadTimeout    time.Duration // a request's headers and body; 0 = DefaultReadTimeout
	IdleTimeout    time.Duration // a kept-alive connection between requests; 0 = DefaultIdleTimeout
	MaxHeaderBytes int           // larger header blocks are 431; 0 = DefaultMaxHeaderBytes
}

// Server is a listening front door.
type Server struct {
	srv *http.Server
	ln  net.Listener
}

// Listen opens the front door's listener. A front door without tokens
// lets in anyone who reaches it: its caller decides where it may listen
// ('jetbox run' keeps it on loopback, config.Exposure).
func Listen(sc ServerConfig, h *Handler, log zerolog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", sc.Addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{
		Handler:        h,
		ReadTimeout:    orDefault(sc.ReadTimeout, DefaultReadTimeout),
		IdleTimeout:    orDefault(sc.IdleTimeout, DefaultIdleTimeout),
		MaxHeaderBytes: orDefault(sc.MaxHeaderBytes, DefaultMaxHeaderBytes),
		ErrorLog:       stdlog.New(log.With().Str("component", "front door").Logger(), "", 0),
	}
	return &Server{srv: srv, ln: ln}, nil
}

func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// Addr is the address the front door listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve serves until Shutdown; it returns nil then.
func (s *Server) Serve() error {
	if err := s.srv.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops accepting requests and waits for those in progress until
// ctx ends, then closes their connections.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err != nil {
		_ = s.srv.Close()
	}
	return err
}
