package main

import (
	"encoding/json"
	"fmt"
	"runtime/debug"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// versionInfo is what 'jetbox version' reports, read from the build
// information Go embeds in the binary.
type versionInfo struct {
	Module     string `json:"module"`   // the main module's version; "(devel)" for a build from a work tree
	Revision   string `json:"revision"` // VCS revision; "unknown" when built with -buildvcs=false or outside a repository
	Modified   bool   `json:"modified,omitempty"`
	Go         string `json:"go"`
	NATSGo     string `json:"nats_go"`
	NATSServer string `json:"nats_server"`
}

const unknown = "unknown"

func version() versionInfo {
	v := versionInfo{Module: unknown, Revision: unknown, Go: unknown, NATSGo: unknown, NATSServer: unknown}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	v.Go = bi.GoVersion
	if bi.Main.Version != "" {
		v.Module = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	for _, dep := range bi.Deps {
		if dep.Replace != nil {
			dep = dep.Replace
		}
		switch dep.Path {
		case "github.com/nats-io/nats.go":
			v.NATSGo = dep.Version
		case "github.com/nats-io/nats-server/v2":
			v.NATSServer = dep.Version
		}
	}
	return v
}

func newVersionCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print jetbox's version, VCS revision, Go version, and the nats.go and nats-server it was built with",
		Args:  cobra.NoArgs,
		RunE: command(func(cmd *cobra.Command, _ []string) error {
			v := version()
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(v)
			}
			revision := v.Revision
			if v.Modified {
				revision += " (modified)"
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "jetbox\t%s\nrevision\t%s\ngo\t%s\nnats.go\t%s\nnats-server\t%s\n", v.Module, revision, v.Go, v.NATSGo, v.NATSServer)
			return tw.Flush()
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}
