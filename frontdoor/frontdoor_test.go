package frontdoor_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jetbox-dev/jetbox/frontdoor"
	"github.com/jetbox-dev/jetbox/producer"
	"github.com/jetbox-dev/jetbox/streams"
)

// sameJSON reports whether a and b are the same JSON value.
func sameJSON(t *testing.T, a, b string) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal([]byte(a), &va); err != nil {
		t.Fatalf("not JSON: %q", a)
	}
	if err := json.Unmarshal([]byte(b), &vb); err != nil {
		t.Fatalf("not JSON: %q", b)
	}
	return reflect.DeepEqual(va, vb)
}

// Every route in every mode, with exactly SomaBrain's headers: the writes
// reach the memory API, answered as SFM answers, and the caller's token
// never does.
func TestSomaBrainWritesInEveryMode(t *testing.T) {
	h := newHarness(t, options{worker: true})
	for i, mode := range []string{"sync", "fast_ack", "background"} {
		t.Run(mode, func(t *testing.T) {
			from, to := fmt.Sprintf("%d.5,0.25,-1", i), fmt.Sprintf("%d.5,0.75,-1", i)
			modeHeader := []string{"X-Soma-Write-Mode", mode, "traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
			if mode == "sync" {
				modeHeader[1] = "" // the configured default mode
			}
			stored := h.somaBrain("POST", "/memories", `{"coord": "`+from+`", "payload": {"text": "likes tea"}}`, modeHeader...)
			wantStore := `{"coord": "` + from + `", "memory_type": "episodic"}`
			if stored.status != 200 || !sameJSON(t, stored.body, wantStore) {
				t.Fatalf("store: %d %s, want 200 %s", stored.status, stored.body, wantStore)
			}
			if mode != "sync" && stored.body != wantStore {
				t.Errorf("store answer %s, want SFM's spelling %s", stored.body, wantStore)
			}
			waitFor(t, 10*time.Second, "store applied", func() bool { _, ok := h.memory(somaTenant, from); return ok })
			if m, _ := h.memory(somaTenant, from); !sameJSON(t, string(m.Payload), `{"text": "likes tea"}`) {
				t.Errorf("stored payload %s", m.Payload)
			}

			linked := h.somaBrain("POST", "/graph/link", `{"from_coord": "`+from+`", "to_coord": "`+to+`", "link_type": null, "strength": 0.5, "metadata": {"why": "test"}}`, modeHeader...)
			wantLink := `{"from_coord": "` + from + `", "to_coord": "` + to + `", "link_type": "related", "ok": true}`
			if linked.status != 200 || !sameJSON(t, linked.body, wantLink) {
				t.Fatalf("link: %d %s, want 200 %s", linked.status, linked.body, wantLink)
			}
			waitFor(t, 10*time.Second, "link applied", func() bool { return slices.Contains(h.ops(somaTenant, from), "link") })

			deleted := h.somaBrain("DELETE", "/memories/"+from, "", modeHeader...)
			wantDelete := `{"coord": "` + from + `", "deleted": true}`
			if deleted.status != 200 || !sameJSON(t, deleted.body, wantDelete) {
				t.Fatalf("delete: %d %s, want 200 %s", deleted.status, deleted.body, wantDelete)
			}
			waitFor(t, 10*time.Second, "delete applied", func() bool { _, ok := h.memory(somaTenant, from); return !ok })
			if got := h.ops(somaTenant, from); !slices.Equal(got, []string{"store", "link", "delete"}) {
				t.Errorf("memory API applied %v, want each write once, in order", got)
			}
		})
	}
	for _, r := range h.rec.all() {
		if r.authorization != "Bearer "+memoryToken || r.apiKey != "" || r.authTok != "" {
			t.Errorf("%s %s reached the memory API with Authorization %q, X-API-Key %q, X-Auth-Token %q", r.method, r.path, r.authorization, r.apiKey, r.authTok)
		}
		if r.tenant != somaTenant || r.namespace != somaNS || !strings.HasPrefix(r.requestID, "req-") {
			t.Errorf("%s %s reached the memory API as tenant %q, namespace %q, request id %q", r.method, r.path, r.tenant, r.namespace, r.requestID)
		}
	}
	if r, ok := h.rec.last("POST", "/memories"); !ok || r.traceparent == "" {
		t.Errorf("traceparent not forwarded: %+v", r)
	}
}

// Reads go to the memory API unchanged, with the front door's token and
// the request's tenant.
func TestReadsAreProxiedWithTheFrontDoorsToken(t *testing.T) {
	h := newHarness(t, options{worker: true})
	if a := h.somaBrain("POST", "/memories", `{"coord": "1,2,3", "payload": {"k": 1}}`); a.status != 200 {
		t.Fatalf("sync store: %d %s", a.status, a.body)
	}
	got := h.somaBrain("GET", "/memories/1,2,3", "")
	want := h.direct("GET", "/memories/1,2,3", "", somaTenant)
	// A read updates the memory's updated_at, as SomaFractalMemory's does:
	// the two reads differ there and nowhere else.
	if got.status != 200 || got.status != want.status || withoutUpdatedAt(got.body) != withoutUpdatedAt(want.body) {
		t.Errorf("GET /memories/1,2,3 through the front door: %d %s; directly: %d %s", got.status, got.body, want.status, want.body)
	}
	reads := []struct{ method, path, body string }{
		{"POST", "/memories/search", `{"query": "tea", "top_k": 3}`},
		{"GET", "/memories/search?query=tea&top_k=3", ""},
		{"GET", "/graph/neighbors?coord=0.1,0.2,0.3&k_hop=1", ""},
		{"GET", "/graph/path?from_coord=0.1,0.2,0.3&to_coord=0.4,0.5,0.6", ""},
		{"GET", "/health", ""},
		{"GET", "/healthz", ""},
		{"GET", "/readyz", ""},
		{"GET", "/health/basic", ""},
	}
	for _, rd := range reads {
		// Straight to the memory API first, so that the last request it
		// recorded is the front door's.
		direct := h.direct(rd.method, rd.path, rd.body, somaTenant)
		a := h.somaBrain(rd.method, rd.path, rd.body)
		path, query, _ := strings.Cut(rd.path, "?")
		// /health reports timings and a timestamp of its own each time.
		if a.status != direct.status || a.body != direct.body && path != "/health" {
			t.Errorf("%s %s: %d %s, want the memory API's answer unchanged: %d %s", rd.method, rd.path, a.status, a.body, direct.status, direct.body)
		}
		r, ok := h.rec.last(rd.method, path)
		switch {
		case !ok:
			t.Errorf("%s %s never reached the memory API", rd.method, rd.path)
		case r.authorization != "Bearer "+memoryToken || r.apiKey != "" || r.authTok != "":
			t.Errorf("%s %s reached the memory API with the caller's credentials: %+v", rd.method, rd.path, r)
		case r.query != query || r.body != rd.body || r.tenant != somaTenant:
			t.Errorf("%s %s reached the memory API as %+v", rd.method, rd.path, r)
		}
	}
	// The open health checks need no token, as at SFM; the others do.
	if a := h.somaBrain("GET", "/healthz", "", "Authorization", ""); a.status != 200 {
		t.Errorf("GET /healthz without a token: %d", a.status)
	}
	if a := h.somaBrain("GET", "/health", "", "Authorization", ""); a.status != 401 {
		t.Errorf("GET /health without a token: %d, want 401", a.status)
	}
	if a := h.somaBrain("PUT", "/memories/1,2,3", "{}"); a.status != 405 {
		t.Errorf("PUT /memories/1,2,3: %d, want 405", a.status)
	}
	if a := h.somaBrain("GET", "/admin/", ""); a.status != 404 || a.body != `{"detail": "Not Found"}` {
		t.Errorf("GET /admin/: %d %s, want 404: only SFM's API routes are served", a.status, a.body)
	}
}

// A body SFM would refuse gets SFM's answer and never enters the outbox.
func TestBodiesSFMRefusesNeverEnterTheOutbox(t *testing.T) {
	h := newHarness(t, options{})
	cases := []struct {
		name, method, path, body string
		headers                  []string
		status                   int
		want                     string // exact body; "~..." = the detail contains it
	}{
		{"store without coord", "POST", "/memories", `{"payload": {}}`, nil, 422,
			`{"detail": [{"type": "missing", "loc": ["body", "req", "coord"], "msg": "Field required"}]}`},
		{"store with wrong types", "POST", "/memories", `{"coord": 1, "payload": []}`, nil, 422,
			`{"detail": [{"type": "string_type", "loc": ["body", "req", "coord"], "msg": "Input should be a valid string"}, {"type": "dict_type", "loc": ["body", "req", "payload"], "msg": "Input should be a valid dictionary"}]}`},
		{"store of an unknown memory type", "POST", "/memories", `{"coord": "1,2,3", "payload": {}, "memory_type": "working"}`, nil, 422,
			`{"detail": [{"type": "literal_error", "loc": ["body", "req", "memory_type"], "msg": "Input should be 'episodic' or 'semantic'", "ctx": {"expected": "'episodic' or 'semantic'"}}]}`},
		{"store of a null memory type", "POST", "/memories", `{"coord": "1,2,3", "payload": {}, "memory_type": null}`, nil, 422,
			`{"detail": [{"type": "literal_error", "loc": ["body", "req", "memory_type"], "msg": "Input should be 'episodic' or 'semantic'", "ctx": {"expected": "'episodic' or 'semantic'"}}]}`},
		{"empty body", "POST", "/memories", ``, nil, 422,
			`{"detail": [{"type": "missing", "loc": ["body", "req"], "msg": "Field required"}]}`},
		{"body not an object", "POST", "/memories", `[1]`, nil, 422,
			`{"detail": [{"type": "model_type", "loc": ["body", "req"], "msg": "Input should be a valid dictionary or instance of MemoryStoreRequest", "ctx": {"class_name": "MemoryStoreRequest"}}]}`},
		{"body not JSON", "POST", "/memories", `{"coord": `, nil, 400, `{"detail": "Cannot parse request body"}`},
		{"empty coord", "POST", "/memories", `{"coord": " , ", "payload": {}}`, nil, 400, `{"detail": "Coordinate cannot be empty"}`},
		{"non-numeric coord", "POST", "/memories", `{"coord": "a,b,c", "payload": {}}`, nil, 400, `{"detail": "Invalid coordinate format: a,b,c"}`},
		{"two dimensions", "POST", "/memories", `{"coord": "1,2", "payload": {}}`, nil, 400, "~exactly three comma-separated finite decimal numbers, this one has 2"},
		{"four dimensions", "POST", "/memories", `{"coord": "1,2,3,4", "payload": {}}`, nil, 400, "~this one has 4"},
		{"infinite coordinate", "POST", "/memories", `{"coord": "1,2,inf", "payload": {}}`, nil, 400, "~finite decimal numbers"},
		{"link without to_coord", "POST", "/graph/link", `{"from_coord": "1,2,3"}`, nil, 422,
			`{"detail": [{"type": "missing", "loc": ["body", "req", "to_coord"], "msg": "Field required"}]}`},
		{"link with wrong types", "POST", "/graph/link", `{"from_coord": "1,2,3", "to_coord": "1,2,4", "link_type": 5, "strength": "strong", "metadata": []}`, nil, 422,
			`{"detail": [{"type": "string_type", "loc": ["body", "req", "link_type"], "msg": "Input should be a valid string"}, {"type": "float_parsing", "loc": ["body", "req", "strength"], "msg": "Input should be a valid number, unable to parse string as a number"}, {"type": "dict_type", "loc": ["body", "req", "metadata"], "msg": "Input should be a valid dictionary"}]}`},
		{"link with a null strength", "POST", "/graph/link", `{"from_coord": "1,2,3", "to_coord": "1,2,4", "strength": null}`, nil, 422,
			`{"detail": [{"type": "float_type", "loc": ["body", "req", "strength"], "msg": "Input should be a valid number"}]}`},
		{"link to a bad coord", "POST", "/graph/link", `{"from_coord": "1,2,3", "to_coord": "x"}`, nil, 400, `{"detail": "Invalid coordinate format: x"}`},
		{"delete of a bad coord", "DELETE", "/memories/x,y,z", ``, nil, 400, `{"detail": "Invalid coordinate format: x,y,z"}`},
		{"unknown write mode", "POST", "/memories", `{"coord": "1,2,3", "payload": {}}`, []string{"X-Soma-Write-Mode", "turbo"}, 400, "~X-Soma-Write-Mode"},
		{"namespace of another tenant", "POST", "/memories", `{"coord": "1,2,3", "payload": {}}`, []string{"X-Soma-Namespace", "somabrain_ns:globex"}, 400, "~names tenant"},
		{"request id too long", "POST", "/memories", `{"coord": "1,2,3", "payload": {}}`, []string{"X-Request-ID", strings.Repeat("r", 300)}, 400, "~request id"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			headers := append([]string{"X-Soma-Write-Mode", "fast_ack"}, c.headers...)
			a := h.somaBrain(c.method, c.path, c.body, headers...)
			ok := a.status == c.status
			if want, contains := strings.CutPrefix(c.want, "~"); contains {
				var d struct{ Detail string }
				ok = ok && json.Unmarshal([]byte(a.body), &d) == nil && strings.Contains(d.Detail, want)
			} else {
				ok = ok && a.body == c.want
			}
			if !ok {
				t.Errorf("got %d %s\nwant %d %s", a.status, a.body, c.status, c.want)
			}
		})
	}
	if n := h.outboxMessages(); n != 0 {
		t.Errorf("the outbox holds %d writes, want none", n)
	}
}

