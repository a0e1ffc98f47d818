// Package natsdeploy_test loads the shipped nats-server configuration into a
// real embedded server and checks what each user may and may not do.
package natsdeploy_test

import (
	"bufio"
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/jetbox-dev/jetbox/ingest"
	"github.com/jetbox-dev/jetbox/internal/natsconn"
	"github.com/jetbox-dev/jetbox/internal/natstest"
	"github.com/jetbox-dev/jetbox/producer"
	"github.com/jetbox-dev/jetbox/streams"
	"github.com/jetbox-dev/jetbox/tenancy"
)

// The example tenants of tenants.conf: A is sandbox-tenant, B is acme.eu.
const (
	tenantA = "sandbox-tenant"
	tenantB = "acme.eu"
)

// violations collects the asynchronous errors of one connection: the
// server answers a denied publish or subscription with one, not with a
// reply.
type violations struct {
	mu   sync.Mutex
	errs []error
}

func (v *violations) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.errs = append(v.errs, err)
}

// waitFor waits until the server reported a permissions violation that
// names subject.
func (v *violations) waitFor(t *testing.T, subject string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		v.mu.Lock()
		for _, err := range v.errs {
			if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), `"`+subject+`"`) {
				v.mu.Unlock()
				return
			}
		}
		v.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no permissions violation for %q; errors: %v", subject, v.errs)
}

type tenantsServer struct {
	addr      string // host:port
	url       string
	passwords map[string]string   // user -> password
	caFile    string              // the CA of the server's and the clients' certificates
	certs     map[string]tlsFiles // user -> client certificate
}

type tlsFiles struct{ cert, key string }

// The users of accounts.conf, with a client certificate each.
var users = []string{"jetbox-worker", "tenant-sandbox-tenant", "tenant-acme.eu"}

// startTenantsServer loads tenants.conf with certificates made by a test
// CA (made with crypto/x509, as make-certs.sh makes them with openssl).
func startTenantsServer(t *testing.T) tenantsServer {
	ca := natstest.NewCA(t, "jetbox-nats-test")
	serverCert, serverKey := ca.Issue(t, "server", x509.ExtKeyUsageServerAuth)
	certs := map[string]tlsFiles{}
	for _, user := range users {
		cert, key := ca.Issue(t, user, x509.ExtKeyUsageClientAuth)
		certs[user] = tlsFiles{cert, key}
	}
	return startServer(t, "tenants.conf", &serverTLS{ca.CAFile, tlsFiles{serverCert, serverKey}}, certs)
}

// serverTLS is what tenants.conf reads from NATS_SERVER_TLS_*.
type serverTLS struct {
	caFile string
	server tlsFiles
}

// startServer loads a configuration file with the users' passwords, and
// with tls when it is set, in the environment.
func startServer(t *testing.T, confFile string, tls *serverTLS, certs map[string]tlsFiles) tenantsServer {
	passwords := map[string]string{
		"jetbox-worker":         "worker-pw",
		"tenant-sandbox-tenant": "tenant-a-pw",
		"tenant-acme.eu":        "tenant-b-pw",
	}
	t.Setenv("JETBOX_WORKER_PASSWORD", passwords["jetbox-worker"])
	t.Setenv("TENANT_SANDBOX_TENANT_PASSWORD", passwords["tenant-sandbox-tenant"])
	t.Setenv("TENANT_ACME_EU_PASSWORD", passwords["tenant-acme.eu"])
	t.Setenv("NATS_SYS_PASSWORD", "sys-pw")
	caFile := ""
	if tls != nil {
		caFile = tls.caFile
		t.Setenv("NATS_SERVER_TLS_CERT", tls.server.cert)
		t.Setenv("NATS_SERVER_TLS_KEY", tls.server.key)
		t.Setenv("NATS_SERVER_TLS_CA", tls.caFile)
	}
	srv := natstest.Start(t, natstest.WithConfigFile(t, confFile))
	return tenantsServer{addr: srv.Addr().String(), url: srv.ClientURL(), passwords: passwords, caFile: caFile, certs: certs}
}

// settings are the connection settings of user: its password, the CA and
// its client certificate.
func (s tenantsServer) settings(user string) natsconn.Settings {
	return natsconn.Settings{
		URL: s.url, User: user, Password: s.passwords[user], Name: user,
		CA: s.caFile, Cert: s.certs[user].cert, Key: s.certs[user].key,
	}
}

