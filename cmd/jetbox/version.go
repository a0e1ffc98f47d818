package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/jetbox-dev/jetbox/internal/buildinfo"
)

// versionInfo is what 'jetbox version' reports: buildinfo.Read, with
// JSON names for scripts.
type versionInfo struct {
	Module     string `json:"module"`   // jetbox's version; "(devel)" for a build from a work tree
	Revision   string `json:"revision"` // VCS revision; "unknown" when built with -buildvcs=false or outside a repository
	Go         string `json:"go"`
	NATSGo     string `json:"nats_go"`
	NATSServer string `json:"nats_server"`
}

func version() versionInfo {
	b := buildinfo.Read()
	return versionInfo{Module: b.Version, Revision: b.Revision, Go: b.GoVersion, NATSGo: b.NATSGo, NATSServer: b.NATSServer}
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
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "jetbox\t%s\nrevision\t%s\ngo\t%s\nnats.go\t%s\nnats-server\t%s\n", v.Module, v.Revision, v.Go, v.NATSGo, v.NATSServer)
			return tw.Flush()
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}