// Tokens: no or a wrong bearer token is 401; a token bound to a tenant
// writes and reads as that tenant only.
func TestTokens(t *testing.T) {
	h := newHarness(t, options{worker: true})
	body := `{"coord": "5,5,5", "payload": {}}`
	for _, c := range []struct {
		name    string
		headers []string
		status  int
	}{
		{"no token", []string{"Authorization", "", "X-API-Key", "", "X-Auth-Token", ""}, 401},
		{"wrong token", []string{"Authorization", "Bearer nope"}, 401},
		{"token only as X-API-Key", []string{"Authorization", ""}, 401},
		{"basic auth", []string{"Authorization", "Basic " + callerToken}, 401},
		{"tenant token, its tenant", []string{"Authorization", "Bearer " + acmeToken}, 200},
		{"tenant token, another tenant", []string{"Authorization", "Bearer " + acmeToken, "X-Soma-Tenant", "globex", "X-Soma-Namespace", "somabrain_ns:globex"}, 403},
		{"tenant token, another tenant's namespace", []string{"Authorization", "Bearer " + acmeToken, "X-Soma-Tenant", "", "X-Soma-Namespace", "somabrain_ns:globex"}, 403},
		{"service token, any tenant", []string{"X-Soma-Tenant", "globex", "X-Soma-Namespace", "somabrain_ns:globex"}, 200},
	} {
		a := h.somaBrain("POST", "/memories", body, append([]string{"X-Soma-Write-Mode", "fast_ack"}, c.headers...)...)
		if a.status != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, a.status, a.body, c.status)
		}
		if a.status == 401 && (a.body != `{"detail": "Unauthorized"}` || a.header.Get("WWW-Authenticate") == "") {
			t.Errorf("%s: 401 answer %s %v", c.name, a.body, a.header)
		}
	}
	// A bound token that names no tenant writes as its own.
	a := h.somaBrain("POST", "/memories", `{"coord": "6,6,6", "payload": {}}`,
		"Authorization", "Bearer "+acmeToken, "X-Soma-Tenant", "", "X-Soma-Namespace", "")
	if a.status != 200 {
		t.Fatalf("bound token without tenant headers: %d %s", a.status, a.body)
	}
	if _, ok := h.memory(somaTenant, "6,6,6"); !ok {
		t.Errorf("a sync write with a token bound to %s was not applied as %s", somaTenant, somaTenant)
	}
	if a := h.somaBrain("GET", "/memories/6,6,6", "", "Authorization", "Bearer "+acmeToken, "X-Soma-Tenant", "globex", "X-Soma-Namespace", ""); a.status != 403 {
		t.Errorf("read of another tenant with a bound token: %d, want 403", a.status)
	}
}

