package natsconn_test

import (
	"context"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/rs/zerolog"

	"github.com/jetbox-dev/jetbox/internal/natsconn"
	"github.com/jetbox-dev/jetbox/internal/natstest"
)

// refused is one connection that must fail, and how it must fail.
type refused struct {
	name     string
	settings natsconn.Settings
	want     error  // errors.Is target, when the failure has a sentinel
	wantText string // else a phrase the error must contain, so it says why
}

// authCase is a server configured for one kind of authentication, the
// settings that get in, and the settings that must not.
type authCase struct {
	name    string
	server  func(*server.Options)
	good    natsconn.Settings
	refused []refused
}

// TestConnectAuth connects the way jetbox does (NATS_* variables, through
// Settings and Connect) to servers that require each kind of
// authentication the nats CLI supports. The right credentials connect and
// can use JetStream; wrong or missing ones are refused with an error that
// says why.
func TestConnectAuth(t *testing.T) {
	for _, c := range authCases(t) {
		t.Run(c.name, func(t *testing.T) {
			srv := natstest.Start(t, natstest.WithServerOptions(c.server))
			url := srv.ClientURL()

			good := c.good
			good.URL, good.Name = url, "natsconn-test"
			nc, err := natsconn.Connect(good, zerolog.Nop())
			if err != nil {
				t.Fatalf("connect with the right credentials: %v", err)
			}
			defer nc.Close()
			useJetStream(t, nc)

			for _, r := range c.refused {
				t.Run(r.name, func(t *testing.T) {
					s := r.settings
					s.URL = url
					nc, err := natsconn.Connect(s, zerolog.Nop())
					if err == nil {
						nc.Close()
						t.Fatal("connected; want refused")
					}
					t.Logf("refused: %v", err)
					switch {
					case r.want != nil && !errors.Is(err, r.want):
						t.Fatalf("error %v; want %v", err, r.want)
					case r.want == nil && !strings.Contains(err.Error(), r.wantText):
						t.Fatalf("error %q does not say %q", err, r.wantText)
					}
				})
			}
		})
	}
}

func authCases(t *testing.T) []authCase {
	dir := t.TempDir()

	// NKey: the server knows the user's public key; the client signs the
	// server's nonce with the seed in NATS_NKEY.
	nkeyUser, nkeySeed := newNKeyUser(t, dir, "user.nk")
	_, strangerSeed := newNKeyUser(t, dir, "stranger.nk")

	// Creds: an operator trusts an account (with JetStream) that signed
	// the user's JWT; the server resolves accounts from memory.
	op := newOperator(t)
	account := op.account(t, "APP", true)
	goodCreds := account.userCreds(t, dir, "user.creds")
	rogue := newOperator(t).account(t, "ROGUE", true)
	rogueCreds := rogue.userCreds(t, dir, "rogue.creds")

	// TLS: a server certificate signed by a test CA; a client certificate
	// for mutual TLS; and a second CA nobody trusts.
	ca := natstest.NewCA(t, "jetbox-test")
	serverCert, serverKey := ca.Issue(t, "server", x509.ExtKeyUsageServerAuth)
	clientCert, clientKey := ca.Issue(t, "client", x509.ExtKeyUsageClientAuth)
	otherCA := natstest.NewCA(t, "other")
	otherCert, otherKey := otherCA.Issue(t, "other-client", x509.ExtKeyUsageClientAuth)

	return []authCase{
		{
			name:   "user and password",
			server: func(o *server.Options) { o.Username, o.Password = "jetbox", "s3cret" },
			good:   natsconn.Settings{User: "jetbox", Password: "s3cret"},
			refused: []refused{
				{name: "wrong password", settings: natsconn.Settings{User: "jetbox", Password: "guess"}, want: nats.ErrAuthorization},
				{name: "unknown user", settings: natsconn.Settings{User: "mallory", Password: "s3cret"}, want: nats.ErrAuthorization},
				{name: "no credentials", want: nats.ErrAuthorization},
			},
		},
		{
			name:   "token",
			server: func(o *server.Options) { o.Authorization = "t0ken" },
			good:   natsconn.Settings{Token: "t0ken"},
			refused: []refused{
				{name: "wrong token", settings: natsconn.Settings{Token: "guess"}, want: nats.ErrAuthorization},
				{name: "no credentials", want: nats.ErrAuthorization},
			},
		},
		{
			name:   "nkey seed file",
			server: func(o *server.Options) { o.Nkeys = []*server.NkeyUser{{Nkey: nkeyUser}} },
			good:   natsconn.Settings{NKey: nkeySeed},
			refused: []refused{
				{name: "unknown nkey", settings: natsconn.Settings{NKey: strangerSeed}, want: nats.ErrAuthorization},
				{name: "missing seed file", settings: natsconn.Settings{NKey: filepath.Join(dir, "absent.nk")}, want: natsconn.ErrSettings},
				{name: "no credentials", want: nats.ErrAuthorization},
			},
		},
		{
			name:   "creds file",
			server: op.configure(account),
			good:   natsconn.Settings{Creds: goodCreds},
			refused: []refused{
				{name: "account the operator did not sign", settings: natsconn.Settings{Creds: rogueCreds}, want: nats.ErrAuthorization},
				{name: "missing creds file", settings: natsconn.Settings{Creds: filepath.Join(dir, "absent.creds")}, want: natsconn.ErrSettings},
				{name: "creds and nkey together", settings: natsconn.Settings{Creds: goodCreds, NKey: nkeySeed}, want: natsconn.ErrSettings},
				{name: "no credentials", want: nats.ErrAuthorization},
			},
		},
		{
			name:   "TLS with a CA",
			server: serverTLS(t, serverCert, serverKey, ""),
			good:   natsconn.Settings{CA: ca.CAFile},
			refused: []refused{
				{name: "system roots only", wantText: "certificate signed by unknown authority"},
				{name: "another CA", settings: natsconn.Settings{CA: otherCA.CAFile}, wantText: "certificate signed by unknown authority"},
			},
		},
		{
			name:   "mutual TLS",
			server: serverTLS(t, serverCert, serverKey, ca.CAFile),
			good:   natsconn.Settings{CA: ca.CAFile, Cert: clientCert, Key: clientKey},
			refused: []refused{
				// TLS 1.3: the server's "certificate required" alert can
				// reach the client before or after it writes, so the error
				// is either that alert or a write to a closed TLS connection.
				{name: "no client certificate", settings: natsconn.Settings{CA: ca.CAFile}, wantText: "tls"},
				{name: "client certificate of another CA", settings: natsconn.Settings{CA: ca.CAFile, Cert: otherCert, Key: otherKey}, wantText: "tls"},
				{name: "missing CA file", settings: natsconn.Settings{CA: filepath.Join(dir, "absent.pem"), Cert: clientCert, Key: clientKey}, want: natsconn.ErrSettings},
				{name: "certificate without its key", settings: natsconn.Settings{CA: ca.CAFile, Cert: clientCert}, want: natsconn.ErrSettings},
			},
		},
	}
}

