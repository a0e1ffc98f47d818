package config

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

func TestLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:4222": true, "127.1.2.3:0": true, "[::1]:4222": true, "localhost:9595": true,
		"0.0.0.0:0": false, "[::]:0": false, ":4222": false, "10.1.2.3:4222": false,
		"192.0.2.1:9595": false, "nats.example.com:4222": false, "[::ffff:10.1.2.3]:1": false,
		"127.0.0.1": false, // no port: not an address it could listen on
	} {
		if got := Loopback(addr); got != want {
			t.Errorf("Loopback(%q) = %v; want %v", addr, got, want)
		}
	}
}

// A server beyond loopback without authentication is refused, with an
// error naming the variables, unless the risk is accepted, and then it
// warns; on loopback or with authentication it starts, and quietly.
// Nothing listens here.
func TestExposureCheck(t *testing.T) {
	check := func(addr string, authenticated, allowInsecure bool) (warning string, err error) {
		var log bytes.Buffer
		err = Exposure{
			Server: "test server", Addr: addr, ListenVar: "TEST_LISTEN", AuthVars: "TEST_TOKEN",
			Authenticated: authenticated, AllowInsecure: allowInsecure,
		}.Check(zerolog.New(&log))
		return log.String(), err
	}
	for _, addr := range []string{"0.0.0.0:0", "[::]:0", ":0", "10.1.2.3:4222"} {
		warning, err := check(addr, false, false)
		if !errors.Is(err, ErrExposed) || warning != "" {
			t.Fatalf("%s without authentication: error %v, log %q; want %v and no log", addr, err, warning, ErrExposed)
		}
		for _, name := range []string{"test server", "TEST_LISTEN=" + addr, "TEST_TOKEN", AllowInsecureVar + "=true"} {
			if !strings.Contains(err.Error(), name) {
				t.Errorf("the refusal does not name %s: %v", name, err)
			}
		}
		warning, err = check(addr, false, true)
		if err != nil {
			t.Errorf("%s accepted with %s: %v", addr, AllowInsecureVar, err)
		}
		for _, want := range []string{`"level":"warn"`, addr, AllowInsecureVar, "TEST_TOKEN"} {
			if !strings.Contains(warning, want) {
				t.Errorf("%s accepted with %s: the warning lacks %s: %q", addr, AllowInsecureVar, want, warning)
			}
		}
		if warning, err := check(addr, true, false); err != nil || warning != "" {
			t.Errorf("%s with authentication: error %v, log %q; want neither", addr, err, warning)
		}
	}
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0", "localhost:4222"} {
		for _, allow := range []bool{false, true} {
			if warning, err := check(addr, false, allow); err != nil || warning != "" {
				t.Errorf("%s (allow %v): error %v, log %q; want neither", addr, allow, err, warning)
			}
		}
	}
}
