package memapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestStoreGetDeleteLinkRoundTrip(t *testing.T) {
	s := openTestStore(t, Options{})
	srv := startAPI(t, s)
	a := tenant("acme")

	got := send(t, srv, "POST", "/memories", `{"coord":"0.1,-0.2,0.3","payload":{"text":"hello","n":1}}`, a...)
	expect(t, "store", got, 200, `{"coord":"0.1,-0.2,0.3","memory_type":"episodic"}`)

	got = send(t, srv, "GET", "/memories/0.1,-0.2,0.3", "", a...)
	expect(t, "get", got, 200, `{"coord":"0.1,-0.2,0.3","payload":{"text":"hello","n":1},"memory_type":"episodic"}`)

	// Overwrite at the same point, spelled differently: one memory per point.
	got = send(t, srv, "POST", "/memories", `{"coord":"0.10, -0.2, 3e-1","payload":{"text":"again"},"memory_type":"semantic"}`, a...)
	expect(t, "overwrite", got, 200, `{"coord":"0.10, -0.2, 3e-1","memory_type":"semantic"}`)
	m, found, err := s.Get("acme", "0.1,-0.2,0.3")
	if err != nil || !found {
		t.Fatalf("Get after overwrite: found=%v err=%v", found, err)
	}
	if m.MemoryType != "semantic" || string(m.Payload) != `{"text":"again"}` {
		t.Fatalf("Get after overwrite = %+v, want the semantic payload", m)
	}

	got = send(t, srv, "POST", "/graph/link", `{"from_coord":"0.1,-0.2,0.3","to_coord":"1,2,3","link_type":"related"}`, a...)
	expect(t, "link", got, 200, `{"from_coord":"0.1,-0.2,0.3","to_coord":"1,2,3","link_type":"related","ok":true}`)
	var link storedLink
	err = s.db.View(func(tx *bolt.Tx) error {
		b, _ := readTenant(tx, "acme")
		return json.Unmarshal(b.links.Get(linkKey("0.1,-0.2,0.3", "1,2,3", "related")), &link)
	})
	if err != nil {
		t.Fatalf("read stored link: %v", err)
	}
	if link.Strength != 1.0 || link.LinkType != "related" || link.ToCoord != "1,2,3" {
		t.Fatalf("stored link = %+v, want strength 1.0 to 1,2,3", link)
	}

	got = send(t, srv, "DELETE", "/memories/0.1,-0.2,0.3", "", a...)
	expect(t, "delete", got, 200, `{"coord":"0.1,-0.2,0.3","deleted":true}`)
	got = send(t, srv, "GET", "/memories/0.1,-0.2,0.3", "", a...)
	expect(t, "get after delete", got, 404, "")
	got = send(t, srv, "DELETE", "/memories/0.1,-0.2,0.3", "", a...)
	expect(t, "delete again", got, 200, `{"coord":"0.1,-0.2,0.3","deleted":false}`)

	got = send(t, srv, "GET", "/stats", "")
	expect(t, "stats", got, 200, `{"tenants":{"acme":{"applied":5,"suppressed":0,"conflicts":0}}}`)
}

func TestTenantsAreIsolated(t *testing.T) {
	s := openTestStore(t, Options{})
	srv := startAPI(t, s)

	got := send(t, srv, "POST", "/memories", `{"coord":"1,2,3","payload":{"owner":"a"}}`,
		headerTenant, "tenant-a", headerNamespace, "memory:tenant-a")
	expect(t, "store as A", got, 200, "")

	got = send(t, srv, "GET", "/memories/1,2,3", "", tenant("tenant-b")...)
	expect(t, "B reads A's coord", got, 404, "")
	got = send(t, srv, "DELETE", "/memories/1,2,3", "", tenant("tenant-b")...)
	expect(t, "B deletes A's coord", got, 200, `{"coord":"1,2,3","deleted":false}`)

	if _, found, _ := s.Get("tenant-a", "1,2,3"); !found {
		t.Fatal("A's memory is gone after B's delete")
	}
	if _, found, _ := s.Get("tenant-b", "1,2,3"); found {
		t.Fatal("B sees A's memory through Get")
	}
	if h := s.History("tenant-b", "1,2,3"); len(h) != 1 || h[0].Op != "delete" {
		t.Fatalf("B's history = %+v, want only B's own delete", h)
	}
	if ts := s.TenantStats("tenant-a"); ts.Applied != 1 {
		t.Fatalf("A applied = %d, want 1", ts.Applied)
	}
}

