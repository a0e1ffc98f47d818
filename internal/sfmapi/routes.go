package sfmapi

import (
	"fmt"
	"strings"
)

// SFM's routes, all under the server root (no version prefix). There is
// no batch route: one call per write.
const (
	PathMemories     = "/memories"               // POST: store a memory (an upsert)
	PathMemoryPrefix = PathMemories + "/"        // followed by a coord: GET, DELETE (MemoryPath)
	PatternMemory    = PathMemories + "/{coord}" // PathMemoryPrefix as a net/http pattern, and a span's URL template
	PathSearch       = "/memories/search"        // GET (query) and POST (body): a read, though a POST
	PathLink         = "/graph/link"             // POST: link two coords (an upsert)
	PathNeighbors    = "/graph/neighbors"        // GET
	PathGraphPath    = "/graph/path"             // GET
	PathHealthz      = "/healthz"                // GET, no auth: 503 when a backend is down
	PathReadyz       = "/readyz"                 // GET, no auth: always 200
	PathHealthBasic  = "/health/basic"           // GET, no auth: always 200
	PathHealth       = "/health"                 // GET, bearer auth of its own: detailed status
	PathStats        = "/stats"                  // GET, no auth
	PathPing         = "/ping"                   // GET, no auth
)

// MemoryPath is the path of one memory, for DELETE and GET. Every byte of
// the coord other than A–Z a–z 0–9 and ",.-+_" is percent-encoded, so
// commas and signs stay readable.
func MemoryPath(coord string) string {
	var sb strings.Builder
	sb.WriteString(PathMemoryPrefix)
	for i := 0; i < len(coord); i++ {
		c := coord[i]
		if c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || strings.IndexByte(",.-+_", c) >= 0 {
			sb.WriteByte(c)
			continue
		}
		fmt.Fprintf(&sb, "%%%02X", c)
	}
	return sb.String()
}