// A tenant over its quota is 429 with Retry-After; other tenants still write.
func TestTenantOverQuotaIs429(t *testing.T) {
	h := newHarness(t, options{adjustStreams: func(c *streams.Config) { c.TenantMaxPending = 2 }})
	for i := range 3 {
		a := h.somaBrain("POST", "/memories", fmt.Sprintf(`{"coord": "%d,0,0", "payload": {}}`, i), "X-Soma-Write-Mode", "fast_ack")
		switch {
		case i < 2 && a.status != 200:
			t.Fatalf("write %d: %d %s", i, a.status, a.body)
		case i == 2 && (a.status != 429 || a.header.Get("Retry-After") == ""):
			t.Fatalf("write over the quota: %d %s, Retry-After %q; want 429 with Retry-After", a.status, a.body, a.header.Get("Retry-After"))
		}
	}
	other := h.somaBrain("POST", "/memories", `{"coord": "0,0,0", "payload": {}}`, "X-Soma-Write-Mode", "fast_ack",
		"X-Soma-Tenant", "globex", "X-Soma-Namespace", "somabrain_ns:globex")
	if other.status != 200 {
		t.Errorf("another tenant's write: %d %s", other.status, other.body)
	}
}

// NATS down: 503 with Retry-After, in every mode that waits for the outbox.
func TestNATSDownIs503(t *testing.T) {
	h := newHarness(t, options{producer: producer.Config{PublishTimeout: 500 * time.Millisecond}})
	h.nats.Shutdown()
	h.nats.WaitForShutdown()
	for _, mode := range []string{"fast_ack", "sync"} {
		a := h.somaBrain("POST", "/memories", `{"coord": "1,2,3", "payload": {}}`, "X-Soma-Write-Mode", mode)
		if a.status != 503 || a.header.Get("Retry-After") == "" {
			t.Errorf("%s with NATS down: %d %s, Retry-After %q; want 503 with Retry-After", mode, a.status, a.body, a.header.Get("Retry-After"))
		}
	}
}

