// Package embedded runs a nats-server with JetStream inside the jetbox
// process, for a laptop setup and for tests.
package embedded

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
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

// readyTimeout bounds how long Start waits for a server that reported no
// failure to accept connections.
const readyTimeout = 10 * time.Second

// ListenError says the server cannot listen on its address, most often
// because another process holds the port.
type ListenError struct {
	Addr string
	Err  error
}

func (e *ListenError) Error() string {
	return fmt.Sprintf("embedded nats-server cannot listen on SOMABRAIN_OUTBOX_NATS_LISTEN=%s: %v "+
		"(another jetbox run or nats-server there? stop it, set SOMABRAIN_OUTBOX_NATS_LISTEN to a free address, "+
		"or set NATS_URL to use the server that is running)", e.Addr, e.Err)
}

func (e *ListenError) Unwrap() error { return e.Err }

// StartError is a failure nats-server reported while starting (it logs
// them and stops starting, without returning an error).
type StartError struct{ Reason string }

func (e *StartError) Error() string { return "embedded nats-server failed to start: " + e.Reason }

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
	// Tried first, so a busy port is reported at once, with its cause;
	// the server itself only logs that (below, for a port lost in
	// between).
	if port != server.RANDOM_PORT {
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return nil, &ListenError{Addr: opts.Listen, Err: err}
		}
		ln.Close()
	}
	if opts.Logging {
		s.ConfigureLogger()
	}
	fatal := make(chan string, 1)
	s.SetLoggerV2(&fatalLogger{Logger: s.Logger(), fatal: fatal}, false, false, false)
	go s.Start()
	deadline := time.Now().Add(readyTimeout)
	for !s.ReadyForConnections(50 * time.Millisecond) {
		select {
		case reason := <-fatal:
			s.Shutdown()
			if strings.HasPrefix(reason, listenFailure) {
				return nil, &ListenError{Addr: opts.Listen, Err: errors.New(strings.TrimPrefix(reason, listenFailure))}
			}
			return nil, &StartError{Reason: reason}
		default:
		}
		if time.Now().After(deadline) {
			s.Shutdown()
			return nil, ErrNotReady
		}
	}
	return s, nil
}

// listenFailure starts what nats-server reports when it cannot listen.
const listenFailure = "Error listening on port: "

// fatalLogger hands the server's first fatal report to Start, and passes
// every line on to the server's own logger, if it has one.
type fatalLogger struct {
	server.Logger // nil: the server logs nothing
	fatal         chan string
}

func (l *fatalLogger) Fatalf(format string, v ...any) {
	select {
	case l.fatal <- fmt.Sprintf(format, v...):
	default:
	}
	if l.Logger != nil {
		l.Logger.Errorf(format, v...) // its own Fatalf would exit the process
	}
}

func (l *fatalLogger) Noticef(format string, v ...any) {
	if l.Logger != nil {
		l.Logger.Noticef(format, v...)
	}
}

func (l *fatalLogger) Warnf(format string, v ...any) {
	if l.Logger != nil {
		l.Logger.Warnf(format, v...)
	}
}

func (l *fatalLogger) Errorf(format string, v ...any) {
	if l.Logger != nil {
		l.Logger.Errorf(format, v...)
	}
}

func (l *fatalLogger) Debugf(format string, v ...any) {
	if l.Logger != nil {
		l.Logger.Debugf(format, v...)
	}
}

func (l *fatalLogger) Tracef(format string, v ...any) {
	if l.Logger != nil {
		l.Logger.Tracef(format, v...)
	}
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
