// Package embedded runs a nats-server with JetStream inside the jetbox
// process, for a laptop setup and for tests.
package embedded

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Options configure an embedded server.
type Options struct {
	Listen     string // host:port; port 0 or -1 picks a free one
	StoreDir   string // JetStream data directory
	MaxPayload int32  // largest message in bytes; 0 keeps the server default (1 MiB)
	Name       string // server name; empty lets the server choose
	Logging    bool   // pass the server's own log lines to stderr

	// SyncInterval is how often the server flushes its files to disk; 0
	// keeps the server default (2 min). SyncAlways flushes after every
	// write, before it is acknowledged.
	SyncInterval time.Duration
	SyncAlways   bool

	// Configure, when set, adjusts the server options last, before the
	// server starts: how tests add authentication and TLS.
	Configure func(*server.Options)
}

// ErrNotReady says the server did not accept connections in time.
var ErrNotReady = errors.New("embedded nats-server not ready")

// Start starts the server and waits until it accepts connections.
func Start(opts Options) (*server.Server, error) {
	host, portText, err := net.SplitHostPort(opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("embedded nats-server listen address %q: %w", opts.Listen, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return nil, fmt.Errorf("embedded nats-server listen port %q: %w", portText, err)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	sopts := &server.Options{
		ServerName: opts.Name,
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   opts.StoreDir,
		MaxPayload: opts.MaxPayload,
		NoSigs:     true,
		NoLog:      !opts.Logging,
		// 0 leaves the server its default interval.
		SyncInterval: opts.SyncInterval,
		SyncAlways:   opts.SyncAlways,
	}
	if opts.Configure != nil {
		opts.Configure(sopts)
	}
	s, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats-server: %w", err)
	}
	if opts.Logging {
		s.ConfigureLogger()
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, ErrNotReady
	}
	return s, nil
}
