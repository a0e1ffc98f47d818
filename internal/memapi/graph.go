package memapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"

	"github.com/jetbox-dev/jetbox/internal/pyfloat"
	"github.com/jetbox-dev/jetbox/internal/sfmapi"
)

// SFM's graph routes: POST /graph/link, GET /graph/neighbors, GET /graph/path.

const maxLinkTypeChars = 100 // SFM's link_type column

// handleLink is POST /graph/link: an upsert by (from, to, link_type). A
// link needs no memory at either end. Unknown fields (weight among them)
// are ignored, as pydantic ignores them.
func (s *Store) handleLink(req *request) answer {
	f, bad := bodyFields(req.body, "GraphLinkRequest")
	if bad != nil {
		return *bad
	}
	fromText, toText := f.str("from_coord"), f.str("to_coord")
	linkType := f.optionalStr("link_type")
	strength := f.float("strength", sfmapi.DefaultLinkStrength)
	metadata := f.object("metadata", false)
	if bad := f.failed(); bad != nil {
		return *bad
	}
	from, err := parseCoord(fromText)
	if err != nil {
		return coordAnswer(err)
	}
	to, err := parseCoord(toText)
	if err != nil {
		return coordAnswer(err)
	}
	lt := sfmapi.DefaultLinkType
	if linkType != nil && *linkType != "" {
		lt = *linkType
	}
	if !from.storable() || !to.storable() || utf8.RuneCountInString(lt) > maxLinkTypeChars {
		return detailAnswer(http.StatusInternalServerError, msgGraphLinkFailed)
	}
	if bytes.Equal(metadata, []byte("{}")) {
		metadata = nil
	}
	a, err := s.write(req.tenant, from.key, "link", req.caller, func(b tenantBuckets, now time.Time) (answer, error) {
		key := linkKey(from.key, to.key, lt)
		link := storedLink{CreatedAt: now}
		if v := b.links.Get(key); v != nil {
			if err := json.Unmarshal(v, &link); err != nil {
				return answer{}, err
			}
		} else {
			seq, err := b.tenant.NextSequence()
			if err != nil {
				return answer{}, err
			}
			link.Seq = seq
		}
		link.Strength, link.Metadata = string(pyfloat.Append(nil, strength)), metadata
		if err := putJSON(b.links, string(key), link); err != nil {
			return answer{}, err
		}
		return jsonAnswer(http.StatusOK, struct {
			FromCoord string `json:"from_coord"`
			ToCoord   string `json:"to_coord"`
			LinkType  string `json:"link_type"`
			OK        bool   `json:"ok"`
		}{fromText, toText, lt, true}), nil
	})
	if err != nil {
		return detailAnswer(http.StatusInternalServerError, msgGraphLinkFailed)
	}
	return a
}

func linkKey(from, to, linkType string) []byte {
	return []byte(from + "\x00" + to + "\x00" + linkType)
}

// edge is a stored link, read back.
type edge struct {
	to, linkType string
	strength     float64
	seq          uint64
}

// edgesFrom returns the tenant's links from key (every link when key is
// empty), of linkType when it is not empty.
func edgesFrom(b tenantBuckets, key, linkType string) (map[string][]edge, error) {
	out := map[string][]edge{}
	cur := b.links.Cursor()
	prefix := []byte(key)
	if key != "" {
		prefix = append(prefix, 0)
	}
	for k, v := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = cur.Next() {
		parts := strings.SplitN(string(k), "\x00", 3)
		if linkType != "" && parts[2] != linkType {
			continue
		}
		var l storedLink
		if err := json.Unmarshal(v, &l); err != nil {
			return nil, err
		}
		strength, _ := pyfloat.Parse(l.Strength)
		out[parts[0]] = append(out[parts[0]], edge{to: parts[1], linkType: parts[2], strength: strength, seq: l.Seq})
	}
	return out, nil
}