func TestAuth(t *testing.T) {
	s := openTestStore(t, Options{Token: "s3cret"})
	srv := startAPI(t, s)
	body := `{"coord":"1,2,3","payload":{}}`

	expect(t, "healthz without token", send(t, srv, "GET", "/healthz", ""), 200, `{"healthy":true}`)
	for name, auth := range map[string]string{
		"missing":      "",
		"wrong token":  "Bearer nope",
		"wrong scheme": "Basic s3cret",
		"prefix":       "Bearer s3cre",
	} {
		got := send(t, srv, "POST", "/memories", body, headerTenant, "t", "Authorization", auth)
		expect(t, name, got, 401, `{"error":"missing or invalid bearer token"}`)
		if strings.Contains(got.body, "s3cret") {
			t.Fatalf("%s: answer leaks the token: %s", name, got.body)
		}
	}
	expect(t, "stats without token", send(t, srv, "GET", "/stats", ""), 401, "")
	expect(t, "unknown path without token", send(t, srv, "GET", "/nope", ""), 401, "")
	if ts := s.TenantStats("t"); ts.Applied != 0 {
		t.Fatalf("rejected requests applied %d writes", ts.Applied)
	}

	got := send(t, srv, "POST", "/memories", body, headerTenant, "t", "Authorization", "bearer s3cret")
	expect(t, "right token", got, 200, "")
	if ts := s.TenantStats("t"); ts.Applied != 1 {
		t.Fatalf("applied = %d after the authorised write, want 1", ts.Applied)
	}
}

