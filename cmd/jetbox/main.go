// Command jetbox runs the outbox workers and the tools around them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/jetbox-dev/jetbox/internal/config"
	"github.com/jetbox-dev/jetbox/internal/logging"
	"github.com/jetbox-dev/jetbox/internal/natsconn"
)

const usage = `jetbox carries memory writes through a NATS JetStream outbox to a memory API.

Usage:
  jetbox run                 run the workers (embedded nats-server when NATS_URL is empty,
                             development memory API when SOMABRAIN_MEMORY_HTTP_ENDPOINT is empty)
  jetbox publish [flags]     write a memory from the shell in any mode
  jetbox dlq list [flags]    list dead letters
  jetbox dlq replay [flags]  replay dead letters to their original subjects
  jetbox relay [--install-trigger]
                             move SomaBrain's outbox_events rows (SOMABRAIN_POSTGRES_DSN) into the outbox
  jetbox status              consumer groups, tenant breakers and relay lag
  jetbox config [--table]    effective configuration, secrets redacted
  jetbox memapi              run only the development memory API

Configuration comes from the environment; see 'jetbox config'.
`

func main() {
	os.Exit(runMain(os.Args[1:], os.Stdout, os.Stderr))
}

func runMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		return 0
	}
	cfg, err := config.Load(nil)
	if err != nil {
		fmt.Fprintln(stderr, "jetbox:", err)
		return 2
	}
	log := logging.New(stderr, cfg.LogLevel, cfg.LogFormat)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	cmd, rest := args[0], args[1:]
	switch cmd {
	case "run":
		err = runWorkers(ctx, cfg, log)
	case "publish":
		err = publish(ctx, cfg, rest, stdout, log)
	case "dlq":
		err = deadLetters(ctx, cfg, rest, stdout)
	case "relay":
		err = runRelay(ctx, cfg, rest, stdout, stderr, log)
	case "status":
		err = status(ctx, cfg, rest, stdout)
	case "config":
		err = showConfig(cfg, rest, stdout)
	case "memapi":
		err = runMemAPI(ctx, cfg, log)
	default:
		fmt.Fprintf(stderr, "jetbox: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "jetbox:", err)
		var ue usageError
		if errors.As(err, &ue) {
			return 2
		}
		return 1
	}
	return 0
}

// usageError marks a mistake in the command line.
type usageError struct{ error }

func natsSettings(cfg config.Config, url, name string) natsconn.Settings {
	return natsconn.Settings{
		URL: url, Creds: cfg.NATSCreds, NKey: cfg.NATSNKey, User: cfg.NATSUser, Password: cfg.NATSPassword,
		Token: cfg.NATSToken, CA: cfg.NATSCA, Cert: cfg.NATSCert, Key: cfg.NATSKey, Name: name,
		InboxPrefix: cfg.NATSInbox,
	}
}

// connect dials NATS_URL, or the embedded server's default address when
// NATS_URL is empty (the tools talk to a 'jetbox run' on this machine).
func connect(cfg config.Config, name string) (*nats.Conn, error) {
	url := cfg.NATSURL
	if url == "" {
		url = "nats://" + cfg.NATSListen
	}
	return natsconn.Connect(natsSettings(cfg, url, name), zerolog.Nop())
}

// connectJS is connect plus a JetStream context.
func connectJS(cfg config.Config, name string) (*nats.Conn, jetstream.JetStream, error) {
	return natsconn.WithJetStream(connect(cfg, name))
}
