package memapi

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/jetbox-dev/jetbox/streams"
)

// SFM's memory routes: POST /memories, GET and DELETE /memories/{coord},
// GET and POST /memories/search.

const (
	memoryTypeEpisodic = streams.MemoryEpisodic
	memoryTypeSemantic = streams.MemorySemantic
)

// handleStore is POST /memories: an upsert by coordinate, which also brings
// a deleted memory back. Its creation time (and so its place in search
// results) is kept.
func (s *Store) handleStore(req *request) answer {
	f, bad := bodyFields(req.body, "MemoryStoreRequest")
	if bad != nil {
		return *bad
	}
	coordText := f.str("coord")
	payload := f.object("payload", true)
	memoryType := f.literal("memory_type", memoryTypeEpisodic, memoryTypeEpisodic, memoryTypeSemantic)
	if bad := f.failed(); bad != nil {
		return *bad
	}
	c, err := parseCoord(coordText)
	if err != nil {
		return coordAnswer(err)
	}
	if !c.storable() {
		return internalError(nil)
	}
	a, err := s.write(req.tenant, c.key, "store", req.caller, func(b tenantBuckets, now time.Time) (answer, error) {
		m, _, err := storedAt(b, c.key)
		if err != nil {
			return answer{}, err
		}
		if m == nil {
			seq, err := b.tenant.NextSequence()
			if err != nil {
				return answer{}, err
			}
			m = &storedMemory{Seq: seq, CreatedAt: now}
		}
		m.Payload, m.MemoryType, m.Deleted, m.UpdatedAt = payload, memoryType, false, now
		return jsonAnswer(http.StatusOK, map[string]string{"coord": coordText, "memory_type": memoryType}), putJSON(b.memories, c.key, m)
	})
	if err != nil {
		return internalError(err)
	}
	return a
}

// storedAt reads the memory at key, deleted or not; nil when there is none.
func storedAt(b tenantBuckets, key string) (*storedMemory, bool, error) {
	v := b.memories.Get([]byte(key))
	if v == nil {
		return nil, false, nil
	}
	return decodeMemory(v)
}

// decodeMemory reads a stored memory and whether it is live.
func decodeMemory(v []byte) (*storedMemory, bool, error) {
	var m storedMemory
	if err := json.Unmarshal(v, &m); err != nil {
		return nil, false, err
	}
	return &m, !m.Deleted, nil
}

func putJSON(b *bolt.Bucket, key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), raw)
}

// memoryView is a memory in SFM's answer to GET /memories/{coord}.
type memoryView struct {
	Coordinate []pyJSONFloat   `json:"coordinate"`
	Payload    json.RawMessage `json:"payload"`
	MemoryType string          `json:"memory_type"`
	Metadata   json.RawMessage `json:"metadata"`   // SFM's API never sets it: always {}
	Importance pyJSONFloat     `json:"importance"` // nor this: always 0.0
	CreatedAt  string          `json:"created_at"`
	UpdatedAt  string          `json:"updated_at"`
}

// pyCoordinate is the coordinate filed under key, as SFM writes it.
func pyCoordinate(key string) []pyJSONFloat {
	values := coordFromKey(key)
	out := make([]pyJSONFloat, len(values))
	for i, v := range values {
		out[i] = pyJSONFloat(v)
	}
	return out
}

// pyISOTime is Python's datetime.isoformat() of a UTC time.
func pyISOTime(t time.Time) string {
	t = t.UTC()
	if t.Nanosecond()/1000 == 0 {
		return t.Format("2006-01-02T15:04:05+00:00")
	}
	return t.Format("2006-01-02T15:04:05.000000+00:00")
}

// handleGet is GET /memories/{coord}. Like SFM's, a read touches the
// memory: its updated_at becomes the time of the read.
func (s *Store) handleGet(req *request) answer {
	c, err := parseCoord(req.http.PathValue("coord"))
	if err != nil {
		return coordAnswer(err)
	}
	var (
		view  memoryView
		found bool
	)
	err = s.db.Update(func(tx *bolt.Tx) error {
		b, ok := readTenant(tx, req.tenant)
		if !ok {
			return nil
		}
		m, live, err := storedAt(b, c.key)
		if err != nil || !live {
			return err
		}
		found = true
		m.UpdatedAt = time.Now()
		view = memoryView{
			Coordinate: pyCoordinate(c.key), Payload: m.Payload, MemoryType: m.MemoryType, Metadata: json.RawMessage(`{}`),
			CreatedAt: pyISOTime(m.CreatedAt), UpdatedAt: pyISOTime(m.UpdatedAt),
		}
		return putJSON(b.memories, c.key, m)
	})
	switch {
	case err != nil:
		return internalError(err)
	case !found:
		return detailAnswer(http.StatusNotFound, msgMemoryNotFound)
	}
	return jsonAnswer(http.StatusOK, map[string]memoryView{"memory": view})
}

// handleDelete is DELETE /memories/{coord}: a soft delete. deleted is true
// only when a live memory was there; deleting a missing memory is not an
// error.
func (s *Store) handleDelete(req *request) answer {
	coordText := req.http.PathValue("coord")
	c, err := parseCoord(coordText)
	if err != nil {
		return coordAnswer(err)
	}
	a, err := s.write(req.tenant, c.key, "delete", req.caller, func(b tenantBuckets, now time.Time) (answer, error) {
		m, live, err := storedAt(b, c.key)
		if err != nil {
			return answer{}, err
		}
		if live {
			m.Deleted, m.UpdatedAt = true, now
			if err := putJSON(b.memories, c.key, m); err != nil {
				return answer{}, err
			}
		}
		return jsonAnswer(http.StatusOK, struct {
			Coord   string `json:"coord"`
			Deleted bool   `json:"deleted"`
		}{coordText, live}), nil
	})
	if err != nil {
		return internalError(err)
	}
	return a
}

