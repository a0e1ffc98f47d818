package sfmconformance

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/jetbox-dev/jetbox/internal/sfmapi"
)

// groups is the table: what SFM answers, group by group. Within a group
// the steps run in order, each building on the ones before.
func groups(r *run) []group {
	p, _ := strconv.ParseFloat(r.prefix, 64)
	headerScoped := r.target.TokenTenant == "" // else every request lands in the token's tenant
	crossTenant := http.StatusOK
	if headerScoped {
		crossTenant = http.StatusNotFound
	}
	mem := func(coord string) string { return sfmapi.PathMemoryPrefix + url.PathEscape(coord) }
	store := func(coord, payload string) string {
		return fmt.Sprintf(`{"coord":%q,"payload":%s}`, coord, payload)
	}
	stored := func(coord, memoryType string) obj { return obj{"coord": coord, "memory_type": memoryType} }
	memory := func(coordinate list, payload any, memoryType string) obj {
		return obj{"memory": obj{
			"coordinate": coordinate, "payload": payload, "memory_type": memoryType,
			"metadata": obj{}, "importance": 0, "created_at": aString, "updated_at": aString,
		}}
	}
	deleted := func(coord string, was bool) obj { return obj{"coord": coord, "deleted": was} }
	notFound := detail("Memory not found")
	linked := func(from, to, linkType string) obj {
		return obj{"from_coord": from, "to_coord": to, "link_type": linkType, "ok": true}
	}
	neighbor := func(rest list, linkType string, strength float64) obj {
		return obj{"coordinate": append(list{p}, rest...), "link_type": linkType, "strength": strength}
	}
	query := func(path string, kv ...string) string {
		v := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return path + "?" + v.Encode()
	}
	hit := obj{"coordinate": aList, "payload": anObject, "memory_type": aString, "importance": aNumber}
	hits := func(coords ...list) any {
		if r.target.RanksByVectors {
			return obj{"memories": listOf(-1, anObject)}
		}
		out := list{}
		for _, c := range coords {
			h := obj{}
			for k, v := range hit {
				h[k] = v
			}
			h["coordinate"] = append(list{p}, c...)
			out = append(out, h)
		}
		return obj{"memories": out}
	}
	backends := obj{"kv_store": aBool, "vector_store": aBool, "graph_store": aBool}
	pathKey := func(rest string) string { return r.prefix + "," + rest } // SFM writes path coordinates with str(float)

	a, b, c := r.c("20,1"), r.c("20,2"), r.c("20,3")
	searchText := r.id

	return []group{
		{name: "store and get", steps: []step{
			{name: "store with defaults", method: "POST", path: sfmapi.PathMemories, body: store(r.c("1,1"), `{"text":"hello","n":1}`), status: 200, want: stored(r.c("1,1"), "episodic")},
			{name: "get a stored memory", method: "GET", path: mem(r.c("1,1")), status: 200, want: memory(list{p, 1, 1}, obj{"text": "hello", "n": 1}, "episodic")},
			{name: "store semantic", method: "POST", path: sfmapi.PathMemories, body: fmt.Sprintf(`{"coord":%q,"payload":{},"memory_type":"semantic"}`, r.c("1,2")), status: 200, want: stored(r.c("1,2"), "semantic")},
			{name: "get semantic", method: "GET", path: mem(r.c("1,2")), status: 200, want: memory(list{p, 1, 2}, obj{}, "semantic")},
			{name: "get an absent memory", method: "GET", path: mem(r.c("9,9")), status: 404, want: notFound},
			{name: "unknown fields are ignored", method: "POST", path: sfmapi.PathMemories, body: fmt.Sprintf(`{"coord":%q,"payload":{},"importance":5}`, r.c("1,3")), status: 200, want: stored(r.c("1,3"), "episodic")},
		}},
		{name: "upsert", steps: []step{
			{name: "first store", method: "POST", path: sfmapi.PathMemories, body: store(r.c("2,1"), `{"v":1}`), status: 200, want: stored(r.c("2,1"), "episodic")},
			{name: "store at the same point, spelled otherwise", method: "POST", path: sfmapi.PathMemories, body: fmt.Sprintf(`{"coord":%q,"payload":{"v":2},"memory_type":"semantic"}`, r.prefix+", 2.0 ,1e0"), status: 200, want: stored(r.prefix+", 2.0 ,1e0", "semantic")},
			{name: "one memory, the second store's", method: "GET", path: mem(r.c("2,1")), status: 200, want: memory(list{p, 2, 1}, obj{"v": 2}, "semantic")},
		}},
		{name: "soft delete and revival", steps: []step{
			{name: "store", method: "POST", path: sfmapi.PathMemories, body: store(r.c("3,1"), `{"v":1}`), status: 200},
			{name: "delete", method: "DELETE", path: mem(r.c("3,1")), status: 200, want: deleted(r.c("3,1"), true)},
			{name: "gone", method: "GET", path: mem(r.c("3,1")), status: 404, want: notFound},
			{name: "delete again", method: "DELETE", path: mem(r.c("3,1")), status: 200, want: deleted(r.c("3,1"), false)},
			{name: "a store brings it back", method: "POST", path: sfmapi.PathMemories, body: store(r.c("3,1"), `{"back":true}`), status: 200},
			{name: "back", method: "GET", path: mem(r.c("3,1")), status: 200, want: memory(list{p, 3, 1}, obj{"back": true}, "episodic")},
			{name: "delete a memory never stored", method: "DELETE", path: mem(r.c("3,9")), status: 200, want: deleted(r.c("3,9"), false)},
		}},
		{name: "coordinates", steps: []step{
			{otherCoords: true, name: "two numbers", method: "POST", path: sfmapi.PathMemories, body: store(r.c("4"), `{}`), status: 200, want: stored(r.c("4"), "episodic")},
			{otherCoords: true, name: "two numbers, read", method: "GET", path: mem(r.prefix + ",4.0"), status: 200, want: memory(list{p, 4}, obj{}, "episodic")},
			{otherCoords: true, name: "six numbers", method: "POST", path: sfmapi.PathMemories, body: store(r.c("5,1,2,3,4"), `{}`), status: 200},
			{otherCoords: true, name: "six numbers, spelled otherwise", method: "GET", path: mem(r.prefix + ", 5.0 ,1,2e0,3,4.000"), status: 200, want: memory(list{p, 5, 1, 2, 3, 4}, obj{}, "episodic")},
			{otherCoords: true, name: "1,2 is 1.0,2.0: delete", method: "DELETE", path: mem(r.prefix + ",5.0,1.0,2.0,3.0,4.0"), status: 200, want: deleted(r.prefix+",5.0,1.0,2.0,3.0,4.0", true)},
			{otherCoords: true, name: "blank parts are dropped", method: "POST", path: sfmapi.PathMemories, body: store(r.c(",6,"), `{}`), status: 200, want: stored(r.c(",6,"), "episodic")},
			{otherCoords: true, name: "blank parts are dropped, read", method: "GET", path: mem(r.c("6")), status: 200},
			{otherCoords: true, name: "Python's float() reads 1_0 as 10", method: "POST", path: sfmapi.PathMemories, body: store(r.c("1_0,7"), `{}`), status: 200},
			{otherCoords: true, name: "1_0 is 10", method: "GET", path: mem(r.c("10,7")), status: 200},
			{name: "not a number", method: "POST", path: sfmapi.PathMemories, body: store("abc", `{}`), status: 400, want: detail("Invalid coordinate format: abc")},
			{name: "empty", method: "POST", path: sfmapi.PathMemories, body: store("", `{}`), status: 400, want: detail("Coordinate cannot be empty")},
			{name: "only commas", method: "POST", path: sfmapi.PathMemories, body: store(" , ,", `{}`), status: 400, want: detail("Coordinate cannot be empty")},
			{name: "one bad part", method: "POST", path: sfmapi.PathMemories, body: store(r.c("1,x"), `{}`), status: 400, want: detail("Invalid coordinate format: " + r.c("1,x"))},
			{name: "get a bad coordinate", method: "GET", path: mem("abc"), status: 400, want: detail("Invalid coordinate format: abc")},
			{name: "delete a bad coordinate", method: "DELETE", path: mem("1,x"), status: 400, want: detail("Invalid coordinate format: 1,x")},
		}},
		{name: "schema failures", steps: []step{
			{name: "no payload", method: "POST", path: sfmapi.PathMemories, body: fmt.Sprintf(`{"coord":%q}`, r.c("8,1")), status: 422, want: validationError("payload")},
			{name: "payload an array", method: "POST", path: sfmapi.PathMemories, body: store(r.c("8,1"), `[1]`), status: 422, want: validationError("payload")},
			{name: "payload null", method: "POST", path: sfmapi.PathMemories, body: store(r.c("8,1"), `null`), status: 422, want: validationError("payload")},
			{name: "coord a number", method: "POST", path: sfmapi.PathMemories, body: `{"coord":1,"payload":{}}`, status: 422, want: validationError("coord")},
			{name: "no coord", method: "POST", path: sfmapi.PathMemories, body: `{"payload":{}}`, status: 422, want: validationError("coord")},
			{name: "unknown memory_type", method: "POST", path: sfmapi.PathMemories, body: fmt.Sprintf(`{"coord":%q,"payload":{},"memory_type":"dream"}`, r.c("8,1")), status: 422, want: validationError("memory_type")},
			{name: "memory_type null", method: "POST", path: sfmapi.PathMemories, body: fmt.Sprintf(`{"coord":%q,"payload":{},"memory_type":null}`, r.c("8,1")), status: 422, want: validationError("memory_type")},
			{name: "schema before coordinate", method: "POST", path: sfmapi.PathMemories, body: store("abc", `[]`), status: 422, want: validationError("payload")},
			{name: "empty body", method: "POST", path: sfmapi.PathMemories, status: 422, want: validationError("req")},
			{name: "body an array", method: "POST", path: sfmapi.PathMemories, body: `[]`, status: 422, want: validationError("req")},
			{name: "body not JSON", method: "POST", path: sfmapi.PathMemories, body: `coord=1,2,3`, status: 400, want: detail("Cannot parse request body")},
			{name: "nothing was stored", method: "GET", path: mem(r.c("8,1")), status: 404, want: notFound},
			{name: "link without to_coord", method: "POST", path: sfmapi.PathLink, body: fmt.Sprintf(`{"from_coord":%q}`, r.c("8,1")), status: 422, want: validationError("to_coord")},
			{name: "link strength not a number", method: "POST", path: sfmapi.PathLink, body: fmt.Sprintf(`{"from_coord":%q,"to_coord":%q,"strength":"x"}`, r.c("8,1"), r.c("8,2")), status: 422, want: validationError("strength")},
			{name: "link strength null", method: "POST", path: sfmapi.PathLink, body: fmt.Sprintf(`{"from_coord":%q,"to_coord":%q,"strength":null}`, r.c("8,1"), r.c("8,2")), status: 422, want: validationError("strength")},
			{name: "link metadata an array", method: "POST", path: sfmapi.PathLink, body: fmt.Sprintf(`{"from_coord":%q,"to_coord":%q,"metadata":[]}`, r.c("8,1"), r.c("8,2")), status: 422, want: validationError("metadata")},
			{name: "link bad coordinate", method: "POST", path: sfmapi.PathLink, body: fmt.Sprintf(`{"from_coord":"x","to_coord":%q}`, r.c("8,2")), status: 400, want: detail("Invalid coordinate format: x")},
			{name: "search without query", method: "POST", path: sfmapi.PathSearch, body: `{"top_k":3}`, status: 422, want: validationError("query")},
			{name: "search top_k a fraction", method: "POST", path: sfmapi.PathSearch, body: `{"query":"x","top_k":1.5}`, status: 422, want: validationError("top_k")},
			{name: "GET search without query", method: "GET", path: sfmapi.PathSearch, status: 422, want: validationError("query", "query")},
			{name: "GET search top_k not a number", method: "GET", path: query(sfmapi.PathSearch, "query", "x", "top_k", "abc"), status: 422, want: validationError("query", "top_k")},
			{name: "neighbors without coord", method: "GET", path: sfmapi.PathNeighbors, status: 422, want: validationError("query", "coord")},
			{name: "neighbors bad coordinate", method: "GET", path: query(sfmapi.PathNeighbors, "coord", "x"), status: 400, want: detail("Invalid coordinate format: x")},
			{name: "path without to_coord", method: "GET", path: query(sfmapi.PathGraphPath, "from_coord", a), status: 422, want: validationError("query", "to_coord")},
			{name: "path bad coordinate", method: "GET", path: query(sfmapi.PathGraphPath, "from_coord", a, "to_coord", "x"), status: 400, want: detail("Invalid coordinate format: x")},
		}},
		{name: "links and neighbors", steps: []step{
			{name: "link with defaults", method: "POST", path: sfmapi.PathLink, body: fmt.Sprintf(`{"from_coord":%q,"to_coord":%q}`, r.c("10,1"), r.c("10,2")), status: 200, want: linked(r.c("10,1"), r.c("10,2"), "related")},
			{name: "link_type null is related", method: "POST", path: sfmapi.PathLink, body: fmt.Sprintf(`{"from_coord":%q,"to_coord":%q,"link_type":null}`, r.c("10,1"), r.c("10,3")), status: 200, want: linked(r.c("10,1"), r.c("10,3"), "related")},
			{name: "strength 0", method: "POST", path: sfmapi.PathLink, body: fmt.Sprintf(`{"from_coord":%q,"to_coord":%q,"link_type":"next","strength":0}`, r.c("10,1"), r.c("10,4")), status: 200, want: linked(r.c("10,1"), r.c("10,4"), "next")},
			{name: "weight is not a field", method: "POST", path: sfmapi.PathLink, body: fmt.Sprintf(`{"from_coord":%q,"to_coord":%q,"link_type":"weighted","weight":0.25}`, r.c("10,1"), r.c("10,5")), status: 200, want: linked(r.c("10,1"), r.c("10,5"), "weighted")},
			{name: "metadata", method: "POST", path: sfmapi.PathLink, body: fmt.Sprintf(`{"from_coord":%q,"to_coord":%q,"link_type":"meta","metadata":{"why":"test"}}`, r.c("10,1"), r.c("10,6")), status: 200, want: linked(r.c("10,1"), r.c("10,6"), "meta")},
			{name: "neighbors, newest first", method: "GET", path: query(sfmapi.PathNeighbors, "coord", r.c("10,1")), status: 200, want: obj{"coord": r.c("10,1"), "neighbors": list{
				neighbor(list{10, 6}, "meta", 1), neighbor(list{10, 5}, "weighted", 1), neighbor(list{10, 4}, "next", 0),
				neighbor(list{10, 3}, "related", 1), neighbor(list{10, 2}, "related", 1),
			}}},
			{name: "neighbors of one link_type", method: "GET", path: query(sfmapi.PathNeighbors, "coord", r.c("10,1"), "link_type", "next"), status: 200, want: obj{"coord": r.c("10,1"), "neighbors": list{neighbor(list{10, 4}, "next", 0)}}},
			{name: "neighbors, limit and offset", method: "GET", path: query(sfmapi.PathNeighbors, "coord", r.c("10,1"), "limit", "2", "offset", "1"), status: 200, want: obj{"coord": r.c("10,1"), "neighbors": list{neighbor(list{10, 5}, "weighted", 1), neighbor(list{10, 4}, "next", 0)}}},
			{name: "link again: an upsert", method: "POST", path: sfmapi.PathLink, body: fmt.Sprintf(`{"from_coord":%q,"to_coord":%q,"link_type":"related","strength":0.5}`, r.prefix+",10.0,1.0", r.c("10,2")), status: 200},
			{name: "the upsert kept its place", method: "GET", path: query(sfmapi.PathNeighbors, "coord", r.c("10,1"), "link_type", "related"), status: 200, want: obj{"coord": r.c("10,1"), "neighbors": list{neighbor(list{10, 3}, "related", 1), neighbor(list{10, 2}, "related", 0.5)}}},
			{name: "no neighbors", method: "GET", path: query(sfmapi.PathNeighbors, "coord", r.c("10,9")), status: 200, want: obj{"coord": r.c("10,9"), "neighbors": list{}}},
		}},
		{name: "path", steps: []step{
			{name: "link a to b", method: "POST", path: sfmapi.PathLink, body: fmt.Sprintf(`{"from_coord":%q,"to_coord":%q}`, a, b), status: 200},
			{name: "link b to c", method: "POST", path: sfmapi.PathLink, body: fmt.Sprintf(`{"from_coord":%q,"to_coord":%q}`, b, c), status: 200},
			{name: "a to c", method: "GET", path: query(sfmapi.PathGraphPath, "from_coord", a, "to_coord", c), status: 200, want: obj{
				"from_coord": a, "to_coord": c, "path": list{pathKey("20.0,1.0"), pathKey("20.0,2.0"), pathKey("20.0,3.0")},
				"link_types": list{"related", "related"}, "found": true,
			}},
			{name: "max_length counts coordinates", method: "GET", path: query(sfmapi.PathGraphPath, "from_coord", a, "to_coord", c, "max_length", "2"), status: 200, want: obj{
				"from_coord": a, "to_coord": c, "path": list{}, "link_types": list{}, "found": false,
			}},
			{name: "link_types is the requested type", method: "GET", path: query(sfmapi.PathGraphPath, "from_coord", a, "to_coord", b, "link_type", "related"), status: 200, want: obj{
				"from_coord": a, "to_coord": b, "path": list{pathKey("20.0,1.0"), pathKey("20.0,2.0")}, "link_types": list{"related"}, "found": true,
			}},
			{name: "links of another type", method: "GET", path: query(sfmapi.PathGraphPath, "from_coord", a, "to_coord", c, "link_type", "next"), status: 200, want: obj{
				"from_coord": a, "to_coord": c, "path": list{}, "link_types": list{}, "found": false,
			}},
			{name: "links have a direction", method: "GET", path: query(sfmapi.PathGraphPath, "from_coord", c, "to_coord", a), status: 200, want: obj{
				"from_coord": c, "to_coord": a, "path": list{}, "link_types": list{}, "found": false,
			}},
			{name: "from itself", method: "GET", path: query(sfmapi.PathGraphPath, "from_coord", a, "to_coord", r.prefix+",20.0,1.0"), status: 200, want: obj{
				"from_coord": a, "to_coord": r.prefix + ",20.0,1.0", "path": list{pathKey("20.0,1.0")}, "link_types": list{}, "found": true,
			}},
		}},
		{name: "search", steps: []step{
			{name: "store text", method: "POST", path: sfmapi.PathMemories, body: store(r.c("30,1"), fmt.Sprintf(`{"text":%q}`, searchText)), status: 200},
			{name: "store content", method: "POST", path: sfmapi.PathMemories, body: store(r.c("30,2"), fmt.Sprintf(`{"content":%q,"kind":"b"}`, searchText)), status: 200},
			{name: "store other text", method: "POST", path: sfmapi.PathMemories, body: store(r.c("30,3"), fmt.Sprintf(`{"text":%q}`, searchText+"-other")), status: 200},
			{name: "GET search", method: "GET", path: query(sfmapi.PathSearch, "query", searchText), status: 200, want: hits(list{30, 2}, list{30, 1})},
			{name: "GET search, top_k", method: "GET", path: query(sfmapi.PathSearch, "query", searchText, "top_k", "1"), status: 200, want: hits(list{30, 2})},
			{name: "GET search, offset", method: "GET", path: query(sfmapi.PathSearch, "query", searchText, "offset", "1"), status: 200, want: hits(list{30, 1})},
			{name: "GET search, filters", method: "GET", path: query(sfmapi.PathSearch, "query", searchText, "filters", `{"kind":"b"}`), status: 200, want: hits(list{30, 2})},
			{name: "POST search", method: "POST", path: sfmapi.PathSearch, body: fmt.Sprintf(`{"query":%q}`, searchText), status: 200, want: hits(list{30, 2}, list{30, 1})},
			{name: "POST search, filters", method: "POST", path: sfmapi.PathSearch, body: fmt.Sprintf(`{"query":%q,"filters":{"kind":"b"},"top_k":5,"offset":0,"memory_type":"episodic"}`, searchText), status: 200, want: hits(list{30, 2})},
			{name: "delete one", method: "DELETE", path: mem(r.c("30,1")), status: 200},
			{name: "a deleted memory is not found", method: "POST", path: sfmapi.PathSearch, body: fmt.Sprintf(`{"query":%q}`, searchText), status: 200, want: hits(list{30, 2})},
		}},
		{name: "health", steps: []step{
			{name: "readyz", method: "GET", path: sfmapi.PathReadyz, auth: noToken, status: 200, want: backends},
			{name: "health/basic", method: "GET", path: sfmapi.PathHealthBasic, auth: noToken, status: 200, want: backends},
			{name: "health", method: "GET", path: sfmapi.PathHealth, status: 200, want: obj{
				"healthy": aBool, "status": aString, "version": aString, "uptime_seconds": aNumber, "timestamp": aString,
				"services": listOf(-1, obj{"name": aString, "healthy": aBool, "latency_ms": aNumber, "details": anObject}),
				"database": anObject, "tenants": aList, "system": anObject,
			}},
			{name: "health without a token", method: "GET", path: sfmapi.PathHealth, auth: noToken, status: 401, want: detail("Missing Authorization header")},
			{name: "health with a wrong token", method: "GET", path: sfmapi.PathHealth, auth: wrongToken, status: 401, want: detail("Invalid API token")},
			{name: "stats, without a token", method: "GET", path: sfmapi.PathStats, auth: noToken, status: 200, want: obj{"total_memories": aNumber, "episodic": aNumber, "semantic": aNumber, "namespace": aString}},
			{name: "ping", method: "GET", path: sfmapi.PathPing, auth: noToken, status: 200, want: obj{"ping": "pong"}},
		}},
		{name: "auth", steps: []step{
			{name: "store without a token", method: "POST", path: sfmapi.PathMemories, auth: noToken, body: store(r.c("40,1"), `{}`), status: 401, want: detail("Unauthorized")},
			{name: "store with a wrong token", method: "POST", path: sfmapi.PathMemories, auth: wrongToken, body: store(r.c("40,1"), `{}`), status: 401, want: detail("Unauthorized")},
			{name: "auth before the schema", method: "POST", path: sfmapi.PathMemories, auth: noToken, body: `[]`, status: 401, want: detail("Unauthorized")},
			{name: "nothing was stored", method: "GET", path: mem(r.c("40,1")), status: 404, want: notFound},
			{name: "get without a token", method: "GET", path: mem(r.c("1,1")), auth: noToken, status: 401, want: detail("Unauthorized")},
			{name: "delete without a token", method: "DELETE", path: mem(r.c("1,1")), auth: noToken, status: 401, want: detail("Unauthorized")},
			{name: "link without a token", method: "POST", path: sfmapi.PathLink, auth: noToken, body: fmt.Sprintf(`{"from_coord":%q,"to_coord":%q}`, a, b), status: 401, want: detail("Unauthorized")},
			{name: "search without a token", method: "POST", path: sfmapi.PathSearch, auth: noToken, body: `{"query":"x"}`, status: 401, want: detail("Unauthorized")},
			{name: "GET search with a wrong token", method: "GET", path: query(sfmapi.PathSearch, "query", "x"), auth: wrongToken, status: 401, want: detail("Unauthorized")},
			{name: "neighbors without a token", method: "GET", path: query(sfmapi.PathNeighbors, "coord", a), auth: noToken, status: 401, want: detail("Unauthorized")},
			{name: "path with a wrong token", method: "GET", path: query(sfmapi.PathGraphPath, "from_coord", a, "to_coord", b), auth: wrongToken, status: 401, want: detail("Unauthorized")},
			{name: "the scheme in any case", method: "GET", path: mem(r.c("1,1")), auth: lowerBearer, status: 200},
		}},
		{name: "tenants", steps: []step{
			{name: "store as tenant a", method: "POST", path: sfmapi.PathMemories, tenant: r.tenant("a"), body: store(r.c("50,1"), `{}`), status: 200},
			{name: "read as tenant a", method: "GET", path: mem(r.c("50,1")), tenant: r.tenant("a"), status: 200},
			{name: "read as tenant b", method: "GET", path: mem(r.c("50,1")), tenant: r.tenant("b"), status: crossTenant},
			{name: "store without a tenant", method: "POST", path: sfmapi.PathMemories, body: store(r.c("50,2"), `{}`), status: 200},
			{name: "no tenant is default", method: "GET", path: mem(r.c("50,2")), tenant: "default", status: 200},
			{name: "white space around the tenant", method: "GET", path: mem(r.c("50,1")), tenant: " " + r.tenant("a") + " ", status: 200},
			{name: "read another's as tenant a", method: "GET", path: mem(r.c("50,2")), tenant: r.tenant("a"), status: crossTenant},
			{name: "search sees only the tenant's", method: "POST", path: sfmapi.PathSearch, tenant: r.tenant("b"), body: fmt.Sprintf(`{"query":%q}`, searchText), status: 200, want: func() any {
				if headerScoped {
					return obj{"memories": list{}}
				}
				return obj{"memories": listOf(-1, anObject)}
			}()},
			{name: "neighbors see only the tenant's", method: "GET", path: query(sfmapi.PathNeighbors, "coord", a), tenant: r.tenant("b"), status: 200, want: func() any {
				if headerScoped {
					return obj{"coord": a, "neighbors": list{}}
				}
				return obj{"coord": a, "neighbors": listOf(1, anObject)}
			}()},
		}},
	}
}
