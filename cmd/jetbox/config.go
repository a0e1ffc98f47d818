package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/caarlos0/env/v11"

	"github.com/jetbox-dev/jetbox/internal/config"
)

// showConfig is 'jetbox config': the effective configuration with secrets
// redacted, or (--table) the Markdown table of every variable for the README.
func showConfig(cfg config.Config, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("config", flag.ContinueOnError)
	fs.SetOutput(stdout)
	table := fs.Bool("table", false, "print the Markdown table of all variables and defaults")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *table {
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
