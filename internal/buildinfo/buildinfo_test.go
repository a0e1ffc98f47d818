package buildinfo

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestReadNamesTheGoToolchain(t *testing.T) {
	info := Read()
	if info.GoVersion != runtime.Version() {
		t.Errorf("GoVersion = %q, want %q", info.GoVersion, runtime.Version())
	}
	for name, v := range map[string]string{"Version": info.Version, "Revision": info.Revision, "NATSGo": info.NATSGo, "NATSServer": info.NATSServer} {
		if v == "" {
			t.Errorf("%s is empty: a field the binary does not record must read %q", name, Unknown)
		}
	}
}

// A built jetbox records its module's dependencies and, unless built with
// -buildvcs=false, its revision; a replaced module reports its replacement.
func TestFromBuildInfo(t *testing.T) {
	bi := &debug.BuildInfo{
		Main: debug.Module{Path: "github.com/jetbox-dev/jetbox", Version: "v1.4.0"},
		Deps: []*debug.Module{
			{Path: natsGoModule, Version: "v1.55.0"},
			{Path: natsServerModule, Version: "v2.15.2", Replace: &debug.Module{Path: "../nats-server", Version: "(devel)"}},
			{Path: "github.com/prometheus/client_golang", Version: "v1.25.0"},
		},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "97c29c4"}, {Key: "vcs.modified", Value: "true"}},
	}
	got := fromBuildInfo(Info{Revision: Unknown, NATSGo: Unknown, NATSServer: Unknown}, bi)
	want := Info{Version: "v1.4.0", Revision: "97c29c4-dirty", NATSGo: "v1.55.0", NATSServer: "(devel)"}
	if got != want {
		t.Errorf("fromBuildInfo = %+v, want %+v", got, want)
	}

	linked := fromBuildInfo(Info{Version: "v2.0.0-rc.1", Revision: Unknown, NATSGo: Unknown, NATSServer: Unknown}, &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}})
	if linked.Version != "v2.0.0-rc.1" || linked.Revision != Unknown || linked.NATSGo != Unknown {
		t.Errorf("a version set at link time: %+v", linked)
	}
}