// Limits: a body too large is 413, a header block too large 431, and a
// front door with every slot busy 503 with Retry-After.
func TestLimits(t *testing.T) {
	h := newHarness(t, options{
		frontdoor: frontdoor.Config{MaxBodyBytes: 1024, MaxConcurrent: 1},
		server:    frontdoor.ServerConfig{MaxHeaderBytes: 4096},
		producer:  producer.Config{SyncTimeout: 3 * time.Second},
	})
	big := `{"coord": "1,2,3", "payload": {"text": "` + strings.Repeat("x", 2000) + `"}}`
	if a := h.somaBrain("POST", "/memories", big, "X-Soma-Write-Mode", "fast_ack"); a.status != 413 {
		t.Errorf("2 KB body over a 1 KB limit: %d %s, want 413", a.status, a.body)
	}
	if a := h.somaBrain("POST", "/memories", `{"coord": "1,2,3", "payload": {}}`, "X-Soma-Write-Mode", "fast_ack", "X-Padding", strings.Repeat("p", 16000)); a.status != 431 {
		t.Errorf("16 KB header over a 4 KB limit: %d, want 431", a.status)
	}
	if n := h.outboxMessages(); n != 0 {
		t.Errorf("the outbox holds %d writes, want none", n)
	}
	// No worker runs: a sync write holds the only slot until its timeout.
	held := make(chan answer)
	go func() { held <- h.somaBrain("POST", "/memories", `{"coord": "1,2,3", "payload": {}}`) }()
	waitFor(t, 5*time.Second, "the sync write stored", func() bool { return h.outboxMessages() == 1 })
	busy := h.somaBrain("POST", "/memories", `{"coord": "1,2,4", "payload": {}}`, "X-Soma-Write-Mode", "fast_ack")
	if busy.status != 503 || busy.header.Get("Retry-After") != "1" {
		t.Errorf("with every slot busy: %d %s, want 503 with Retry-After: 1", busy.status, busy.body)
	}
	// The sync write that timed out is durable: 202 with its sequence.
	q := <-held
	var queued struct {
		Coord          string `json:"coord"`
		Queued         bool   `json:"queued"`
		StreamSequence uint64 `json:"stream_sequence"`
	}
	if q.status != 202 || json.Unmarshal([]byte(q.body), &queued) != nil || !queued.Queued || queued.StreamSequence == 0 || queued.Coord != "1,2,3" {
		t.Errorf("sync write past its timeout: %d %s, want 202 queued with the stream sequence", q.status, q.body)
	}
}

