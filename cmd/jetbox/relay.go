package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/mattn/go-isatty"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/jetbox-dev/jetbox/internal/config"
	"github.com/jetbox-dev/jetbox/relay"
)

func newRelayCmd() *cobra.Command {
	var install bool
	cmd := &cobra.Command{
		Use:   "relay",
		Short: "Move SomaBrain's outbox_events rows (SOMABRAIN_POSTGRES_DSN) into the outbox",
		Long: `Move SomaBrain's outbox_events rows (SOMABRAIN_POSTGRES_DSN) into the outbox:
everything pending first, with progress on stderr, then new rows as they come,
until SIGINT or SIGTERM. --install-trigger installs the trigger that notifies
the relay of new rows, then exits.`,
		Args: cobra.NoArgs,
		RunE: command(func(cmd *cobra.Command, _ []string) error {
			cfg, log, err := setup(cmd)
			if err != nil {
				return err
			}
			return runRelay(cmd.Context(), cfg, install, cmd.OutOrStdout(), cmd.ErrOrStderr(), log)
		}),
	}
	cmd.Flags().BoolVar(&install, "install-trigger", false, "install the trigger that notifies the relay of new rows ("+relay.NotifyChannel+"), then exit")
	return cmd
}

// runRelay is 'jetbox relay': SomaBrain's outbox_events rows into the
// outbox, the backfill first (with progress on stderr), then new rows
// until SIGINT or SIGTERM. install installs the notification trigger and
// returns.
func runRelay(ctx context.Context, cfg config.Config, install bool, stdout, stderr io.Writer, log zerolog.Logger) error {
	if cfg.Relay.PostgresDSN == "" {
		return fmt.Errorf("%w: SOMABRAIN_POSTGRES_DSN is empty: set it to SomaBrain's database, e.g. postgres://user:password@host:5432/somabrain", config.ErrInvalid)
	}
	pcfg, err := pgxpool.ParseConfig(cfg.Relay.PostgresDSN)
	if err != nil {
		// pgx's parse errors quote the string with its password removed.
		return fmt.Errorf("%w: SOMABRAIN_POSTGRES_DSN: %v", config.ErrInvalid, err)
	}
	pcfg.MaxConns = int32(cfg.Relay.Concurrency + 2) // the workers, the lag report, the count
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return fmt.Errorf("PostgreSQL %s: %w", config.RedactDSN(cfg.Relay.PostgresDSN), err)
	}
	defer pool.Close()
	if install {
		if err := relay.InstallTrigger(ctx, pool); err != nil {
			return fmt.Errorf("install trigger on %s: %w", config.RedactDSN(cfg.Relay.PostgresDSN), err)
		}
		fmt.Fprintf(stdout, "trigger installed: inserts into outbox_events notify %s\n", relay.NotifyChannel)
		return nil
	}

	nc, err := connect(cfg, "jetbox relay")
	if err != nil {
		return err
	}
	defer nc.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	host, _ := os.Hostname()
	rcfg := relayConfig(cfg)
	rcfg.ID = relayID(host, os.Getpid())
	rcfg.Progress, rcfg.ProgressTerminal, rcfg.Log, rcfg.Registerer = stderr, isTerminal(stderr), log, reg
	r, err := relay.New(pool, nc, rcfg)
	if err != nil {
		return err
	}
	if cfg.Relay.HTTPListen != config.HTTPListenOff {
		srv, err := serveOps(cfg.Relay.HTTPListen, reg, cfg.Ops.Pprof, func() error {
			if !nc.IsConnected() {
				return errors.New("not connected to NATS")
			}
			return nil
		}, func(ctx context.Context) error { return pool.Ping(ctx) }, log)
		if err != nil {
			return fmt.Errorf("SOMABRAIN_RELAY_HTTP_LISTEN: %w", err)
		}
		defer srv.Close()
	}
	log.Info().Str("postgres", config.RedactDSN(cfg.Relay.PostgresDSN)).Str("mode", string(rcfg.Mode)).
		Msg("jetbox relay: moving outbox_events into the outbox; SIGTERM or Ctrl-C stops")
	start := time.Now()
	err = r.Run(ctx)
	log.Info().Dur("ran", time.Since(start)).Msg("jetbox relay stopped")
	return err
}

// relayID is the relay's key in the status bucket: host and pid, in the
// characters a KV key may hold.
func relayID(host string, pid int) string {
	b := []byte(host)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		b = []byte("relay")
	}
	return fmt.Sprintf("%s-%d", b, pid)
}

// isTerminal says whether stdin, stdout or stderr (f) is a terminal.
func isTerminal(f any) bool {
	file, ok := f.(*os.File)
	if !ok {
		return false
	}
	return isatty.IsTerminal(file.Fd()) || isatty.IsCygwinTerminal(file.Fd())
}
