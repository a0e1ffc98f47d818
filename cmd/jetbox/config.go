package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/caarlos0/env/v11"
	"github.com/spf13/cobra"

	"github.com/jetbox-dev/jetbox/internal/config"
)

func newConfigCmd() *cobra.Command {
	var table bool
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Print the effective configuration, secrets redacted",
		Long: `Print every variable with its effective value, secrets redacted, and notes on
old variable names in use; --table prints the Markdown table of all variables
and defaults that the README holds.`,
		Args: cobra.NoArgs,
		RunE: command(func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			return showConfig(cfg, table, cmd.OutOrStdout())
		}),
	}
	cmd.Flags().BoolVar(&table, "table", false, "print the Markdown table of all variables and defaults")
	return cmd
}

// showConfig is 'jetbox config': the effective configuration with secrets
// redacted, or (table) the Markdown table of every variable for the README.
func showConfig(cfg config.Config, table bool, stdout io.Writer) error {
	if table {
		fmt.Fprintln(stdout, "| variable | default | meaning |")
		fmt.Fprintln(stdout, "|---|---|---|")
		for _, v := range cfg.Vars() {
			def := v.Default
			if def == "" {
				def = "(empty)"
			}
			fmt.Fprintf(stdout, "| `%s` | `%s` | %s |\n", v.Name, def, strings.ReplaceAll(v.Help, "|", "\\|"))
		}
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	for _, v := range cfg.Vars() {
		fmt.Fprintf(tw, "%s\t%s\n", v.Name, v.Value)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, note := range config.AliasNotes(env.ToMap(os.Environ())) {
		fmt.Fprintf(stdout, "# %s\n", note)
	}
	return nil
}
