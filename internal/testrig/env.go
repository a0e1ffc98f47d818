package testrig

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetbox-dev/jetbox/internal/embedded"
	"github.com/jetbox-dev/jetbox/internal/natsconn"
	"github.com/jetbox-dev/jetbox/streams"
)

// Env is a fresh jetbox for a program, its data in one directory: an
// embedded nats-server (file storage, one replica), a connection to it,
// the outbox, and the memory API in this process.
type Env struct {
	Dir    string
	Server *server.Server
	NC     *nats.Conn
	JS     jetstream.JetStream
	API    *MemoryAPI
}

// EnvOptions is what an Env is made of.
type EnvOptions struct {
	Dir string // the nats-server's files go to Dir/nats, the store's to Dir/memapi.db
	// How often the nats-server flushes its files to disk (0: its default),
	// or after every write.
	SyncInterval time.Duration
	SyncAlways   bool
	// Streams is the outbox to provision; nil provisions nothing.
	Streams *streams.Config
	// MemoryAPI is the memory API to serve; its Store.Path is set here.
	MemoryAPI MemoryAPIOptions
}

// StartEnv starts a fresh Env in o.Dir.
func StartEnv(ctx context.Context, o EnvOptions) (*Env, error) {
	e := &Env{Dir: o.Dir}
	var err error
	if e.Server, err = embedded.Start(embedded.Options{Listen: "127.0.0.1:0", StoreDir: filepath.Join(o.Dir, "nats"),
		SyncInterval: o.SyncInterval, SyncAlways: o.SyncAlways}); err != nil {
		return nil, err
	}
	if e.NC, e.JS, err = natsconn.WithJetStream(nats.Connect(e.Server.ClientURL())); err != nil {
		e.Close()
		return nil, err
	}
	if o.Streams != nil {
		if _, err = streams.Provision(ctx, e.JS, *o.Streams); err != nil {
			e.Close()
			return nil, err
		}
	}
	o.MemoryAPI.Store.Path = filepath.Join(o.Dir, "memapi.db")
	if e.API, err = OpenMemoryAPI(o.MemoryAPI); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

// Close stops the memory API, the connection and the nats-server, and
// leaves Dir for the caller to keep or remove. Workers are the caller's
// to stop first.
func (e *Env) Close() {
	if e.API != nil {
		e.API.Close()
	}
	if e.NC != nil {
		e.NC.Close()
	}
	if e.Server != nil {
		e.Server.Shutdown()
		e.Server.WaitForShutdown()
	}
}

// StartJetbox starts 'jetbox run' from bin against e, writing its output
// to logPath. Its environment holds only what reaches e (the nats-server,
// the memory API and its token), JSON logs and no ingest gateway; env adds
// to it.
func (e *Env) StartJetbox(bin, logPath string, env ...string) (*Process, error) {
	base := []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"NATS_URL=" + e.Server.ClientURL(), "SOMABRAIN_MEMORY_HTTP_ENDPOINT=" + e.API.URL,
		"SOMABRAIN_OUTBOX_LOG_FORMAT=json", "SOMABRAIN_OUTBOX_INGEST_LISTEN=off",
	}
	if e.API.Token != "" {
		base = append(base, "SOMABRAIN_MEMORY_HTTP_TOKEN="+e.API.Token)
	}
	return StartProcess(bin, []string{"run"}, append(base, env...), logPath)
}