// connect connects as user through natsconn, the way jetbox and the nats
// CLI do, with an inbox prefix when the user may only receive under one.
func (s tenantsServer) connect(t *testing.T, user, inboxPrefix string) (*nats.Conn, jetstream.JetStream, *violations) {
	t.Helper()
	v := &violations{}
	settings := s.settings(user)
	settings.InboxPrefix = inboxPrefix
	opts, err := settings.Options()
	if err != nil {
		t.Fatalf("settings: %v", err)
	}
	nc, err := nats.Connect(s.url, append(opts, nats.ErrorHandler(v.handler))...)
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	if s.caFile != "" && !nc.TLSRequired() {
		t.Fatalf("%s connected without TLS", user)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return nc, js, v
}

func token(t *testing.T, tenant string) string {
	t.Helper()
	tok, err := tenancy.Encode(tenant)
	if err != nil {
		t.Fatalf("encode %q: %v", tenant, err)
	}
	return tok
}

// TestTenantIsolation loads tenants.conf and shows that a tenant's user
// can write its own tenant's memories through the ingest gateway and
// nothing else: not straight into the outbox, not into another tenant's
// subjects, not another tenant's dead letters, not the JetStream API;
// while the workers' user provisions and reads everything.
func TestTenantIsolation(t *testing.T) {
	srv := startTenantsServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tokA, tokB := token(t, tenantA), token(t, tenantB)

	// The workers' user provisions the outbox, runs the gateway and writes
	// a dead letter of tenant B.
	workerNC, workerJS, violWorker := srv.connect(t, "jetbox-worker", "")
	cfg := streams.DefaultConfig()
	cfg.Storage, cfg.Partitions = jetstream.MemoryStorage, 4
	if _, err := streams.Provision(ctx, workerJS, cfg); err != nil {
		t.Fatalf("workers' user provisions the streams: %v", err)
	}
	startGateway(t, workerNC)
	secret := nats.NewMsg(streams.DLQSubjectPrefix + "." + tokB + ".fast_ack.store")
	secret.Data = []byte(`{"coord":"1,2,3","payload":{"text":"B's secret"}}`)
	if _, err := workerJS.PublishMsg(ctx, secret); err != nil {
		t.Fatalf("workers' user publishes a dead letter: %v", err)
	}

	ncA, jsA, violA := srv.connect(t, "tenant-sandbox-tenant", "_INBOX."+tokA)

	t.Run("A writes its own tenant through the gateway", func(t *testing.T) {
		ack, err := jsA.Publish(ctx, ingest.SubjectPrefix+"memory."+tokA+".sync.store", []byte(`{"coord":"1,2,3","payload":{}}`), jetstream.WithMsgID(tokA+":k1"))
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
		if ack.Stream != cfg.Stream || ack.Duplicate {
			t.Fatalf("PubAck %+v; want a new write in %q", ack, cfg.Stream)
		}
		// The Go producer, as a tenant's service runs it.
		p, err := producer.New(ncA, producer.Config{SubjectPrefix: ingest.SubjectPrefix, Mode: streams.ModeFastAck, DefaultTenant: tenantA})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close(ctx)
		res, err := p.Store(ctx, producer.StoreRequest{Coord: "1,2,3", Payload: map[string]any{"text": "via the producer"}})
		if err != nil || res.Sequence <= ack.Sequence {
			t.Fatalf("producer through the gateway: %+v, %v", res, err)
		}
		if n := countStored(t, ctx, workerJS, cfg.Stream, streams.StoredTenantFilter(tokA)); n != 2 {
			t.Fatalf("outbox holds %d writes of A; want 2", n)
		}
	})

	t.Run("A cannot write straight into the outbox", func(t *testing.T) {
		subject := "memory." + tokA + ".sync.store"
		short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		if _, err := jsA.Publish(short, subject, []byte(`{"coord":"1,2,3","payload":{}}`)); err == nil {
			t.Fatal("publish acknowledged")
		}
		violA.waitFor(t, subject)
		if n := countStored(t, ctx, workerJS, cfg.Stream, streams.StoredTenantFilter(tokA)); n != 2 {
			t.Fatalf("outbox holds %d writes of A; want 2", n)
		}
	})

	t.Run("A cannot write into B", func(t *testing.T) {
		for _, subject := range []string{ingest.SubjectPrefix + "memory." + tokB + ".sync.store", "memory." + tokB + ".sync.store"} {
			short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			if _, err := jsA.Publish(short, subject, []byte(`{"coord":"1,2,3","payload":{}}`)); err == nil {
				t.Fatalf("publish to %s acknowledged", subject)
			}
			cancel()
			violA.waitFor(t, subject)
		}
		if n := countStored(t, ctx, workerJS, cfg.Stream, streams.StoredTenantFilter(tokB)); n != 0 {
			t.Fatalf("outbox holds %d writes of B; want 0", n)
		}
	})

	// A wildcard in the tenant token would name every tenant. The server
	// stores such a subject as is, without its partition; a tenant's
	// permissions refuse it before it gets that far.
	for _, subject := range []string{"memory.*.sync.store", "memory.>.sync.store", ingest.SubjectPrefix + "memory.*.sync.store", ingest.SubjectPrefix + "memory.>.sync.store"} {
		t.Run("A cannot publish to "+subject, func(t *testing.T) {
			short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			defer cancel()
			if _, err := jsA.Publish(short, subject, []byte(`{"coord":"1,2,3","payload":{}}`)); err == nil {
				t.Fatal("publish acknowledged")
			}
			violA.waitFor(t, subject)
		})
	}

	t.Run("A cannot read B's dead letters", func(t *testing.T) {
		subject := streams.DLQSubjectPrefix + "." + tokB + ".>"
		if _, err := ncA.SubscribeSync(subject); err != nil {
			t.Fatalf("subscribe: %v", err)
		}
		violA.waitFor(t, subject)
		short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		_, err := jsA.CreateOrUpdateConsumer(short, cfg.DLQStream, jetstream.ConsumerConfig{FilterSubject: subject})
		if err == nil {
			t.Fatal("created a consumer on the dead-letter stream")
		}
		if _, err := jsA.Stream(short, cfg.DLQStream); err == nil {
			t.Fatal("looked up the dead-letter stream")
		}
	})

	t.Run("A cannot use the JetStream API", func(t *testing.T) {
		for _, api := range []string{
			"$JS.API.STREAM.DELETE." + cfg.Stream,
			"$JS.API.STREAM.PURGE." + cfg.Stream,
			"$JS.API.STREAM.DELETE." + cfg.DLQStream,
			"$JS.API.STREAM.MSG.GET." + cfg.DLQStream,
		} {
			if _, err := ncA.Request(api, nil, 300*time.Millisecond); err == nil {
				t.Fatalf("%s answered", api)
			}
			violA.waitFor(t, api)
		}
		if n := countStored(t, ctx, workerJS, cfg.Stream, streams.StoredTenantFilter(tokA)); n != 2 {
			t.Fatalf("outbox holds %d writes of A after the attempts; want 2", n)
		}
		if n := countStored(t, ctx, workerJS, cfg.DLQStream, streams.DLQSubjectPrefix+".>"); n != 1 {
			t.Fatalf("dead-letter stream holds %d; want 1", n)
		}
	})

	t.Run("A cannot forge dead letters or read writes", func(t *testing.T) {
		forged := streams.DLQSubjectPrefix + "." + tokA + ".fast_ack.store"
		if err := ncA.Publish(forged, nil); err != nil {
			t.Fatalf("publish: %v", err)
		}
		violA.waitFor(t, forged)
		if _, err := ncA.SubscribeSync("memory.>"); err != nil {
			t.Fatalf("subscribe: %v", err)
		}
		violA.waitFor(t, "memory.>")
	})

	t.Run("A cannot take other tenants' writes from the gateway", func(t *testing.T) {
		for _, subject := range []string{"ingest.memory.>", ingest.Subject} {
			if _, err := ncA.QueueSubscribeSync(subject, ingest.Queue); err != nil {
				t.Fatalf("subscribe: %v", err)
			}
			violA.waitFor(t, subject)
		}
	})

	t.Run("the workers' user reads ingest subjects only in the gateway's queue group", func(t *testing.T) {
		if _, err := workerNC.SubscribeSync(ingest.Subject); err != nil {
			t.Fatalf("subscribe: %v", err)
		}
		violWorker.waitFor(t, ingest.Subject)
	})

	t.Run("wrong password", func(t *testing.T) {
		settings := srv.settings("tenant-sandbox-tenant")
		settings.Password = srv.passwords["tenant-acme.eu"]
		_, err := natsconn.Connect(settings, zerolog.Nop())
		if !errors.Is(err, nats.ErrAuthorization) {
			t.Fatalf("error %v; want %v", err, nats.ErrAuthorization)
		}
	})
}

// TestTenantsConfRequiresTLS: the shipped configuration takes clients
// over TLS with a certificate of its CA only. A plaintext client gets no
// answer but a closed connection, with the right password or not.
func TestTenantsConfRequiresTLS(t *testing.T) {
	srv := startTenantsServer(t)

	t.Run("plaintext", func(t *testing.T) {
		conn, err := net.DialTimeout("tcp", srv.addr, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		info, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil {
			t.Fatalf("read INFO: %v", err)
		}
		if !strings.Contains(info, `"tls_required":true`) {
			t.Fatalf("the server does not announce TLS: %s", info)
		}
		connect := `CONNECT {"user":"tenant-sandbox-tenant","pass":"` + srv.passwords["tenant-sandbox-tenant"] + `","verbose":true}` + "\r\nPING\r\n"
		if _, err := conn.Write([]byte(connect)); err != nil {
			t.Fatalf("write CONNECT: %v", err)
		}
		answer, err := io.ReadAll(conn)
		var timeout net.Error
		if errors.As(err, &timeout) && timeout.Timeout() {
			t.Fatalf("the server kept the plaintext connection open; it sent %q", answer)
		}
		if strings.Contains(string(answer), "+OK") || strings.Contains(string(answer), "PONG") {
			t.Fatalf("the server answered a plaintext client: %q", answer)
		}
	})

	for _, c := range []struct {
		name     string
		change   func(*natsconn.Settings)
		wantText string
	}{
		{"no CA", func(s *natsconn.Settings) { s.CA, s.Cert, s.Key = "", "", "" }, "certificate signed by unknown authority"},
		{"no client certificate", func(s *natsconn.Settings) { s.Cert, s.Key = "", "" }, "tls"},
	} {
		t.Run(c.name, func(t *testing.T) {
			settings := srv.settings("tenant-sandbox-tenant")
			c.change(&settings)
			nc, err := natsconn.Connect(settings, zerolog.Nop())
			if err == nil {
				nc.Close()
				t.Fatal("connected")
			}
			if !strings.Contains(err.Error(), c.wantText) {
				t.Fatalf("error %q does not say %q", err, c.wantText)
			}
		})
	}
}

// TestMakeCertsScript: the certificates make-certs.sh makes with openssl
// serve tenants.conf: every user connects with its own over TLS. It runs
// where openssl is installed.
func TestMakeCertsScript(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	dir := filepath.Join(t.TempDir(), "certs")
	out, err := exec.Command("./make-certs.sh", dir, "nats.example.com", "10.1.2.3").CombinedOutput()
	if err != nil {
		t.Fatalf("make-certs.sh: %v\n%s", err, out)
	}
	certs := map[string]tlsFiles{}
	for _, user := range users {
		certs[user] = tlsFiles{filepath.Join(dir, user+".pem"), filepath.Join(dir, user+"-key.pem")}
	}
	tls := &serverTLS{filepath.Join(dir, "ca.pem"), tlsFiles{filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")}}
	srv := startServer(t, "tenants.conf", tls, certs)
	for _, user := range users {
		nc, err := natsconn.Connect(srv.settings(user), zerolog.Nop())
		if err != nil {
			t.Fatalf("connect as %s: %v", user, err)
		}
		nc.Close()
	}
	if info, err := os.Stat(filepath.Join(dir, "ca-key.pem")); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("ca-key.pem: %v, mode %v; want 0600", err, info.Mode().Perm())
	}
}

// countStored counts the messages of stream under filter.
func countStored(t *testing.T, ctx context.Context, js jetstream.JetStream, stream, filter string) uint64 {
	t.Helper()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	n, err := streams.CountStored(ctx, s, filter)
	if err != nil {
		t.Fatalf("stream %s info: %v", stream, err)
	}
	return n
}

// TestComposeAccounts: docker-compose.yml's nats-servers load
// accounts.conf alone (their listen address and cluster from flags, no
// TLS inside the compose network). The workers' user provisions the
// outbox and runs the gateway; a tenant's user writes its own tenant
// through it and nothing else.
func TestComposeAccounts(t *testing.T) {
	srv := startServer(t, "accounts.conf", nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tokA, tokB := token(t, tenantA), token(t, tenantB)
	workerNC, workerJS, _ := srv.connect(t, "jetbox-worker", "")
	cfg := streams.DefaultConfig()
	cfg.Storage, cfg.Partitions = jetstream.MemoryStorage, 4
	if _, err := streams.Provision(ctx, workerJS, cfg); err != nil {
		t.Fatalf("workers' user provisions the streams: %v", err)
	}
	startGateway(t, workerNC)
	_, jsA, violA := srv.connect(t, "tenant-sandbox-tenant", "_INBOX."+tokA)
	if _, err := jsA.Publish(ctx, ingest.SubjectPrefix+"memory."+tokA+".sync.store", []byte(`{"coord":"1,2,3","payload":{}}`)); err != nil {
		t.Fatalf("A writes its own tenant: %v", err)
	}
	for _, subject := range []string{ingest.SubjectPrefix + "memory." + tokB + ".sync.store", "memory." + tokA + ".sync.store"} {
		short, cancelShort := context.WithTimeout(ctx, 500*time.Millisecond)
		if _, err := jsA.Publish(short, subject, []byte(`{"coord":"1,2,3","payload":{}}`)); err == nil {
			t.Fatalf("A's write to %s acknowledged", subject)
		}
		cancelShort()
		violA.waitFor(t, subject)
	}
}

// startGateway runs the ingest gateway on the workers' connection, as
// jetbox run does; its subscription is refused unless the workers' user
// may subscribe in the gateway's queue group.
func startGateway(t *testing.T, nc *nats.Conn) {
	t.Helper()
	gw, err := ingest.Start(nc, ingest.Config{})
	if err != nil {
		t.Fatalf("the workers' user starts the ingest gateway: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		gw.Stop(ctx)
	})
}
