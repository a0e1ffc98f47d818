package main

import (
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// beyondLoopback is TEST-NET-3, an address for documentation that this
// machine does not have: nothing can listen on it, so a test that names it
// cannot expose a server even if the refusal failed.
const beyondLoopback = "203.0.113.1"

// 'jetbox run' and 'jetbox memapi' refuse to listen beyond loopback
// without authentication and say which variables change that;
// SOMABRAIN_OUTBOX_ALLOW_INSECURE lets the memory API try, with a warning.
func TestRefusesToListenBeyondLoopbackWithoutAuthentication(t *testing.T) {
	skipIfLocal(t, beyondLoopback)
	data := t.TempDir()
	base := []string{"SOMABRAIN_OUTBOX_DATA_DIR=" + data, "SOMABRAIN_OUTBOX_HTTP_LISTEN=off"}
	for _, c := range []struct {
		cmd  string
		env  []string
		want []string
	}{
		{"run", []string{"SOMABRAIN_OUTBOX_NATS_LISTEN=" + beyondLoopback + ":4222"},
			[]string{"SOMABRAIN_OUTBOX_NATS_LISTEN=" + beyondLoopback + ":4222", "NATS_USER", "NATS_PASSWORD", "NATS_TOKEN", "SOMABRAIN_OUTBOX_ALLOW_INSECURE=true"}},
		{"memapi", []string{"SOMABRAIN_OUTBOX_MEMAPI_LISTEN=" + beyondLoopback + ":9595"},
			[]string{"SOMABRAIN_OUTBOX_MEMAPI_LISTEN=" + beyondLoopback + ":9595", "SOMABRAIN_MEMORY_HTTP_TOKEN", "SOMABRAIN_OUTBOX_ALLOW_INSECURE=true"}},
	} {
		out, err := jetbox(t, append(base, c.env...), c.cmd)
		if err == nil {
			t.Fatalf("jetbox %s started:\n%s", c.cmd, out)
		}
		for _, w := range append(c.want, "beyond loopback without authentication") {
			if !strings.Contains(out, w) {
				t.Errorf("jetbox %s: the refusal does not say %q:\n%s", c.cmd, w, out)
			}
		}
	}

	// Accepted, the memory API warns and goes on to listen, which fails
	// only because the address is not this machine's.
	out, err := jetbox(t, append(base, "SOMABRAIN_OUTBOX_MEMAPI_LISTEN="+beyondLoopback+":9595", "SOMABRAIN_OUTBOX_ALLOW_INSECURE=true"), "memapi")
	if err == nil {
		t.Fatalf("jetbox memapi listened on %s:\n%s", beyondLoopback, out)
	}
	if !strings.Contains(out, `"level":"warn"`) || !strings.Contains(out, "SOMABRAIN_OUTBOX_ALLOW_INSECURE=true") || !strings.Contains(out, "listen on") {
		t.Fatalf("jetbox memapi with the risk accepted: no warning, or not the listen error:\n%s", out)
	}
}

// With NATS_USER and NATS_PASSWORD, the embedded nats-server of 'jetbox
// run' requires them: the tools connect with them and not without.
func TestEmbeddedServerRequiresTheConfiguredCredentials(t *testing.T) {
	natsAddr, memAddr, httpAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	env := []string{
		"SOMABRAIN_OUTBOX_DATA_DIR=" + t.TempDir(), "SOMABRAIN_OUTBOX_NATS_LISTEN=" + natsAddr,
		"SOMABRAIN_OUTBOX_MEMAPI_LISTEN=" + memAddr, "SOMABRAIN_OUTBOX_HTTP_LISTEN=" + httpAddr,
		"NATS_USER=jetbox", "NATS_PASSWORD=embedded-pw",
	}
	p := startRun(t, env)
	waitReady(t, httpAddr)
	if out, err := jetbox(t, env, "status"); err != nil {
		t.Fatalf("status with the credentials: %v\n%s", err, out)
	}
	out, err := jetbox(t, append(env, "NATS_PASSWORD=wrong"), "status")
	if err == nil || !strings.Contains(out, "uthorization") {
		t.Fatalf("status with a wrong password: %v\n%s", err, out)
	}
	if err := p.stop(t, syscall.SIGTERM, 30*time.Second); err != nil {
		t.Fatalf("jetbox run exited with %v", err)
	}
}

// skipIfLocal skips a test that must not be able to listen on ip, should
// this machine have it.
func skipIfLocal(t *testing.T, ip string) {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Skipf("interface addresses: %v", err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(net.ParseIP(ip)) {
			t.Skipf("this machine has %s", ip)
		}
	}
}
