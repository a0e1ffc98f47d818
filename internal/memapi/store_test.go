package memapi

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetbox-dev/jetbox/internal/sfmapi"
)

// SFM's answers are proven by internal/sfmconformance; these tests cover
// what jetbox adds: the record of applied writes, tenants kept apart by
// header, the test aids, and the file.

const storeBody = `{"coord":"1,2,3","payload":{"v":1}}`

// A write that reaches the memory API twice is applied twice, as at SFM,
// and the record shows it: the same key twice in the memory's history.
func TestARepeatedKeyIsAppliedAgainAndRecorded(t *testing.T) {
	s := openTestStore(t, Options{})
	srv := startAPI(t, s)
	h := append(withKey("t", "key-1"), sfmapi.HeaderRequestID, "req-1")

	first := send(t, srv, "POST", "/memories", storeBody, h...)
	expect(t, "first", first, 200, `{"coord":"1,2,3","memory_type":"episodic"}`)
	again := send(t, srv, "POST", "/memories", `{"coord":"1.0,2.0,3.0","payload":{"v":2}}`, h...)
	expect(t, "same key, another body", again, 200, `{"coord":"1.0,2.0,3.0","memory_type":"episodic"}`)

	if ts := s.TenantStats("t"); ts != (TenantStats{Applied: 2, Repeated: 1}) || ts.Distinct() != 1 {
		t.Fatalf("stats = %+v, want applied 2 repeated 1", ts)
	}
	hist := s.History("t", "1,2,3")
	if len(hist) != 2 || hist[0].IdempotencyKey != "key-1" || hist[1].IdempotencyKey != "key-1" || hist[0].RequestID != "req-1" {
		t.Fatalf("history = %+v, want key-1 twice", hist)
	}
	if m, found, err := s.Get("t", "1,2,3"); err != nil || !found || string(m.Payload) != `{"v":2}` {
		t.Fatalf("memory = %+v found=%v err=%v, want the second payload (an upsert)", m, found, err)
	}

	// Keys are counted per tenant.
	expect(t, "same key, other tenant", send(t, srv, "POST", "/memories", storeBody, withKey("u", "key-1")...), 200, "")
	if ts := s.TenantStats("u"); ts != (TenantStats{Applied: 1}) {
		t.Fatalf("tenant u = %+v, want applied 1, no repeat", ts)
	}
}

func TestHistoryKeepsApplyOrderAndSoftDeletes(t *testing.T) {
	s := openTestStore(t, Options{})
	srv := startAPI(t, s)
	steps := []struct{ method, path, body, op string }{
		{"POST", "/memories", storeBody, "store"},
		{"DELETE", "/memories/1,2,3", "", "delete"},
		{"DELETE", "/memories/1,2,3", "", "delete"}, // deleting a missing memory still applies
		{"POST", "/memories", `{"coord":"1.0,2.0,3.0","payload":{"v":2}}`, "store"},
		{"POST", "/graph/link", `{"from_coord":"1,2,3","to_coord":"4,5,6","link_type":"next","weight":0.5}`, "link"},
	}
	for i, st := range steps {
		h := []string{sfmapi.HeaderTenant, "t", sfmapi.HeaderRequestID, st.op + string(rune('0'+i))}
		expect(t, st.op, send(t, srv, st.method, st.path, st.body, h...), 200, "")
	}
	hist := s.History("t", "1,2,3")
	if len(hist) != len(steps) {
		t.Fatalf("history = %+v, want %d entries", hist, len(steps))
	}
	for i, e := range hist {
		if want := steps[i].op + string(rune('0'+i)); e.Op != steps[i].op || e.RequestID != want {
			t.Fatalf("entry %d = %+v, want op %s request %s", i, e, steps[i].op, want)
		}
	}
	if h := s.History("t", "4,5,6"); len(h) != 0 {
		t.Fatalf("link target has history %+v, want none (links are filed under from_coord)", h)
	}
	if m, found, _ := s.Get("t", "1,2,3"); !found || string(m.Payload) != `{"v":2}` {
		t.Fatalf("after delete and store: %+v found=%v, want the memory back", m, found)
	}
}

func TestTenantsAreKeptApartByHeader(t *testing.T) {
	s := openTestStore(t, Options{Token: "tok"})
	srv := startAPI(t, s)
	auth := []string{"Authorization", "Bearer tok"}

	expect(t, "store as A", send(t, srv, "POST", "/memories", storeBody, append(auth, sfmapi.HeaderTenant, "tenant-a")...), 200, "")
	expect(t, "B reads A's coord", send(t, srv, "GET", "/memories/1,2,3", "", append(auth, sfmapi.HeaderTenant, "tenant-b")...), 404, `{"detail":"Memory not found"}`)
	expect(t, "B deletes A's coord", send(t, srv, "DELETE", "/memories/1,2,3", "", append(auth, sfmapi.HeaderTenant, "tenant-b")...), 200, `{"coord":"1,2,3","deleted":false}`)
	expect(t, "no header is default", send(t, srv, "POST", "/memories", storeBody, auth...), 200, "")

	if _, found, _ := s.Get("tenant-a", "1,2,3"); !found {
		t.Fatal("A's memory is gone after B's delete")
	}
	if _, found, _ := s.Get("default", "1,2,3"); !found {
		t.Fatal("a write without X-Soma-Tenant is not in tenant default")
	}
	if ts := s.TenantStats("tenant-a"); ts.Applied != 1 {
		t.Fatalf("A applied = %d, want 1", ts.Applied)
	}
}

