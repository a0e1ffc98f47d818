// Package natsconn connects to NATS the way the nats CLI does, from the
// NATS_* variables: credentials file, NKey seed, user and password, token,
// TLS and mutual TLS.
package natsconn

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/jetbox-dev/jetbox/internal/config"
)

// Settings are the connection settings of the nats CLI.
type Settings struct {
	URL      string
	Creds    string
	NKey     string
	User     string
	Password string
	Token    string
	CA       string
	Cert     string
	Key      string
	Name     string // connection name shown by the server

	// InboxPrefix replaces _INBOX as the prefix of the connection's reply
	// subjects (the nats CLI's --inbox-prefix). A tenant's user that may
	// only subscribe to _INBOX.<tenant token>.> sets _INBOX.<tenant token>.
	InboxPrefix string
}

// ErrSettings says the settings contradict each other.
var ErrSettings = errors.New("invalid NATS connection settings")

// Options turns the settings into nats.go options.
func (s Settings) Options() ([]nats.Option, error) {
	opts := []nats.Option{
		nats.Name(s.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
	}
	if (s.Cert == "") != (s.Key == "") {
		return nil, fmt.Errorf("%w: NATS_CERT and NATS_KEY go together", ErrSettings)
	}
	if s.Creds != "" && s.NKey != "" {
		return nil, fmt.Errorf("%w: NATS_CREDS and NATS_NKEY exclude each other (a creds file holds its own NKey seed)", ErrSettings)
	}
	// nats.go reads these files only when it dials: check them now, so a
	// wrong path names its variable instead of surfacing as a dial error.
	for _, f := range []struct{ variable, path string }{
		{"NATS_CREDS", s.Creds}, {"NATS_CA", s.CA}, {"NATS_CERT", s.Cert}, {"NATS_KEY", s.Key},
	} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrSettings, f.variable, err)
		}
	}
	if s.Creds != "" {
		opts = append(opts, nats.UserCredentials(s.Creds))
	}
	if s.NKey != "" {
		opt, err := nats.NkeyOptionFromSeed(s.NKey)
		if err != nil {
			return nil, fmt.Errorf("%w: NATS_NKEY: %v", ErrSettings, err)
		}
		opts = append(opts, opt)
	}
	if s.User != "" {
		opts = append(opts, nats.UserInfo(s.User, s.Password))
	}
	if s.Token != "" {
		opts = append(opts, nats.Token(s.Token))
	}
	if s.InboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(s.InboxPrefix))
	}
	if s.CA != "" {
		opts = append(opts, nats.RootCAs(s.CA))
	}
	if s.Cert != "" {
		opts = append(opts, nats.ClientCert(s.Cert, s.Key))
	}
	return opts, nil
}

// Connect dials NATS and logs connection changes without their secrets;
// its errors name the URL redacted (config.RedactURL).
func Connect(s Settings, log zerolog.Logger) (*nats.Conn, error) {
	opts, err := s.Options()
	if err != nil {
		return nil, err
	}
	opts = append(opts,
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn().Err(err).Msg("disconnected from NATS")
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info().Str("server", config.RedactURL(nc.ConnectedUrl())).Msg("reconnected to NATS")
		}),
	)
	nc, err := nats.Connect(s.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", config.RedactURL(s.URL), withoutURL(err))
	}
	return nc, nil
}

// withoutURL keeps a URL that does not parse out of an error: net/url
// quotes it whole, password included, and its reason may quote the part
// of the password it tripped on, so that reason is kept only for a URL
// with nothing to hide.
func withoutURL(err error) error {
	var uerr *url.Error
	if !errors.As(err, &uerr) {
		return err
	}
	if config.RedactURL(uerr.URL) != uerr.URL {
		return fmt.Errorf("%w: NATS_URL does not parse", ErrSettings)
	}
	return fmt.Errorf("%w: NATS_URL does not parse: %v", ErrSettings, uerr.Err)
}

// WithJetStream adds a JetStream context to a connection just opened, as
// in WithJetStream(nats.Connect(url)). It passes err on, and closes nc if
// the context cannot be made.
func WithJetStream(nc *nats.Conn, err error) (*nats.Conn, jetstream.JetStream, error) {
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}
