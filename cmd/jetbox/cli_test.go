package main

import (
	"context"
	"errors"
	"net"
	"os/exec"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jetbox-dev/jetbox/internal/natstest"
	"github.com/jetbox-dev/jetbox/streams"
)

// every command's path, for the tests that go through all of them.
var commandPaths = [][]string{
	{}, {"run"}, {"memapi"}, {"relay"}, {"publish"}, {"dlq"}, {"dlq", "list"}, {"dlq", "show"},
	{"dlq", "replay"}, {"dlq", "drop"}, {"status"}, {"config"}, {"version"}, {"completion"}, {"completion", "bash"},
}

// holdPort listens on a free loopback port for the test and counts the
// connections made to it.
func holdPort(t *testing.T) (string, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var accepted atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	return ln.Addr().String(), &accepted
}

// --help, -h and 'jetbox help <command>' print help and exit 0 for every
// command, the servers included, without starting anything: every address
// jetbox would listen on or dial is held by the test, which counts the
// connections, and the configuration is one jetbox would refuse to run.
func TestEveryHelpExitsZeroAndOpensNoPort(t *testing.T) {
	natsAddr, natsConns := holdPort(t)
	memAddr, memConns := holdPort(t)
	httpAddr, _ := holdPort(t)
	env := []string{
		"SOMABRAIN_OUTBOX_NATS_LISTEN=" + natsAddr, "SOMABRAIN_OUTBOX_MEMAPI_LISTEN=" + memAddr,
		"SOMABRAIN_OUTBOX_HTTP_LISTEN=" + httpAddr, "SOMABRAIN_OUTBOX_DATA_DIR=" + t.TempDir(),
	}
	for _, path := range commandPaths {
		name := strings.Join(append([]string{"jetbox"}, path...), " ")
		for _, args := range [][]string{append(path, "--help"), append(path, "-h"), append([]string{"help"}, path...)} {
			out, err := jetbox(t, env, args...)
			if err != nil {
				t.Errorf("%v: %v\n%s", args, err, out)
				continue
			}
			if !strings.Contains(out, "Usage:") || !strings.Contains(out, name) {
				t.Errorf("%v printed no help for %s:\n%s", args, name, out)
			}
		}
	}
	// The same with a configuration 'jetbox run' refuses: help reads none.
	if out, err := jetbox(t, append(env, "SOMABRAIN_MEMORY_FAILURE_THRESHOLD=many"), "run", "--help"); err != nil || !strings.Contains(out, "Usage:") {
		t.Errorf("run --help with a bad configuration: %v\n%s", err, out)
	}
	if n := natsConns.Load() + memConns.Load(); n != 0 {
		t.Fatalf("help made %d connections to the NATS or memory API address", n)
	}
	// Held ports, so a 'run' that did start would fail: the check can fail.
	out, err := jetbox(t, env, "run")
	if err == nil || !strings.Contains(out, "SOMABRAIN_OUTBOX_NATS_LISTEN="+natsAddr) || !strings.Contains(out, "address already in use") {
		t.Fatalf("run on a held port: %v\n%s", err, out)
	}
}

// A command line jetbox cannot use says what is wrong once, on stderr,
// and exits 2; a flag that does nothing is not offered.
func TestCommandLineMistakesErrOnceWithExitCode2(t *testing.T) {
	for _, args := range [][]string{
		{"publish", "--bogus"}, {"dlq", "replay", "--json"}, {"status", "extra"}, {"nonsense"},
		{"dlq", "list", "--class", "broken"}, {"dlq", "show"}, {"publish", "--mode", "eventually"},
	} {
		cmd := exec.Command(binary, args...)
		cmd.Env = baseEnv()
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 2 {
			t.Errorf("%v: %v, want exit code 2\n%s%s", args, err, stdout.String(), stderr.String())
			continue
		}
		if n := strings.Count(stderr.String(), "jetbox: "); n != 1 || stdout.Len() != 0 {
			t.Errorf("%v: the error printed %d times on stderr, stdout %q:\n%s", args, n, stdout.String(), stderr.String())
		}
	}
}