// useJetStream creates a stream and publishes to it: the connection is not
// only accepted but may use JetStream.
func useJetStream(t *testing.T, nc *nats.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "AUTH", Subjects: []string{"auth.>"}, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatalf("create stream: %v", err)
	}
	ack, err := js.Publish(ctx, "auth.hello", []byte("hello"))
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	if ack.Stream != "AUTH" || ack.Sequence != 1 {
		t.Fatalf("ack %+v; want AUTH sequence 1", ack)
	}
}

func newNKeyUser(t *testing.T, dir, name string) (public, seedFile string) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatalf("create nkey: %v", err)
	}
	public, _ = kp.PublicKey()
	seed, _ := kp.Seed()
	seedFile = filepath.Join(dir, name)
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatalf("write seed: %v", err)
	}
	return public, seedFile
}

// operator is a NATS operator for decentralised (JWT) authentication.
type operator struct {
	kp     nkeys.KeyPair
	claims *jwt.OperatorClaims
	system *account
}

type account struct {
	kp       nkeys.KeyPair
	public   string
	claimJWT string
}

func newOperator(t *testing.T) *operator {
	t.Helper()
	kp, err := nkeys.CreateOperator()
	if err != nil {
		t.Fatalf("create operator: %v", err)
	}
	public, _ := kp.PublicKey()
	claims := jwt.NewOperatorClaims(public)
	claims.Name = "jetbox-test"
	if _, err := claims.Encode(kp); err != nil {
		t.Fatalf("encode operator: %v", err)
	}
	op := &operator{kp: kp, claims: claims}
	op.system = op.account(t, "SYS", false)
	return op
}

// account creates an account signed by the operator.
func (op *operator) account(t *testing.T, name string, jetStream bool) *account {
	t.Helper()
	kp, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatalf("create account: %v", err)
	}
	public, _ := kp.PublicKey()
	claims := jwt.NewAccountClaims(public)
	claims.Name = name
	if jetStream {
		claims.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
	}
	claimJWT, err := claims.Encode(op.kp)
	if err != nil {
		t.Fatalf("encode account: %v", err)
	}
	return &account{kp: kp, public: public, claimJWT: claimJWT}
}

// userCreds writes a creds file (user JWT and seed) for a new user of the
// account.
func (a *account) userCreds(t *testing.T, dir, name string) string {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatalf("create user: %v", err)
	}
	public, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	userJWT, err := jwt.NewUserClaims(public).Encode(a.kp)
	if err != nil {
		t.Fatalf("encode user: %v", err)
	}
	creds, err := jwt.FormatUserConfig(userJWT, seed)
	if err != nil {
		t.Fatalf("format creds: %v", err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, creds, 0o600); err != nil {
		t.Fatalf("write creds: %v", err)
	}
	return path
}

// configure puts the server in operator mode, trusting op, with the
// accounts preloaded in a memory resolver.
func (op *operator) configure(accounts ...*account) func(*server.Options) {
	return func(o *server.Options) {
		resolver := &server.MemAccResolver{}
		for _, a := range append([]*account{op.system}, accounts...) {
			_ = resolver.Store(a.public, a.claimJWT)
		}
		o.TrustedOperators = []*jwt.OperatorClaims{op.claims}
		o.AccountResolver = resolver
		o.SystemAccount = op.system.public
	}
}

// serverTLS makes the server require TLS with the given certificate and,
// when clientCA is set, a client certificate signed by it.
func serverTLS(t *testing.T, certFile, keyFile, clientCA string) func(*server.Options) {
	t.Helper()
	config, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: certFile, KeyFile: keyFile, CaFile: clientCA, Verify: clientCA != ""})
	if err != nil {
		t.Fatalf("server TLS config: %v", err)
	}
	return func(o *server.Options) {
		o.TLS, o.TLSVerify, o.TLSTimeout = true, clientCA != "", 2
		o.TLSConfig = config
	}
}
