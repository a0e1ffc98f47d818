// Command jetbox runs the outbox workers and the tools around them.
//
// The command line is built on github.com/spf13/cobra: every command has
// its own --help, 'jetbox help <command>' and shell completion come with it.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/caarlos0/env/v11"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/jetbox-dev/jetbox/internal/config"
	"github.com/jetbox-dev/jetbox/internal/logging"
	"github.com/jetbox-dev/jetbox/internal/natsconn"
)

func main() {
	os.Exit(runMain(os.Args[1:], os.Stdout, os.Stderr))
}

// Exit codes: 1 for a command that failed, 2 for a command line or a
// configuration jetbox cannot use.
const (
	exitFailed = 1
	exitUsage  = 2
)

func runMain(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCmd(stdout, stderr)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "jetbox:", err)
	var failed commandError
	if !errors.As(err, &failed) {
		// cobra refused the command line before any command ran.
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		return exitUsage
	}
	var ue usageError
	if errors.As(err, &ue) || errors.Is(err, config.ErrInvalid) {
		return exitUsage
	}
	return exitFailed
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "jetbox",
		Short: "jetbox carries memory writes through a NATS JetStream outbox to a memory API",
		Long: `jetbox carries memory writes through a NATS JetStream outbox to a memory API.

Configuration comes from the environment (SOMABRAIN_*, NATS_*; 'jetbox config'
lists every variable). A flag that names a variable in its help overrides it:
flag, then environment, then default.`,
		SilenceErrors: true, // runMain prints each error once
		SilenceUsage:  true,
		Version:       version().Module,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetVersionTemplate("jetbox {{.Version}}\n")
	root.PersistentFlags().StringP("server", "s", "", "NATS server URLs, comma-separated; empty: the embedded server of a 'jetbox run' on this machine")
	bindVar(root.PersistentFlags(), "server", "NATS_URL")
	root.AddGroup(&cobra.Group{ID: "serve", Title: "Servers:"}, &cobra.Group{ID: "tools", Title: "Tools:"})
	for _, c := range []*cobra.Command{newRunCmd(), newMemAPICmd(), newRelayCmd()} {
		c.GroupID = "serve"
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{newPublishCmd(), newDLQCmd(), newStatusCmd(), newConfigCmd(), newVersionCmd()} {
		c.GroupID = "tools"
		root.AddCommand(c)
	}
	root.SetHelpCommandGroupID("tools")
	root.SetCompletionCommandGroupID("tools")
	return root
}

func newRunCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "run",
		Short: "Run the workers (and an embedded nats-server and memory API when none is configured)",
		Long: `Run the workers until SIGINT or SIGTERM, which drain them.

With NATS_URL (--server) empty, an embedded nats-server listens on
SOMABRAIN_OUTBOX_NATS_LISTEN; with SOMABRAIN_MEMORY_HTTP_ENDPOINT empty, the
development memory API listens on SOMABRAIN_OUTBOX_MEMAPI_LISTEN.`,
		Args: cobra.NoArgs,
		RunE: command(func(cmd *cobra.Command, _ []string) error {
			cfg, log, err := setup(cmd)
			if err != nil {
				return err
			}
			return runWorkers(cmd.Context(), cfg, log)
		}),
	}
}

func newMemAPICmd() *cobra.Command {
	return &cobra.Command{
		Use:   "memapi",
		Short: "Run only the development memory API (on SOMABRAIN_OUTBOX_MEMAPI_LISTEN)",
		Args:  cobra.NoArgs,
		RunE: command(func(cmd *cobra.Command, _ []string) error {
			cfg, log, err := setup(cmd)
			if err != nil {
				return err
			}
			return runMemAPI(cmd.Context(), cfg, log)
		}),
	}
}

// commandError marks an error a command returned, as opposed to one cobra
// found in the command line before any command ran.
type commandError struct{ error }

func (e commandError) Unwrap() error { return e.error }

// command wraps a command's RunE so its errors are told from cobra's.
func command(run func(*cobra.Command, []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := run(cmd, args); err != nil {
			return commandError{err}
		}
		return nil
	}
}

// usageError marks a mistake in the command line.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// varAnnotation is the flag annotation naming the variable a flag overrides.
const varAnnotation = "jetbox_variable"

// bindVar makes flag name override the variable: loadConfig reads the
// environment with the flag's value in the variable's place.
func bindVar(fs *pflag.FlagSet, name, variable string) {
	f := fs.Lookup(name)
	f.Usage += " (overrides " + variable + ")"
	if err := fs.SetAnnotation(name, varAnnotation, []string{variable}); err != nil {
		panic(err)
	}
}

// loadConfig reads the configuration: the environment, with the value of
// every flag given on the command line that overrides a variable in that
// variable's place. An error names the flag along with the variable.
func loadConfig(cmd *cobra.Command) (config.Config, error) {
	environ := env.ToMap(os.Environ())
	var given []*pflag.Flag
	cmd.Flags().Visit(func(f *pflag.Flag) {
		if vars := f.Annotations[varAnnotation]; len(vars) == 1 {
			environ[vars[0]] = f.Value.String()
			given = append(given, f)
		}
	})
	cfg, err := config.Load(environ)
	if err != nil {
		for _, f := range given {
			if variable := f.Annotations[varAnnotation][0]; strings.Contains(err.Error(), variable) {
				err = fmt.Errorf("--%s: %w", f.Name, err)
			}
		}
	}
	return cfg, err
}

// setup is loadConfig and the logger it configures, on stderr.
func setup(cmd *cobra.Command) (config.Config, zerolog.Logger, error) {
	cfg, err := loadConfig(cmd)
	if err != nil {
		return cfg, zerolog.Nop(), err
	}
	return cfg, logging.New(cmd.ErrOrStderr(), cfg.Log.Level, cfg.Log.Format), nil
}

func natsSettings(cfg config.Config, url, name string) natsconn.Settings {
	return natsconn.Settings{
		URL: url, Creds: cfg.NATS.Creds, NKey: cfg.NATS.NKey, User: cfg.NATS.User, Password: cfg.NATS.Password,
		Token: cfg.NATS.Token, CA: cfg.NATS.CA, Cert: cfg.NATS.Cert, Key: cfg.NATS.Key, Name: name,
		InboxPrefix: cfg.NATS.InboxPrefix,
	}
}

// connect dials NATS_URL, or the embedded server's default address when
// NATS_URL is empty (the tools talk to a 'jetbox run' on this machine).
func connect(cfg config.Config, name string) (*nats.Conn, error) {
	url := cfg.NATS.URL
	if url == "" {
		url = "nats://" + cfg.Embedded.NATSListen
	}
	nc, err := natsconn.Connect(natsSettings(cfg, url, name), zerolog.Nop())
	if err != nil && cfg.NATS.URL == "" {
		err = fmt.Errorf("%w (NATS_URL is empty: is 'jetbox run' running with SOMABRAIN_OUTBOX_NATS_LISTEN=%s? else set NATS_URL or --server)", err, cfg.Embedded.NATSListen)
	}
	return nc, err
}

// connectJS is connect plus a JetStream context.
func connectJS(cfg config.Config, name string) (*nats.Conn, jetstream.JetStream, error) {
	return natsconn.WithJetStream(connect(cfg, name))
}
