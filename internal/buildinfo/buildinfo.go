// Package buildinfo says which jetbox this binary is: its version and
// revision, the Go toolchain that built it and the NATS libraries inside.
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

// Unknown is the value of a field the binary does not record.
const Unknown = "unknown"

// Module paths of the NATS libraries whose versions Info reports.
const (
	natsGoModule     = "github.com/nats-io/nats.go"
	natsServerModule = "github.com/nats-io/nats-server/v2"
)

// version, when set at link time, wins over the module version:
//
//	go build -ldflags "-X github.com/jetbox-dev/jetbox/internal/buildinfo.version=v1.2.0" ./cmd/jetbox
//
// A binary built from a checkout has no module version of its own
// ("(devel)"), so a release sets it this way.
var version string

// Info is what Read found.
type Info struct {
	Version    string // jetbox's version: set at link time, else the main module's, else "(devel)"
	Revision   string // the VCS revision built, "-dirty" appended when the tree had changes
	GoVersion  string // the Go toolchain, as runtime.Version reports it
	NATSGo     string // version of github.com/nats-io/nats.go linked in
	NATSServer string // version of github.com/nats-io/nats-server/v2 linked in
}

// Read returns this binary's Info. Fields the binary does not record are
// Unknown: test binaries, and binaries built with -buildvcs=false, have no
// revision.
func Read() Info {
	info := Info{Version: version, Revision: Unknown, GoVersion: runtime.Version(), NATSGo: Unknown, NATSServer: Unknown}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		if info.Version == "" {
			info.Version = Unknown
		}
		return info
	}
	return fromBuildInfo(info, bi)
}

// fromBuildInfo fills info from what the Go toolchain recorded.
func fromBuildInfo(info Info, bi *debug.BuildInfo) Info {
	if info.Version == "" {
		info.Version = bi.Main.Version
	}
	if info.Version == "" {
		info.Version = "(devel)"
	}
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Revision = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty && info.Revision != Unknown {
		info.Revision += "-dirty"
	}
	for _, dep := range bi.Deps {
		v := dep.Version
		if dep.Replace != nil {
			v = dep.Replace.Version
		}
		switch dep.Path {
		case natsGoModule:
			info.NATSGo = v
		case natsServerModule:
			info.NATSServer = v
		}
	}
	return info
}
