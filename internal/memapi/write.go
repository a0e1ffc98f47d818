package memapi

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"time"

	bolt "go.etcd.io/bbolt"
)

// answer is an HTTP status and JSON body, as sent and as stored for repeats.
type answer struct {
	status int
	body   []byte
}

func jsonAnswer(status int, v any) answer {
	body, err := json.Marshal(v)
	if err != nil {
		// Only our own response types are marshalled; they cannot fail.
		panic(err)
	}
	return answer{status: status, body: body}
}

func errorAnswer(status int, err error) answer {
	return jsonAnswer(status, errorBody{Error: err.Error()})
}

type errorBody struct {
	Error string `json:"error"`
}

// caller is what the request headers say about who writes.
type caller struct {
	tenant         string
	namespace      string
	requestID      string
	idempotencyKey string
}

// mutation is one validated write.
type mutation interface {
	// apply performs the write in the tenant's buckets and returns its answer.
	apply(b tenantBuckets, c caller) (answer, error)
	// historyOp is the history entry's op and the canonical coord it is filed
	// under; op is empty for a request that changes nothing.
	historyOp() (op, coord string)
}

// writeResult is what the HTTP layer sends back.
type writeResult struct {
	answer   answer
	replayed bool
}

// execute runs a mutation with its idempotency check, counters and history in
// one write transaction. Concurrent calls are batched into one fsync. Batch
// may run the function more than once, so it derives everything from the
// transaction and sets result only on the run that returns nil.
func (s *Store) execute(c caller, fp [sha256.Size]byte, m mutation) (writeResult, error) {
	var result writeResult
	err := s.db.Batch(func(tx *bolt.Tx) error {
		b, err := writeTenant(tx, c.tenant)
		if err != nil {
			return err
		}
		r, err := s.executeInTx(b, c, fp, m, time.Now())
		if err != nil {
			return err
		}
		result = r
		return nil
	})
	return result, err
}

func (s *Store) executeInTx(b tenantBuckets, c caller, fp [sha256.Size]byte, m mutation, now time.Time) (writeResult, error) {
	if c.idempotencyKey != "" {
		if rec, ok := s.lookupIdempotency(b.idempotency, c.idempotencyKey, now); ok {
			if rec.fingerprint != fp {
				return writeResult{answer: errorAnswer(http.StatusConflict, errIdempotencyConflict)},
					incrementCounter(b.stats, counterConflicts)
			}
			return writeResult{answer: rec.answer, replayed: true},
				incrementCounter(b.stats, counterSuppressed)
		}
	}
	ans, err := m.apply(b, c)
	if err != nil {
		return writeResult{}, err
	}
	if op, coord := m.historyOp(); op != "" {
		if err := incrementCounter(b.stats, counterApplied); err != nil {
			return writeResult{}, err
		}
		entry := HistoryEntry{Op: op, IdempotencyKey: c.idempotencyKey, RequestID: c.requestID, At: now.UTC()}
		if err := appendHistory(b.history, coord, entry); err != nil {
			return writeResult{}, err
		}
	}
	if c.idempotencyKey != "" && storable(ans.status) {
		rec := idempotencyRecord{at: now, fingerprint: fp, answer: ans}
		if err := b.idempotency.Put([]byte(c.idempotencyKey), rec.encode()); err != nil {
			return writeResult{}, err
		}
	}
	return writeResult{answer: ans}, nil
}

// storeMemory is POST /memories.
type storeMemory struct {
	canonical string
	memory    Memory
}

func (m storeMemory) apply(b tenantBuckets, c caller) (answer, error) {
	v, err := json.Marshal(storedMemory{Memory: m.memory, Namespace: c.namespace})
	if err != nil {
		return answer{}, err
	}
	if err := b.memories.Put([]byte(m.canonical), v); err != nil {
		return answer{}, err
	}
	return jsonAnswer(http.StatusOK, storeResponse{Coord: m.memory.Coord, MemoryType: m.memory.MemoryType}), nil
}

func (m storeMemory) historyOp() (string, string) { return "store", m.canonical }

type storeResponse struct {
	Coord      string `json:"coord"`
	MemoryType string `json:"memory_type"`
}

// deleteMemory is DELETE /memories/{coord}. Deleting a missing memory is
// still an applied write: deletes are idempotent.
type deleteMemory struct {
	canonical string
	coord     string
}

func (m deleteMemory) apply(b tenantBuckets, _ caller) (answer, error) {
	key := []byte(m.canonical)
	existed := b.memories.Get(key) != nil
	if existed {
		if err := b.memories.Delete(key); err != nil {
			return answer{}, err
		}
	}
	return jsonAnswer(http.StatusOK, deleteResponse{Coord: m.coord, Deleted: existed}), nil
}

func (m deleteMemory) historyOp() (string, string) { return "delete", m.canonical }

type deleteResponse struct {
	Coord   string `json:"coord"`
	Deleted bool   `json:"deleted"`
}

// linkMemories is POST /graph/link; a second link with the same ends and type
// replaces the first.
type linkMemories struct {
	fromCanonical, toCanonical string
	link                       storedLink
}

type storedLink struct {
	FromCoord string         `json:"from_coord"`
	ToCoord   string         `json:"to_coord"`
	LinkType  string         `json:"link_type"`
	Strength  float64        `json:"strength"`
	Metadata  map[string]any `json:"metadata,omitempty"`
	Namespace string         `json:"namespace,omitempty"`
}

func (m linkMemories) apply(b tenantBuckets, c caller) (answer, error) {
	link := m.link
	link.Namespace = c.namespace
	v, err := json.Marshal(link)
	if err != nil {
		return answer{}, err
	}
	if err := b.links.Put(linkKey(m.fromCanonical, m.toCanonical, link.LinkType), v); err != nil {
		return answer{}, err
	}
	return jsonAnswer(http.StatusOK, linkResponse{FromCoord: link.FromCoord, ToCoord: link.ToCoord, LinkType: link.LinkType, OK: true}), nil
}

func (m linkMemories) historyOp() (string, string) { return "link", m.fromCanonical }

// linkResponse is SomaFractalMemory's answer to a link.
type linkResponse struct {
	FromCoord string `json:"from_coord"`
	ToCoord   string `json:"to_coord"`
	LinkType  string `json:"link_type"`
	OK        bool   `json:"ok"`
}

func linkKey(from, to, linkType string) []byte {
	return bytes.Join([][]byte{[]byte(from), []byte(to), []byte(linkType)}, []byte{0})
}

// rejection is a request refused as invalid: nothing changes, but its answer
// is stored under its idempotency key like any other 4xx.
type rejection struct {
	answer answer
}

func (r rejection) apply(tenantBuckets, caller) (answer, error) { return r.answer, nil }

func (r rejection) historyOp() (string, string) { return "", "" }