// The memory API down for a while: every fast_ack write is answered 200,
// and once it is back every write is applied, none lost, none twice.
func TestMemoryAPIDownFastAckLosesNothing(t *testing.T) {
	h := newHarness(t, options{worker: true})
	h.rec.down.Store(true)
	const n = 40
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			a := h.somaBrain("POST", "/memories", fmt.Sprintf(`{"coord": "%d,1,1", "payload": {"i": %d}}`, i, i), "X-Soma-Write-Mode", "fast_ack")
			if a.status != 200 {
				t.Errorf("write %d while the memory API is down: %d %s", i, a.status, a.body)
			}
		})
	}
	wg.Wait()
	time.Sleep(time.Second) // the worker tries, and fails, meanwhile
	if _, ok := h.memory(somaTenant, "0,1,1"); ok {
		t.Fatal("applied while the memory API was down")
	}
	h.rec.down.Store(false)
	waitFor(t, 30*time.Second, "every write applied", func() bool {
		for i := range n {
			if _, ok := h.memory(somaTenant, fmt.Sprintf("%d,1,1", i)); !ok {
				return false
			}
		}
		return true
	})
	for i := range n {
		if ops := h.ops(somaTenant, fmt.Sprintf("%d,1,1", i)); !slices.Equal(ops, []string{"store"}) {
			t.Errorf("write %d applied as %v, want once", i, ops)
		}
	}
}

