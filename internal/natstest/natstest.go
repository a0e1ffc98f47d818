// Package natstest starts real embedded nats-servers for tests: random
// loopback ports, temporary data directories, everything cleaned up.
package natstest

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetbox-dev/jetbox/internal/embedded"
)

// Server is a running test server.
type Server struct {
	*server.Server
	StoreDir string
}

// Option adjusts the embedded options of a test server.
type Option func(*embedded.Options)

// WithMaxPayload sets the server's max payload.
func WithMaxPayload(n int32) Option { return func(o *embedded.Options) { o.MaxPayload = n } }

// WithStoreDir reuses a data directory, to restart a server on the same data.
func WithStoreDir(dir string) Option { return func(o *embedded.Options) { o.StoreDir = dir } }

// WithListen fixes the listen address, to restart a server on the same port.
func WithListen(addr string) Option { return func(o *embedded.Options) { o.Listen = addr } }

// WithServerOptions adjusts the server options last, for what the embedded
// options do not cover: users, NKeys, an operator and its accounts, TLS.
func WithServerOptions(configure func(*server.Options)) Option {
	return func(o *embedded.Options) {
		prev := o.Configure
		o.Configure = func(so *server.Options) {
			if prev != nil {
				prev(so)
			}
			configure(so)
		}
	}
}

// WithConfigFile loads a nats-server configuration file (accounts, users,
// permissions, TLS) over the test server's options. The test server keeps
// its own listen address and data directory, whatever the file says.
func WithConfigFile(t testing.TB, path string) Option {
	return WithServerOptions(func(so *server.Options) {
		t.Helper()
		host, port, storeDir := so.Host, so.Port, so.StoreDir
		so.StoreDir = "" // the server refuses a store_dir set twice
		if err := so.ProcessConfigFile(path); err != nil {
			t.Fatalf("load nats-server config %s: %v", path, err)
		}
		so.Host, so.Port, so.StoreDir = host, port, storeDir
		so.JetStream, so.NoSigs = true, true
	})
}

// Start runs a JetStream server on 127.0.0.1 with a random port.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	o := embedded.Options{Listen: "127.0.0.1:0", StoreDir: t.TempDir()}
	for _, opt := range opts {
		opt(&o)
	}
	s, err := embedded.Start(o)
	if err != nil {
		t.Fatalf("start nats-server: %v", err)
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return &Server{Server: s, StoreDir: o.StoreDir}
}

// Connect opens a client connection closed at the end of the test.
func (s *Server) Connect(t testing.TB, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	opts = append([]nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond)}, opts...)
	nc, err := nats.Connect(s.ClientURL(), opts...)
	if err != nil {
		t.Fatalf("connect to nats-server: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return nc, js
}