// search is a search request, from the query (GET) or the body (POST).
type search struct {
	query        string
	topK, offset int
	filters      map[string]any
}

// handleSearchQuery is GET /memories/search?query=&top_k=5&offset=0&filters=<JSON>.
// filters that are not a JSON object are ignored, as SFM ignores them.
func (s *Store) handleSearchQuery(req *request) answer {
	f := queryFields(req.http.URL.Query())
	q := search{query: f.str("query"), topK: f.integer("top_k", 5), offset: f.integer("offset", 0)}
	filters := f.optionalStr("filters")
	if bad := f.failed(); bad != nil {
		return *bad
	}
	if filters != nil {
		_ = json.Unmarshal([]byte(*filters), &q.filters)
	}
	return s.search(req.tenant, q)
}

// handleSearchBody is POST /memories/search, a read. SFM accepts
// memory_type here but does not pass it on, so it filters nothing.
func (s *Store) handleSearchBody(req *request) answer {
	f, bad := bodyFields(req.body, "MemorySearchRequest")
	if bad != nil {
		return *bad
	}
	q := search{query: f.str("query"), topK: f.integer("top_k", 5), offset: f.integer("offset", 0)}
	f.optionalStr("memory_type")
	filters := f.object("filters", false)
	if bad := f.failed(); bad != nil {
		return *bad
	}
	if filters != nil {
		_ = json.Unmarshal(filters, &q.filters)
	}
	return s.search(req.tenant, q)
}

// searchHit is one memory in a search answer.
type searchHit struct {
	Coordinate []pyJSONFloat   `json:"coordinate"`
	Payload    json.RawMessage `json:"payload"`
	MemoryType string          `json:"memory_type"`
	Importance pyJSONFloat     `json:"importance"`
}

// search is SFM's search without a vector store (its database fallback):
// live memories whose payload's "text", "content" or "summary" equals the
// query (every memory when the query is empty), whose payload matches each
// filter (a key, "a__b" for a nested one, and the JSON value it must
// equal), newest first, offset then top_k. SFM with Milvus configured ranks
// by vectors instead; see docs/CONFORMANCE.md.
func (s *Store) search(tenant string, q search) answer {
	if q.offset < 0 || q.offset+q.topK < 0 {
		return internalError(nil) // SFM's queryset refuses negative slices
	}
	type hit struct {
		seq  uint64
		view searchHit
	}
	var hits []hit
	err := s.db.View(func(tx *bolt.Tx) error {
		b, ok := readTenant(tx, tenant)
		if !ok {
			return nil
		}
		return b.memories.ForEach(func(k, v []byte) error {
			m, live, err := decodeMemory(v)
			if err != nil || !live || !matches(m.Payload, q) {
				return err
			}
			hits = append(hits, hit{seq: m.Seq, view: searchHit{Coordinate: pyCoordinate(string(k)), Payload: m.Payload, MemoryType: m.MemoryType}})
			return nil
		})
	})
	if err != nil {
		return internalError(err)
	}
	sort.Slice(hits, func(i, j int) bool { return hits[i].seq > hits[j].seq })
	found := []searchHit{}
	for i := q.offset; i < len(hits) && i < q.offset+q.topK; i++ {
		found = append(found, hits[i].view)
	}
	return jsonAnswer(http.StatusOK, map[string][]searchHit{"memories": found})
}

// matches applies the query and the filters to a payload.
func matches(payload json.RawMessage, q search) bool {
	var p map[string]any
	d := json.NewDecoder(bytes.NewReader(payload))
	d.UseNumber()
	if err := d.Decode(&p); err != nil {
		return false
	}
	if q.query != "" && p["text"] != q.query && p["content"] != q.query && p["summary"] != q.query {
		return false
	}
	for key, want := range q.filters {
		got, ok := any(p), true
		for part := range strings.SplitSeq(key, "__") {
			obj, isObj := got.(map[string]any)
			if !isObj {
				ok = false
				break
			}
			got, ok = obj[part]
			if !ok {
				break
			}
		}
		if !ok || !jsonEqual(got, want) {
			return false
		}
	}
	return true
}

// jsonEqual compares decoded JSON values, numbers by value.
func jsonEqual(a, b any) bool {
	na, aNum := number(a)
	nb, bNum := number(b)
	if aNum || bNum {
		return aNum && bNum && na == nb
	}
	switch a := a.(type) {
	case map[string]any:
		b, ok := b.(map[string]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for k, v := range a {
			if w, ok := b[k]; !ok || !jsonEqual(v, w) {
				return false
			}
		}
		return true
	case []any:
		b, ok := b.([]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for i := range a {
			if !jsonEqual(a[i], b[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}

func number(v any) (float64, bool) {
	switch v := v.(type) {
	case json.Number:
		f, err := v.Float64()
		return f, err == nil || math.IsInf(f, 0)
	case float64:
		return v, true
	}
	return 0, false
}
