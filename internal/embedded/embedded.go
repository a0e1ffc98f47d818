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
	"github.com/rs/zerolog"

	"github.com/jetbox-dev/jetbox/internal/config"
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

	// Clients must authenticate with User and Password, or with Token,
	// when one is set (jetbox run passes NATS_USER, NATS_PASSWORD and
	// NATS_TOKEN).
	User, Password, Token string

	// AllowInsecure lets the server listen beyond loopback with no
	// authentication (SOMABRAIN_OUTBOX_ALLOW_INSECURE); without it Start
	// refuses. Log receives the warning it starts with.
	AllowInsecure bool
	Log           zerolog.Logger

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
		SyncInterval:  opts.SyncInterval,
		SyncAlways:    opts.SyncAlways,
		Username:      opts.User,
		Password:      opts.Password,
		Authorization: opts.Token,
	}
	if opts.Configure != nil {
		opts.Configure(sopts)
	}
	if err := checkExposure(opts, sopts); err != nil {
		return nil, err
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

// checkExposure refuses a server that would let in anyone who can reach
// it, unless that is allowed (then it warns).
func checkExposure(opts Options, sopts *server.Options) error {
	return config.Exposure{
		Server: "embedded nats-server", Addr: opts.Listen, ListenVar: "SOMABRAIN_OUTBOX_NATS_LISTEN",
		AuthVars:      "NATS_USER and NATS_PASSWORD, or NATS_TOKEN",
		Authenticated: authenticates(sopts), AllowInsecure: opts.AllowInsecure,
	}.Check(opts.Log)
}

// authenticates reports whether every client must present credentials, as
// nats-server itself decides it (users, NKeys, a token, an operator, a
// custom authenticator, or client certificates), with no user for those
// without.
func authenticates(o *server.Options) bool {
	if o.NoAuthUser != "" {
		return false
	}
	return o.Username != "" || o.Authorization != "" || o.Users != nil || o.Nkeys != nil ||
		len(o.TrustedKeys) > 0 || len(o.TrustedOperators) > 0 || o.CustomClientAuthentication != nil || o.TLSVerify
}
