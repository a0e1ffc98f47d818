package config

import (
	"errors"
	"fmt"
	"net"

	"github.com/rs/zerolog"
)

// AllowInsecureVar is the variable that lets the servers jetbox runs
// itself listen beyond loopback without authentication.
const AllowInsecureVar = "SOMABRAIN_OUTBOX_ALLOW_INSECURE"

// ErrExposed says a server jetbox runs itself would let in, without
// credentials, anyone who can reach its address.
var ErrExposed = errors.New("listening beyond loopback without authentication")

// Loopback reports whether a listen address (host:port) takes connections
// from this machine only: 127.0.0.0/8, ::1 or localhost. An empty host,
// 0.0.0.0 and :: listen on every interface, and any other name or address
// may be reachable from elsewhere.
func Loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Exposure describes a server jetbox runs itself (the embedded nats-server,
// the development memory API) for the decision whether it may listen
// where it is told to.
type Exposure struct {
	Server        string // what listens, as its messages name it
	Addr          string // its listen address, host:port
	ListenVar     string // the variable that sets Addr
	AuthVars      string // the variables that make its clients authenticate
	Authenticated bool   // its clients must authenticate
	AllowInsecure bool   // SOMABRAIN_OUTBOX_ALLOW_INSECURE
}

// Check decides. A server may listen on loopback, and anywhere when its
// clients must authenticate. Otherwise anyone who can reach the address
// could read and write every tenant's memories, so Check refuses with an
// error that wraps ErrExposed and names the variables, unless
// AllowInsecure accepts the risk: then it logs a warning to say so, and
// the server starts.
func (e Exposure) Check(log zerolog.Logger) error {
	if e.Authenticated || Loopback(e.Addr) {
		return nil
	}
	if !e.AllowInsecure {
		return fmt.Errorf("%s: %w: %s=%s lets in anyone who can reach it; listen on 127.0.0.1 or ::1, set %s, or accept the risk with %s=true",
			e.Server, ErrExposed, e.ListenVar, e.Addr, e.AuthVars, AllowInsecureVar)
	}
	log.Warn().Str("addr", e.Addr).Msgf("%s listens beyond loopback without authentication (%s=true): anyone who can reach it can read and write every tenant's memories; set %s",
		e.Server, AllowInsecureVar, e.AuthVars)
	return nil
}
