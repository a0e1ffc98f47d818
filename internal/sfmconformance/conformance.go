// Package sfmconformance is one table of requests and the answers
// SomaFractalMemory (SFM) gives to them, derived from SFM's routes and
// schemas (somafractalmemory/api/), and the code that runs it against any
// server. jetbox's development memory API passes it (make test); so must a
// real SFM (make conformance SFM_URL=… SFM_TOKEN=…). docs/CONFORMANCE.md
// says what it covers and where the two may differ.
package sfmconformance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jetbox-dev/jetbox/internal/sfmapi"
)

// Target is the server under test.
type Target struct {
	URL   string // base URL, no trailing slash needed
	Token string // its bearer token (SFM's SOMA_API_TOKEN); required
	// TokenTenant is the tenant the token's auth context names. SFM in
	// standalone mode names "standalone", so X-Soma-Tenant is never read
	// and every request lands in one tenant. Empty when the context names
	// none, so X-Soma-Tenant, then "default", decides.
	TokenTenant string
	// ThreeNumberCoordinates is set for a server that takes only
	// coordinates of three decimal numbers, as jetbox's front door does
	// (SFM takes any number, and Python's float() spellings): the steps
	// that need other coordinates are skipped.
	ThreeNumberCoordinates bool
	// RanksByVectors is set for an SFM with a vector store (Milvus): its
	// search returns the nearest memories by hashed embeddings, not those
	// whose text equals the query, so only the answers' shapes are checked.
	RanksByVectors bool
}

// StandaloneTenant is the tenant SFM's standalone token names.
const StandaloneTenant = "standalone"

// Run runs the suite against an SFM in standalone mode (or a server that
// answers as one) at baseURL.
func Run(t *testing.T, baseURL, token string) {
	RunTarget(t, Target{URL: baseURL, Token: token, TokenTenant: StandaloneTenant})
}

// RunTarget runs the suite against target. Every memory it writes has a
// coordinate starting with a number drawn for the run, so runs do not see
// each other's memories; it writes to the server for real, so point it at
// a test instance.
func RunTarget(t *testing.T, target Target) {
	t.Helper()
	if target.Token == "" {
		t.Fatal("sfmconformance: the server's bearer token is required (SFM refuses to start without one)")
	}
	target.URL = strings.TrimRight(target.URL, "/")
	r := newRun(target)
	t.Run("healthz", r.healthz)
	for _, g := range groups(r) {
		t.Run(g.name, func(t *testing.T) {
			for _, s := range g.steps {
				r.do(t, s)
			}
		})
	}
}

// auth is how a step authenticates.
type auth int

const (
	withToken   auth = iota // Authorization: Bearer <token>
	noToken                 // no Authorization header
	wrongToken              // Authorization: Bearer <token>x
	lowerBearer             // Authorization: bearer <token>
)

// step is one request and the answer SFM gives to it.
type step struct {
	name   string
	method string
	path   string // with its query
	auth   auth
	tenant string // X-Soma-Tenant; empty = not sent
	body   string
	status int
	want   any // the body (see match.go); nil = not checked
	// otherCoords marks a step whose coordinate is not three decimal
	// numbers (Target.ThreeNumberCoordinates).
	otherCoords bool
}

type group struct {
	name  string
	steps []step
}

// run holds what one run of the suite draws: a coordinate prefix and
// tenant names nobody else uses.
type run struct {
	target Target
	client *http.Client
	prefix string // a number in (0.1, 0.9) with six decimals, the first part of every coordinate
	id     string
}

func newRun(target Target) *run {
	n := 100000 + rand.IntN(800000)
	if n%10 == 0 {
		n++ // Python's str() drops a trailing zero: the prefix must read back as written
	}
	return &run{
		target: target,
		client: &http.Client{Timeout: 30 * time.Second},
		prefix: fmt.Sprintf("0.%06d", n),
		id:     fmt.Sprintf("conformance-%06d-%d", n, time.Now().UnixNano()%1e6),
	}
}

// c is a coordinate of this run: the prefix, then the other parts.
func (r *run) c(rest string) string { return r.prefix + "," + rest }

// tenant is a tenant name of this run.
func (r *run) tenant(name string) string { return r.id + "-" + name }

func (r *run) do(t *testing.T, s step) {
	if s.otherCoords && r.target.ThreeNumberCoordinates {
		t.Logf("%s: skipped, the server takes three-number coordinates only", s.name)
		return
	}
	t.Helper()
	req, err := http.NewRequest(s.method, r.target.URL+s.path, strings.NewReader(s.body))
	if err != nil {
		t.Fatalf("%s: %v", s.name, err)
	}
	if s.body != "" {
		req.Header.Set(sfmapi.HeaderContentType, sfmapi.ContentTypeJSON)
	}
	switch s.auth {
	case withToken:
		req.Header.Set(sfmapi.HeaderAuthorization, "Bearer "+r.target.Token)
	case wrongToken:
		req.Header.Set(sfmapi.HeaderAuthorization, "Bearer "+r.target.Token+"x")
	case lowerBearer:
		req.Header.Set(sfmapi.HeaderAuthorization, "bearer "+r.target.Token)
	}
	if s.tenant != "" {
		req.Header.Set(sfmapi.HeaderTenant, s.tenant)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		t.Fatalf("%s: %s %s: %v", s.name, s.method, s.path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatalf("%s: read the answer: %v", s.name, err)
	}
	if resp.StatusCode != s.status {
		t.Errorf("%s: %s %s answered %d, want %d: %s", s.name, s.method, s.path, resp.StatusCode, s.status, clip(raw))
		return
	}
	if s.want == nil {
		return
	}
	var got any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&got); err != nil {
		t.Errorf("%s: %s %s: the answer is not JSON (%v): %s", s.name, s.method, s.path, err, clip(raw))
		return
	}
	if err := match(got, s.want); err != nil {
		t.Errorf("%s: %s %s: %v", s.name, s.method, s.path, err)
	}
}

func clip(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}

// healthz checks GET /healthz against what /readyz says of the backends:
// 200 with the same body when all are up, else 503. (SFM without a vector
// store reports vector_store false, so its /healthz answers 503.)
func (r *run) healthz(t *testing.T) {
	resp, err := r.client.Get(r.target.URL + sfmapi.PathReadyz)
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	var b struct{ KVStore, VectorStore, GraphStore bool }
	err = json.NewDecoder(resp.Body).Decode(&struct {
		KV     *bool `json:"kv_store"`
		Vector *bool `json:"vector_store"`
		Graph  *bool `json:"graph_store"`
	}{&b.KVStore, &b.VectorStore, &b.GraphStore})
	resp.Body.Close()
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	if b.KVStore && b.VectorStore && b.GraphStore {
		r.do(t, step{name: "healthz, all backends up", method: "GET", path: sfmapi.PathHealthz, auth: noToken, status: 200,
			want: obj{"kv_store": true, "vector_store": true, "graph_store": true}})
		return
	}
	r.do(t, step{name: "healthz, a backend down", method: "GET", path: sfmapi.PathHealthz, auth: noToken, status: 503, want: detail("System backend is unhealthy")})
}
