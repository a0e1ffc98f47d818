package memclient

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetbox-dev/jetbox/consumer/internal/intake"
	"github.com/jetbox-dev/jetbox/internal/sfmapi"
	"github.com/jetbox-dev/jetbox/streams"
)

func storeWrite(t *testing.T) *intake.Write {
	t.Helper()
	addr, err := streams.NewAddress("acme", streams.ModeSync, streams.OpStore)
	if err != nil {
		t.Fatal(err)
	}
	return &intake.Write{Addr: addr, IdempotencyKey: "k1", Method: http.MethodPost, Path: sfmapi.PathMemories, Body: []byte(`{"coord":"1,2,3","payload":{}}`)}
}

// Each call carries its headers and body, and a kept-alive connection the
// memory API closed is replaced without the write failing.
func TestMemoryAPICallSendsTheWriteAndSurvivesAClosedKeepAlive(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || r.URL.Path != sfmapi.PathMemories || string(body) != `{"coord":"1,2,3","payload":{}}` ||
			r.Header.Get(sfmapi.HeaderAuthorization) != "Bearer secret" || r.Header.Get(sfmapi.HeaderTenant) != "acme" ||
			r.Header.Get(sfmapi.HeaderIdempotencyKey) != "k1" || r.Header.Get(sfmapi.HeaderContentType) != "application/json" || r.ContentLength != int64(len(body)) {
			t.Errorf("call %d: %s %s %q headers %v length %d", calls.Load(), r.Method, r.URL.Path, body, r.Header, r.ContentLength)
		}
		calls.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	m := New(Config{Endpoint: srv.URL + "/", Token: "secret", Concurrency: 4, Timeout: 5 * time.Second})
	for i := range 3 {
		if a := m.Apply(context.Background(), storeWrite(t)); a.Class != sfmapi.Applied || a.Err != nil {
			t.Fatalf("call %d: %+v", i, a)
		}
		// Drop the kept-alive connections, as a restarting memory API does.
		srv.CloseClientConnections()
	}
	if n := calls.Load(); n != 3 {
		t.Fatalf("memory API saw %d calls, want 3", n)
	}
}

// A redirect is not followed: a POST must not turn into a GET elsewhere,
// and the bearer token must not travel on. The write fails permanently
// with the status, which its dead letter records.
func TestMemoryAPIRedirectIsAPermanentFailure(t *testing.T) {
	var elsewhere atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
	defer target.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+r.URL.Path, http.StatusFound)
	}))
	defer srv.Close()
	m := New(Config{Endpoint: srv.URL, Token: "secret", Concurrency: 4, Timeout: 5 * time.Second})
	a := m.Apply(context.Background(), storeWrite(t))
	if a.Class != sfmapi.Permanent || a.Status != http.StatusFound || a.Err == nil || !strings.Contains(a.Err.Error(), "302") {
		t.Fatalf("answer %+v, want a permanent failure with status 302", a)
	}
	if n := elsewhere.Load(); n != 0 {
		t.Fatalf("the redirect was followed %d times", n)
	}
}

// user:password@ in the endpoint is sent as basic auth when no token is set.
func TestMemoryAPIEndpointUserInfoIsBasicAuth(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "jetbox" || p != "pw" {
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	defer srv.Close()
	endpoint := strings.Replace(srv.URL, "http://", "http://jetbox:pw@", 1)
	m := New(Config{Endpoint: endpoint, Concurrency: 4, Timeout: 5 * time.Second})
	if a := m.Apply(context.Background(), storeWrite(t)); a.Class != sfmapi.Applied {
		t.Fatalf("answer %+v, want applied with basic auth", a)
	}
}
