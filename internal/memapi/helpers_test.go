package memapi

import (
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jetbox-dev/jetbox/internal/sfmapi"
)

// openTestStore opens a store in a fresh temp dir unless opts.Path is set.
func openTestStore(t *testing.T, opts Options) *Store {
	t.Helper()
	if opts.Path == "" {
		opts.Path = filepath.Join(t.TempDir(), "memapi.db")
	}
	s, err := Open(opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// startAPI serves the store on a loopback httptest server.
func startAPI(t *testing.T, s *Store) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv
}

type response struct {
	status int
	header http.Header
	body   string
}

// send makes one request; headers are name, value pairs. Safe to call from
// goroutines: a transport failure is reported with Errorf and status 0.
func send(t *testing.T, srv *httptest.Server, method, path, body string, headers ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Errorf("new request: %v", err)
		return response{}
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", method, path, err)
		return response{}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Errorf("%s %s: read body: %v", method, path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// expect fails the test unless the response has the status and, when body is
// not empty, exactly that body.
func expect(t *testing.T, what string, got response, status int, body string) {
	t.Helper()
	if got.status != status {
		t.Fatalf("%s: status %d, want %d (body %s)", what, got.status, status, got.body)
	}
	if body != "" && got.body != body {
		t.Fatalf("%s: body %s, want %s", what, got.body, body)
	}
	if ct := got.header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Fatalf("%s: Content-Type %q, want application/json; charset=utf-8", what, ct)
	}
}

func tenant(name string) []string { return []string{sfmapi.HeaderTenant, name} }

func withKey(tenantName, key string) []string {
	return []string{sfmapi.HeaderTenant, tenantName, sfmapi.HeaderIdempotencyKey, key}
}