// 'jetbox version' names the build: the versions of nats.go and
// nats-server are those jetbox was built with (the test binary's own).
func TestVersionNamesTheBuild(t *testing.T) {
	out, err := jetbox(t, nil, "version")
	if err != nil {
		t.Fatalf("version: %v\n%s", err, out)
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		t.Fatal("no build info in the test binary")
	}
	want := []string{"jetbox ", "revision ", "go1."}
	for _, dep := range bi.Deps {
		switch dep.Path {
		case "github.com/nats-io/nats.go":
			want = append(want, "nats.go      "+dep.Version)
		case "github.com/nats-io/nats-server/v2":
			want = append(want, "nats-server  "+dep.Version)
		}
	}
	if len(want) != 5 {
		t.Fatalf("the test binary's deps lack nats.go or nats-server: %v", want)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("version lacks %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, "unknown\nnats") || strings.Contains(out, "nats.go      unknown") {
		t.Errorf("a version is unknown:\n%s", out)
	}
	if out2, err := jetbox(t, nil, "--version"); err != nil || !strings.HasPrefix(out2, "jetbox ") {
		t.Errorf("--version: %v %q", err, out2)
	}
}

// Shell completion scripts for the four shells cobra supports.
func TestCompletionScripts(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		out, err := jetbox(t, nil, "completion", shell)
		if err != nil || len(out) < 1000 || !strings.Contains(out, "jetbox") {
			t.Errorf("completion %s: %v, %d bytes", shell, err, len(out))
		}
	}
	// Flag values complete too.
	out, err := jetbox(t, nil, "__complete", "dlq", "list", "--class", "")
	if err != nil || !strings.Contains(out, "bad_input") {
		t.Errorf("completion of --class: %v\n%s", err, out)
	}
}

// --server overrides NATS_URL; an unreachable URL is named, redacted.
func TestServerFlagOverridesNATSURL(t *testing.T) {
	srv := natstest.Start(t)
	_, js := srv.Connect(t)
	if _, err := streams.Provision(context.Background(), js, streams.DefaultConfig()); err != nil {
		t.Fatal(err)
	}
	unreachable := []string{"NATS_URL=nats://jetbox:pw-Zr8@127.0.0.1:1"}
	if out, err := jetbox(t, unreachable, "dlq", "list", "--server", srv.ClientURL()); err != nil || !strings.Contains(out, "0 dead letters") {
		t.Fatalf("dlq list --server: %v\n%s", err, out)
	}
	out, err := jetbox(t, unreachable, "dlq", "list")
	if err == nil || !strings.Contains(out, "nats://jetbox:[redacted]@127.0.0.1:1") || strings.Contains(out, "pw-Zr8") {
		t.Fatalf("dlq list with an unreachable NATS_URL: %v\n%s", err, out)
	}
	if out, err := jetbox(t, unreachable, "config", "-s", "nats://127.0.0.1:4999"); err != nil || !strings.Contains(grep(out, "NATS_URL "), "nats://127.0.0.1:4999") {
		t.Fatalf("config -s: %v\n%s", err, out)
	}
}

// A body shown by 'dlq show' is the publisher's: its control characters
// are escaped so it cannot move the cursor, retitle the terminal or
// reverse text; line breaks of a body stay.
func TestUntrustedTextCannotDriveTheTerminal(t *testing.T) {
	hostile := "a\x1b]0;owned\x07b\u202ec\r\nd\te"
	if got, want := safe(hostile), `a\x1b]0;owned\ab\u202ec\r\nd\te`; got != want {
		t.Errorf("safe = %q, want %q", got, want)
	}
	if got, want := safeBlock(hostile), "a\\x1b]0;owned\\ab\\u202ec\\r\nd\te"; got != want {
		t.Errorf("safeBlock = %q, want %q", got, want)
	}
	if plain := `{"text":"héllo"}`; safe(plain) != plain {
		t.Errorf("safe changed plain text: %q", safe(plain))
	}
}
