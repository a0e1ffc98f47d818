package memapi

import (
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/jetbox-dev/jetbox/internal/sfmapi"
)

// SFM's system routes: /healthz, /readyz, /health/basic, /health, /stats.

// backends is SFM's HealthResponse. The bbolt file serves as all three of
// SFM's stores (its search stands in for the vector store), so all three
// report the file's health.
type backends struct {
	KVStore     bool `json:"kv_store"`
	VectorStore bool `json:"vector_store"`
	GraphStore  bool `json:"graph_store"`
}

func (s *Store) checkBackends() backends {
	ok := s.db.View(func(tx *bolt.Tx) error { return nil }) == nil
	return backends{KVStore: ok, VectorStore: ok, GraphStore: ok}
}

// handleHealthz is the liveness probe: 503 when a backend is down.
func (s *Store) handleHealthz(w http.ResponseWriter, _ *http.Request) {
	b := s.checkBackends()
	if !b.KVStore || !b.VectorStore || !b.GraphStore {
		writeAnswer(w, detailAnswer(http.StatusServiceUnavailable, msgBackendUnhealthy))
		return
	}
	writeAnswer(w, jsonAnswer(http.StatusOK, b))
}

// handleHealthBasic is /readyz and /health/basic: always 200.
func (s *Store) handleHealthBasic(w http.ResponseWriter, _ *http.Request) {
	writeAnswer(w, jsonAnswer(http.StatusOK, s.checkBackends()))
}

// counts are live memories by type, and links.
type counts struct {
	total, episodic, semantic, links int
}

func countTenant(b tenantBuckets) (counts, error) {
	var c counts
	c.links = b.links.Stats().KeyN
	err := b.memories.ForEach(func(_, v []byte) error {
		m, live, err := decodeMemory(v)
		if err != nil || !live {
			return err
		}
		c.total++
		if m.MemoryType == memoryTypeSemantic {
			c.semantic++
		} else {
			c.episodic++
		}
		return nil
	})
	return c, err
}

// handleHealth is GET /health, behind SFM's own bearer check (its messages
// differ from the data routes'): status, backends, counts, tenants.
func (s *Store) handleHealth(w http.ResponseWriter, r *http.Request) {
	if s.opts.Token != "" {
		auth := r.Header.Get(sfmapi.HeaderAuthorization)
		token, isBearer := strings.CutPrefix(auth, "Bearer ")
		switch {
		case !isBearer:
			writeAnswer(w, detailAnswer(http.StatusUnauthorized, sfmapi.MsgMissingAuthHeader))
			return
		case !s.tokenMatches(token):
			writeAnswer(w, detailAnswer(http.StatusUnauthorized, sfmapi.MsgInvalidAPIToken))
			return
		}
	}
	type service struct {
		Name      string            `json:"name"`
		Healthy   bool              `json:"healthy"`
		LatencyMS float64           `json:"latency_ms"`
		Details   map[string]string `json:"details"`
	}
	type tenantCounts struct {
		Tenant        string `json:"tenant"`
		TotalMemories int    `json:"total_memories"`
		Episodic      int    `json:"episodic"`
		Semantic      int    `json:"semantic"`
		GraphLinks    int    `json:"graph_links"`
	}
	began := time.Now()
	var all counts
	tenants := []tenantCounts{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return forEachTenant(tx, func(tenant string, b tenantBuckets) error {
			c, err := countTenant(b)
			all.total, all.episodic, all.semantic, all.links = all.total+c.total, all.episodic+c.episodic, all.semantic+c.semantic, all.links+c.links
			if c.total > 0 {
				tenants = append(tenants, tenantCounts{tenant, c.total, c.episodic, c.semantic, c.links})
			}
			return err
		})
	})
	healthy := err == nil
	status := "healthy"
	if !healthy {
		status = "unhealthy"
	}
	host, _ := os.Hostname()
	writeAnswer(w, jsonAnswer(http.StatusOK, map[string]any{
		"healthy":        healthy,
		"status":         status,
		"version":        version,
		"uptime_seconds": time.Since(s.started).Round(time.Millisecond).Seconds(),
		"timestamp":      pyISOTime(time.Now()),
		"services": []service{{
			Name: "bbolt", Healthy: healthy, LatencyMS: float64(time.Since(began).Microseconds()) / 1000,
			Details: map[string]string{"database": filepath.Base(s.opts.Path)},
		}},
		"database": map[string]int{
			"total_memories": all.total, "episodic_memories": all.episodic, "semantic_memories": all.semantic,
			"total_graph_links": all.links, "total_namespaces": 1,
		},
		"tenants": tenants,
		"system":  map[string]any{"go_version": runtime.Version(), "platform": runtime.GOOS + "/" + runtime.GOARCH, "hostname": host, "process_id": os.Getpid()},
	}))
}

// handleStats is GET /stats, which SFM serves without auth: live memories
// of every tenant, by type.
func (s *Store) handleStats(w http.ResponseWriter, _ *http.Request) {
	var all counts
	err := s.db.View(func(tx *bolt.Tx) error {
		return forEachTenant(tx, func(_ string, b tenantBuckets) error {
			c, err := countTenant(b)
			all.total, all.episodic, all.semantic = all.total+c.total, all.episodic+c.episodic, all.semantic+c.semantic
			return err
		})
	})
	if err != nil {
		writeAnswer(w, detailAnswer(http.StatusServiceUnavailable, "stats backend unavailable"))
		return
	}
	writeAnswer(w, jsonAnswer(http.StatusOK, struct {
		TotalMemories int    `json:"total_memories"`
		Episodic      int    `json:"episodic"`
		Semantic      int    `json:"semantic"`
		Namespace     string `json:"namespace"`
	}{all.total, all.episodic, all.semantic, namespace}))
}