// Conformance: in sync mode the front door answers every write as the
// memory API does when called directly, status and body.
func TestSyncAnswersEqualTheMemoryAPIs(t *testing.T) {
	h := newHarness(t, options{worker: true})
	table := []struct{ method, path, body string }{
		{"POST", "/memories", `{"coord": "1,2,3", "payload": {"text": "a"}}`},
		{"POST", "/memories", `{"coord": "1.0, 2.0, 3.0", "payload": {"text": "b"}, "memory_type": "semantic"}`},
		{"POST", "/memories", `{"coord": "-0.5,1e-3,7", "payload": {"nested": {"x": [1, 2]}}, "memory_type": "episodic"}`},
		{"POST", "/graph/link", `{"from_coord": "1,2,3", "to_coord": "-0.5,1e-3,7"}`},
		{"POST", "/graph/link", `{"from_coord": "1,2,3", "to_coord": "-0.5,1e-3,7", "link_type": "causes", "strength": 0.25, "metadata": {"why": "x"}}`},
		{"POST", "/graph/link", `{"from_coord": "1,2,3", "to_coord": "4,5,6", "link_type": null, "weight": 3}`},
		{"DELETE", "/memories/1,2,3", ""},
		{"DELETE", "/memories/1,2,3", ""}, // already deleted
		{"DELETE", "/memories/9,9,9", ""}, // never stored
		{"POST", "/memories", `{"coord": "1,2,3", "payload": {"text": "back"}}`},
	}
	for _, c := range table {
		through := h.somaBrain(c.method, c.path, c.body, "X-Soma-Write-Mode", "sync")
		direct := h.direct(c.method, c.path, c.body, directTenant)
		if through.status != direct.status || through.body != direct.body {
			t.Errorf("%s %s %s\nfront door: %d %s\nmemory API: %d %s", c.method, c.path, c.body, through.status, through.body, direct.status, direct.body)
		}
	}
}

var updatedAt = regexp.MustCompile(`"updated_at":"[^"]*"`)

func withoutUpdatedAt(body string) string { return updatedAt.ReplaceAllString(body, `"updated_at":""`) }

// A method a route does not serve gets the router's answer, as SFM (Ninja)
// gives it and the development memory API too: 405, plain text, the
// route's methods in Allow.
func TestAMethodARouteDoesNotServeIs405AsSFMAnswersIt(t *testing.T) {
	h := newHarness(t, options{})
	for _, c := range []struct{ method, path, allow string }{
		{"PUT", "/memories", "POST"},
		{"GET", "/memories", "POST"},
		{"PATCH", "/memories/1,2,3", "DELETE, GET"},
		{"DELETE", "/memories/search", "GET, POST"},
		{"GET", "/graph/link", "POST"},
		{"POST", "/health", "GET"},
	} {
		got := h.somaBrain(c.method, c.path, "")
		want := h.direct(c.method, c.path, "", somaTenant)
		if got.status != 405 || got.body != "Method not allowed" || got.header.Get("Allow") != c.allow {
			t.Errorf("%s %s through the front door: %d %q, Allow %q; want 405 %q, Allow %q", c.method, c.path, got.status, got.body, got.header.Get("Allow"), "Method not allowed", c.allow)
		}
		if got.status != want.status || got.body != want.body || got.header.Get("Allow") != want.header.Get("Allow") || got.header.Get("Content-Type") != want.header.Get("Content-Type") {
			t.Errorf("%s %s: the front door answered %d %q (Allow %q, %s), the memory API %d %q (Allow %q, %s)", c.method, c.path,
				got.status, got.body, got.header.Get("Allow"), got.header.Get("Content-Type"), want.status, want.body, want.header.Get("Allow"), want.header.Get("Content-Type"))
		}
	}
}