// handleNeighbors is GET /graph/neighbors?coord=&k_hop=1&limit=10&offset=0&link_type=:
// the links from coord, newest first. SFM accepts k_hop but follows one
// hop only, and does not return link metadata.
func (s *Store) handleNeighbors(req *request) answer {
	f := queryFields(req.http.URL.Query())
	coordText := f.str("coord")
	f.integer("k_hop", 1)
	limit, offset := f.integer("limit", 10), f.integer("offset", 0)
	linkType := f.optionalStr("link_type")
	if bad := f.failed(); bad != nil {
		return *bad
	}
	c, err := parseCoord(coordText)
	if err != nil {
		return coordAnswer(err)
	}
	if offset < 0 || offset+limit < 0 {
		return detailAnswer(http.StatusInternalServerError, msgNeighborsFailed)
	}
	type neighbor struct {
		Coordinate []pyJSONFloat `json:"coordinate"`
		LinkType   string        `json:"link_type"`
		Strength   pyJSONFloat   `json:"strength"`
	}
	var edges []edge
	err = s.db.View(func(tx *bolt.Tx) error {
		b, ok := readTenant(tx, req.tenant)
		if !ok {
			return nil
		}
		byFrom, err := edgesFrom(b, c.key, deref(linkType))
		edges = byFrom[c.key]
		return err
	})
	if err != nil {
		return detailAnswer(http.StatusInternalServerError, msgNeighborsFailed)
	}
	sort.Slice(edges, func(i, j int) bool { return edges[i].seq > edges[j].seq })
	neighbors := []neighbor{}
	for i := offset; i < len(edges) && i < offset+limit; i++ {
		neighbors = append(neighbors, neighbor{Coordinate: pyCoordinate(edges[i].to), LinkType: edges[i].linkType, Strength: pyJSONFloat(edges[i].strength)})
	}
	return jsonAnswer(http.StatusOK, struct {
		Coord     string     `json:"coord"`
		Neighbors []neighbor `json:"neighbors"`
	}{coordText, neighbors})
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// handlePath is GET /graph/path?from_coord=&to_coord=&max_length=10&link_type=:
// the shortest path along links (of link_type, when given) with at most
// max_length coordinates. SFM reports link_types as the requested type (or
// "related") for every step, whatever the links' own types.
func (s *Store) handlePath(req *request) answer {
	f := queryFields(req.http.URL.Query())
	fromText, toText := f.str("from_coord"), f.str("to_coord")
	maxLength := f.integer("max_length", 10)
	linkType := f.optionalStr("link_type")
	if bad := f.failed(); bad != nil {
		return *bad
	}
	from, err := parseCoord(fromText)
	if err != nil {
		return coordAnswer(err)
	}
	to, err := parseCoord(toText)
	if err != nil {
		return coordAnswer(err)
	}
	var path []string
	if from.key == to.key {
		path = []string{from.key}
	} else {
		err = s.db.View(func(tx *bolt.Tx) error {
			b, ok := readTenant(tx, req.tenant)
			if !ok {
				return nil
			}
			edges, err := edgesFrom(b, "", deref(linkType))
			path = shortestPath(edges, from.key, to.key, maxLength-1)
			return err
		})
	}
	answer := struct {
		FromCoord string   `json:"from_coord"`
		ToCoord   string   `json:"to_coord"`
		Path      []string `json:"path"`
		LinkTypes []string `json:"link_types"`
		Found     bool     `json:"found"`
	}{FromCoord: fromText, ToCoord: toText, Path: []string{}, LinkTypes: []string{}}
	if err == nil && len(path) > 0 && len(path) <= maxLength { // SFM answers a failed search as not found
		lt := sfmapi.DefaultLinkType
		if linkType != nil && *linkType != "" {
			lt = *linkType
		}
		answer.Path, answer.Found = path, true
		for range path[1:] {
			answer.LinkTypes = append(answer.LinkTypes, lt)
		}
	}
	return jsonAnswer(http.StatusOK, answer)
}

// shortestPath is a breadth-first search from one key to another over at
// most maxSteps links; nil when there is none.
func shortestPath(edges map[string][]edge, from, to string, maxSteps int) []string {
	prev := map[string]string{from: ""}
	frontier := []string{from}
	for step := 0; step < maxSteps && len(frontier) > 0; step++ {
		var next []string
		for _, node := range frontier {
			out := edges[node]
			sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
			for _, e := range out {
				if _, seen := prev[e.to]; seen {
					continue
				}
				prev[e.to] = node
				if e.to == to {
					path := []string{to}
					for n := node; n != from; n = prev[n] {
						path = append(path, n)
					}
					path = append(path, from)
					for i, j := 0, len(path)-1; i < j; i, j = i+1, j-1 {
						path[i], path[j] = path[j], path[i]
					}
					return path
				}
				next = append(next, e.to)
			}
		}
		frontier = next
	}
	return nil
}