func TestValidation(t *testing.T) {
	s := openTestStore(t, Options{})
	srv := startAPI(t, s)

	for _, tc := range []struct {
		name, method, path, body, reason string
	}{
		{"two numbers", "POST", "/memories", `{"coord":"1,2","payload":{}}`, "invalid coord"},
		{"not numbers", "POST", "/memories", `{"coord":"a,b,c","payload":{}}`, "invalid coord"},
		{"NaN", "POST", "/memories", `{"coord":"1,2,NaN","payload":{}}`, "invalid coord"},
		{"infinite", "POST", "/memories", `{"coord":"1,2,1e400","payload":{}}`, "invalid coord"},
		{"missing coord", "POST", "/memories", `{"payload":{}}`, "invalid coord"},
		{"coord a number", "POST", "/memories", `{"coord":1,"payload":{}}`, `field \"coord\"`},
		{"array payload", "POST", "/memories", `{"coord":"1,2,3","payload":[1]}`, "payload must be a JSON object"},
		{"string payload", "POST", "/memories", `{"coord":"1,2,3","payload":"x"}`, "payload must be a JSON object"},
		{"null payload", "POST", "/memories", `{"coord":"1,2,3","payload":null}`, "payload must be a JSON object"},
		{"missing payload", "POST", "/memories", `{"coord":"1,2,3"}`, "payload must be a JSON object"},
		{"bad memory_type", "POST", "/memories", `{"coord":"1,2,3","payload":{},"memory_type":"dream"}`, "memory_type"},
		{"not JSON", "POST", "/memories", `coord=1,2,3`, "not valid JSON"},
		{"trailing data", "POST", "/memories", `{"coord":"1,2,3","payload":{}} {}`, "not valid JSON"},
		{"empty body", "POST", "/memories", ``, "body is empty"},
		{"array body", "POST", "/memories", `[]`, "body must be a JSON object"},
		{"bad path coord", "GET", "/memories/1,2", ``, "invalid coord"},
		{"bad delete coord", "DELETE", "/memories/x,y,z", ``, "invalid coord"},
		{"link bad from", "POST", "/graph/link", `{"from_coord":"1","to_coord":"1,2,3","link_type":"r"}`, "from_coord"},
		{"link bad to", "POST", "/graph/link", `{"from_coord":"1,2,3","to_coord":"","link_type":"r"}`, "to_coord"},
		{"link strength string", "POST", "/graph/link", `{"from_coord":"1,2,3","to_coord":"1,2,3","link_type":"r","strength":"x"}`, `field \"strength\"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := send(t, srv, tc.method, tc.path, tc.body, tenant("t")...)
			expect(t, tc.name, got, 422, "")
			if !strings.Contains(got.body, tc.reason) {
				t.Fatalf("reason %s does not mention %q", got.body, tc.reason)
			}
		})
	}

	got := send(t, srv, "POST", "/memories", `{"coord":"1,2,3","payload":{}}`)
	expect(t, "missing tenant", got, 400, `{"error":"header X-Soma-Tenant is required"}`)
	got = send(t, srv, "GET", "/history/1,2,3", "")
	expect(t, "history without tenant", got, 400, "")
	got = send(t, srv, "POST", "/memories", `{"coord":"1,2,3","payload":{}}`, tenant(strings.Repeat("x", 129))...)
	expect(t, "tenant too long", got, 400, "")

	got = send(t, srv, "GET", "/nowhere", "")
	expect(t, "unknown path", got, 404, `{"error":"no such endpoint: /nowhere"}`)
	got = send(t, srv, "PUT", "/memories", `{}`, tenant("t")...)
	expect(t, "wrong method", got, 405, "")
	if allow := got.header.Get("Allow"); allow != "POST" {
		t.Fatalf("Allow = %q, want POST", allow)
	}
	got = send(t, srv, "POST", "/memories/1,2,3", `{}`, tenant("t")...)
	expect(t, "wrong method on coord", got, 405, "")
	if allow := got.header.Get("Allow"); allow != "DELETE, GET" {
		t.Fatalf("Allow = %q, want DELETE, GET", allow)
	}

	if stats := s.Stats(); len(stats.Tenants) != 0 {
		t.Fatalf("invalid requests left state behind: %+v", stats)
	}
}

func TestDelayAppliesToDataEndpoints(t *testing.T) {
	const delay = 150 * time.Millisecond
	s := openTestStore(t, Options{Delay: delay})
	srv := startAPI(t, s)

	start := time.Now()
	expect(t, "delayed store", send(t, srv, "POST", "/memories", storeBody, tenant("t")...), 200, "")
	if took := time.Since(start); took < delay {
		t.Fatalf("store took %v, want at least the %v delay", took, delay)
	}
	start = time.Now()
	expect(t, "healthz", send(t, srv, "GET", "/healthz", ""), 200, "")
	if took := time.Since(start); took >= delay {
		t.Fatalf("healthz took %v: the delay applies to data endpoints only", took)
	}
}

func TestDelayEndsWhenTheClientGoesAway(t *testing.T) {
	// The delay is long and the client's deadline short, so only a handler
	// that ignores the client leaving can apply the write or run long.
	const delay = 3 * time.Second
	s := openTestStore(t, Options{Delay: delay})
	handled := make(chan time.Duration, 1)
	api := s.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		api.ServeHTTP(w, r)
		handled <- time.Since(start)
	}))
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", srv.URL+"/memories", strings.NewReader(storeBody))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(headerTenant, "t")
	if resp, err := srv.Client().Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("request with a 50ms deadline answered %d", resp.StatusCode)
	}
	select {
	case took := <-handled:
		if took >= delay {
			t.Fatalf("handler ran %v: it waited out the delay after the client left", took)
		}
	case <-time.After(2 * delay):
		t.Fatal("handler never returned")
	}
	if _, found, _ := s.Get("t", "1,2,3"); found {
		t.Fatal("a request whose client left during the delay was applied")
	}
	if ts := s.TenantStats("t"); ts.Applied != 0 {
		t.Fatalf("applied = %d, want 0", ts.Applied)
	}
}

func TestFailRefusesOnlyTheNamedTenants(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	s := openTestStore(t, Options{Fail: func(tenant string) bool { return tenant == "down" && down.Load() }})
	srv := startAPI(t, s)
	const refused = `{"error":"memory API unavailable for this tenant"}`

	for _, tc := range []struct{ what, method, path, body string }{
		{"store", "POST", "/memories", storeBody},
		{"delete", "DELETE", "/memories/1,2,3", ""},
		{"link", "POST", "/graph/link", `{"from_coord":"1,2,3","to_coord":"4,5,6","link_type":"r"}`},
		{"get", "GET", "/memories/1,2,3", ""},
		{"history", "GET", "/history/1,2,3", ""},
	} {
		got := send(t, srv, tc.method, tc.path, tc.body, withKey("down", "k-"+tc.what)...)
		expect(t, tc.what+" of the failing tenant", got, 503, refused)
		if ra := got.header.Get("Retry-After"); ra != "" {
			t.Fatalf("%s: Retry-After %q, want none", tc.what, ra)
		}
	}
	if stats := s.Stats(); len(stats.Tenants) != 0 {
		t.Fatalf("refused requests left state behind: %+v", stats)
	}

	// Other tenants and the endpoints without a tenant are unaffected.
	expect(t, "store of another tenant", send(t, srv, "POST", "/memories", storeBody, withKey("up", "k1")...), 200, "")
	expect(t, "healthz", send(t, srv, "GET", "/healthz", ""), 200, "")
	expect(t, "stats", send(t, srv, "GET", "/stats", ""), 200, `{"tenants":{"up":{"applied":1,"suppressed":0,"conflicts":0}}}`)

	// A refusal stores no idempotency record: once the tenant recovers, the
	// same key is applied, not answered with the 503.
	down.Store(false)
	expect(t, "store after recovery", send(t, srv, "POST", "/memories", storeBody, withKey("down", "k-store")...), 200, "")
	if h := s.History("down", "1,2,3"); len(h) != 1 || h[0].IdempotencyKey != "k-store" {
		t.Fatalf("history after recovery = %+v, want the one store", h)
	}
}