// With TokenTenant set, as SFM in standalone mode, every write lands in
// that tenant whatever X-Soma-Tenant says.
func TestTokenTenantWinsOverTheHeader(t *testing.T) {
	s := openTestStore(t, Options{Token: "tok", TokenTenant: "standalone"})
	srv := startAPI(t, s)
	for _, tenant := range []string{"a", "b"} {
		got := send(t, srv, "POST", "/memories", `{"coord":"1,2,3","payload":{"by":"`+tenant+`"}}`, "Authorization", "Bearer tok", sfmapi.HeaderTenant, tenant)
		expect(t, "store as "+tenant, got, 200, "")
	}
	if stats := s.Stats(); len(stats.Tenants) != 1 || stats.Tenants["standalone"].Applied != 2 {
		t.Fatalf("stats = %+v, want both writes in tenant standalone", stats)
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
	expect(t, "healthz", send(t, srv, "GET", "/healthz", ""), 200, `{"kv_store":true,"vector_store":true,"graph_store":true}`)
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
	req.Header.Set(sfmapi.HeaderTenant, "t")
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
	if ts := s.TenantStats("t"); ts.Applied != 0 {
		t.Fatalf("a request whose client left during the delay was applied: %+v", ts)
	}
}

func TestFailRefusesOnlyTheNamedTenants(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	s := openTestStore(t, Options{Fail: func(tenant string) bool { return tenant == "down" && down.Load() }})
	srv := startAPI(t, s)
	const refused = `{"detail":"memory API unavailable for this tenant"}`

	for _, tc := range []struct{ what, method, path, body string }{
		{"store", "POST", "/memories", storeBody},
		{"delete", "DELETE", "/memories/1,2,3", ""},
		{"link", "POST", "/graph/link", `{"from_coord":"1,2,3","to_coord":"4,5,6"}`},
		{"get", "GET", "/memories/1,2,3", ""},
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
	expect(t, "store of another tenant", send(t, srv, "POST", "/memories", storeBody, withKey("up", "k1")...), 200, "")
	down.Store(false)
	expect(t, "store after recovery", send(t, srv, "POST", "/memories", storeBody, withKey("down", "k-store")...), 200, "")
	if h := s.History("down", "1,2,3"); len(h) != 1 || h[0].IdempotencyKey != "k-store" {
		t.Fatalf("history after recovery = %+v, want the one store", h)
	}
}

func TestRestartKeepsMemoriesAndTheRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nested", "dir", "memapi.db")
	s, err := Open(Options{Path: path})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	srv := startAPI(t, s)
	expect(t, "before restart", send(t, srv, "POST", "/memories", storeBody, withKey("t", "k")...), 200, "")
	srv.Close()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = openTestStore(t, Options{Path: path})
	if m, found, err := s.Get("t", "1,2,3"); err != nil || !found || string(m.Payload) != `{"v":1}` {
		t.Fatalf("after restart Get = %+v found=%v err=%v", m, found, err)
	}
	srv = startAPI(t, s)
	expect(t, "repeat after restart", send(t, srv, "POST", "/memories", storeBody, withKey("t", "k")...), 200, "")
	if ts := s.TenantStats("t"); ts != (TenantStats{Applied: 2, Repeated: 1}) {
		t.Fatalf("stats = %+v, want the repeat recognised across the restart", ts)
	}
}

func TestGetRejectsInvalidCoord(t *testing.T) {
	s := openTestStore(t, Options{})
	if _, _, err := s.Get("t", "1,x"); !errors.Is(err, ErrInvalidCoord) {
		t.Fatalf("Get(1,x) error = %v, want ErrInvalidCoord", err)
	}
}

func TestSecondOpenOfALockedFileFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "memapi.db")
	openTestStore(t, Options{Path: path})
	start := time.Now()
	if s, err := Open(Options{Path: path}); err == nil {
		s.Close()
		t.Fatal("second Open of a file in use succeeded")
	}
	if time.Since(start) > 30*time.Second {
		t.Fatal("second Open hung on the file lock")
	}
}

// -0 and 0 are two memories at SFM, whose key is str() of each number.
func TestMinusZeroIsAnotherMemory(t *testing.T) {
	// -0 and 0 are two memories at SFM, whose key is str() of each number.
	neg, _ := parseCoord("-0,1")
	pos, _ := parseCoord("0,1")
	if neg.key != "-0.0,1.0" || pos.key != "0.0,1.0" {
		t.Errorf("keys %q and %q, want -0.0,1.0 and 0.0,1.0", neg.key, pos.key)
	}
}
