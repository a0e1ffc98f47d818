// Package memapi is the development memory API: a persistent stand-in for
// SomaFractalMemory (SFM) that jetbox runs when no endpoint is configured and
// that the project's tests run against. It answers SFM's routes as SFM does
// (internal/sfmconformance is the proof), and it keeps, beside the
// memories, a record of every write it applied (History, Stats,
// TenantStats) that tests read to check what reached the memory API, in
// which order and how often. That record never changes an answer.
//
// Everything lives in one bbolt file. A write, its history entry and its
// counters are committed in one transaction, so a crash or restart never
// separates them.
package memapi

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Options configures a Store.
type Options struct {
	Path          string // bbolt file path (created with parent dirs)
	Token         string // bearer token; empty = no auth (SFM refuses to start without one)
	AllowInsecure bool   // Listen may go beyond loopback without a Token (SOMABRAIN_OUTBOX_ALLOW_INSECURE)
	// TokenTenant is the tenant the bearer token's auth context names. SFM
	// in standalone mode names "standalone": every request lands in that
	// one tenant and X-Soma-Tenant is never read. Empty (jetbox's default)
	// names none, so the X-Soma-Tenant header, then "default", decides, as
	// SFM does for a context without a tenant; that keeps tenants apart.
	TokenTenant string
	Delay       time.Duration // artificial latency added to every data request (for scale tests); 0 = none
	// Fail, when set, makes every data request of a tenant for which it
	// returns true fail with 503 and a JSON error body, without Retry-After
	// and without touching the store (for failure scenarios); nil = never.
	Fail func(tenant string) bool
}

// Store is the persistent state of the memory API.
type Store struct {
	db      *bolt.DB
	opts    Options
	started time.Time
}

// Stats holds the counters of every tenant that has written.
type Stats struct {
	Tenants map[string]TenantStats `json:"tenants"`
}

// TenantStats counts one tenant's applied writes. SFM reads no idempotency
// key: a write that reaches it twice is applied twice (stores are upserts).
// Repeated counts those second applications, so "each write applied once"
// is Applied == n and Repeated == 0.
type TenantStats struct {
	Applied  uint64 `json:"applied"`  // writes applied (store, delete, link), repeats included
	Repeated uint64 `json:"repeated"` // applied writes whose X-Idempotency-Key an earlier applied write of the tenant carried
}

// Distinct is the number of different writes applied.
func (ts TenantStats) Distinct() uint64 { return ts.Applied - ts.Repeated }

// HistoryEntry is one applied write to a coord, with the jetbox headers it
// carried (SFM ignores them; they are kept to tell writes apart).
type HistoryEntry struct {
	Op             string    `json:"op"` // "store" | "delete" | "link"
	IdempotencyKey string    `json:"idempotency_key"`
	RequestID      string    `json:"request_id"`
	At             time.Time `json:"at"`
}

// Memory is a live (not deleted) memory, as Get returns it.
type Memory struct {
	Coordinate []float64
	Payload    json.RawMessage
	MemoryType string
}

// storedMemory is a memory as the file holds it. A delete only marks it,
// as SFM's soft delete does; a later store brings it back.
type storedMemory struct {
	Payload    json.RawMessage `json:"payload"`
	MemoryType string          `json:"memory_type"`
	Deleted    bool            `json:"deleted,omitempty"`
	Seq        uint64          `json:"seq"` // creation order, kept by upserts
	CreatedAt  time.Time       `json:"created_at"`
	UpdatedAt  time.Time       `json:"updated_at"`
}

// storedLink is a link as the file holds it, under from \0 to \0 link_type.
type storedLink struct {
	Strength  string          `json:"strength"` // Python repr, so nan and inf survive JSON
	Metadata  json.RawMessage `json:"metadata,omitempty"`
	Seq       uint64          `json:"seq"` // creation order, kept by upserts
	CreatedAt time.Time       `json:"created_at"`
}

// Bucket layout: sfm/t<tenant>/{memories,links,history,keys,counters}. The
// "t" prefix lets the empty tenant (an X-Soma-Tenant of white space) have a
// bucket, as SFM lets it have rows.
var (
	bucketRoot     = []byte("sfm")
	bucketMemories = []byte("memories") // coord key -> storedMemory JSON
	bucketLinks    = []byte("links")    // linkKey -> storedLink JSON
	bucketHistory  = []byte("history")  // coord key \x00 seq -> HistoryEntry JSON
	bucketKeys     = []byte("keys")     // sha256(idempotency key) -> 1, for Repeated
	bucketCounters = []byte("counters") // counter name -> uint64

	counterApplied  = []byte("applied")
	counterRepeated = []byte("repeated")
)

// tenantBuckets are one tenant's buckets inside a transaction.
type tenantBuckets struct {
	tenant                                   *bolt.Bucket
	memories, links, history, keys, counters *bolt.Bucket
}

// Open opens or creates the store at opts.Path.
func Open(opts Options) (*Store, error) {
	if opts.Path == "" {
		return nil, errors.New("memapi: Options.Path is empty")
	}
	if err := os.MkdirAll(filepath.Dir(opts.Path), 0o755); err != nil {
		return nil, fmt.Errorf("memapi: create directory for %s: %w", opts.Path, err)
	}
	// The timeout turns a second process on the same file into an error
	// instead of a hang on the file lock.
	db, err := bolt.Open(opts.Path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("memapi: open %s: %w", opts.Path, err)
	}
	// bbolt waits up to 10 ms by default to gather a batch: a 10 ms floor
	// under every write. 1 ms still gathers the concurrent writes of a busy
	// worker into one fsync.
	db.MaxBatchDelay = time.Millisecond
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketRoot)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("memapi: initialise %s: %w", opts.Path, err)
	}
	return &Store{db: db, opts: opts, started: time.Now()}, nil
}

// Close closes the file.
func (s *Store) Close() error {
	return s.db.Close()
}

// Get returns the tenant's live memory at coord, without touching it the
// way an HTTP GET does.
func (s *Store) Get(tenant, coordText string) (Memory, bool, error) {
	c, err := parseCoord(coordText)
	if err != nil {
		return Memory{}, false, fmt.Errorf("memapi: get %q: %w", coordText, err)
	}
	var (
		m     storedMemory
		found bool
	)
	err = s.db.View(func(tx *bolt.Tx) error {
		b, ok := readTenant(tx, tenant)
		if !ok {
			return nil
		}
		stored, live, err := storedAt(b, c.key)
		if live {
			m, found = *stored, true
		}
		return err
	})
	if err != nil || !found {
		return Memory{}, false, err
	}
	return Memory{Coordinate: c.values, Payload: m.Payload, MemoryType: m.MemoryType}, true, nil
}

// History returns every applied write to the tenant's coord, in apply order.
// A link is filed under its from_coord. An invalid coord has no history.
func (s *Store) History(tenant, coordText string) []HistoryEntry {
	c, err := parseCoord(coordText)
	if err != nil {
		return nil
	}
	var entries []HistoryEntry
	prefix := historyPrefix(c.key)
	_ = s.db.View(func(tx *bolt.Tx) error {
		b, ok := readTenant(tx, tenant)
		if !ok {
			return nil
		}
		cur := b.history.Cursor()
		for k, v := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = cur.Next() {
			var e HistoryEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return err
			}
			entries = append(entries, e)
		}
		return nil
	})
	return entries
}

// Stats returns the counters of every tenant.
func (s *Store) Stats() Stats {
	stats := Stats{Tenants: map[string]TenantStats{}}
	_ = s.db.View(func(tx *bolt.Tx) error {
		return forEachTenant(tx, func(tenant string, b tenantBuckets) error {
			stats.Tenants[tenant] = readCounters(b.counters)
			return nil
		})
	})
	return stats
}

// TenantStats returns one tenant's counters (zero for an unknown tenant).
func (s *Store) TenantStats(tenant string) TenantStats {
	var ts TenantStats
	_ = s.db.View(func(tx *bolt.Tx) error {
		if b, ok := readTenant(tx, tenant); ok {
			ts = readCounters(b.counters)
		}
		return nil
	})
	return ts
}

func tenantBucketName(tenant string) []byte { return append([]byte{'t'}, tenant...) }

// readTenant returns the tenant's buckets in a read transaction; ok is false
// for a tenant that has never written.
func readTenant(tx *bolt.Tx, tenant string) (tenantBuckets, bool) {
	t := tx.Bucket(bucketRoot).Bucket(tenantBucketName(tenant))
	if t == nil {
		return tenantBuckets{}, false
	}
	return bucketsOf(t), true
}

func bucketsOf(t *bolt.Bucket) tenantBuckets {
	return tenantBuckets{
		tenant:   t,
		memories: t.Bucket(bucketMemories),
		links:    t.Bucket(bucketLinks),
		history:  t.Bucket(bucketHistory),
		keys:     t.Bucket(bucketKeys),
		counters: t.Bucket(bucketCounters),
	}
}

// forEachTenant calls fn for every tenant that has written.
func forEachTenant(tx *bolt.Tx, fn func(tenant string, b tenantBuckets) error) error {
	return tx.Bucket(bucketRoot).ForEachBucket(func(name []byte) error {
		return fn(string(name[1:]), bucketsOf(tx.Bucket(bucketRoot).Bucket(name)))
	})
}

// writeTenant returns the tenant's buckets in a write transaction, creating
// them on the tenant's first write.
func writeTenant(tx *bolt.Tx, tenant string) (tenantBuckets, error) {
	t, err := tx.Bucket(bucketRoot).CreateBucketIfNotExists(tenantBucketName(tenant))
	if err != nil {
		return tenantBuckets{}, err
	}
	for _, name := range [][]byte{bucketMemories, bucketLinks, bucketHistory, bucketKeys, bucketCounters} {
		if _, err := t.CreateBucketIfNotExists(name); err != nil {
			return tenantBuckets{}, err
		}
	}
	return bucketsOf(t), nil
}

func readCounters(b *bolt.Bucket) TenantStats {
	return TenantStats{Applied: readCounter(b, counterApplied), Repeated: readCounter(b, counterRepeated)}
}

func readCounter(b *bolt.Bucket, name []byte) uint64 {
	if v := b.Get(name); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func incrementCounter(b *bolt.Bucket, name []byte) error {
	return b.Put(name, binary.BigEndian.AppendUint64(nil, readCounter(b, name)+1))
}

func historyPrefix(key string) []byte {
	return append([]byte(key), 0)
}

// record files an applied write in the tenant's history and counters: the
// test aid, in the write's own transaction. The bucket's sequence orders
// entries across the whole tenant, so a prefix scan returns them in apply
// order.
func record(b tenantBuckets, key, op string, c caller, now time.Time) error {
	if err := incrementCounter(b.counters, counterApplied); err != nil {
		return err
	}
	if c.idempotencyKey != "" {
		sum := sha256.Sum256([]byte(c.idempotencyKey))
		if b.keys.Get(sum[:]) != nil {
			if err := incrementCounter(b.counters, counterRepeated); err != nil {
				return err
			}
		} else if err := b.keys.Put(sum[:], []byte{1}); err != nil {
			return err
		}
	}
	seq, err := b.history.NextSequence()
	if err != nil {
		return err
	}
	v, err := json.Marshal(HistoryEntry{Op: op, IdempotencyKey: c.idempotencyKey, RequestID: c.requestID, At: now.UTC()})
	if err != nil {
		return err
	}
	return b.history.Put(binary.BigEndian.AppendUint64(historyPrefix(key), seq), v)
}

// caller is what the request headers say about the write, for the record.
type caller struct {
	idempotencyKey string
	requestID      string
}

// write runs fn, a write of the tenant filed under key, and records it
// when it applied, in one transaction. Concurrent calls are batched into one
// fsync. Batch may run the function more than once, so everything is
// derived from the transaction and the answer is kept only from the run
// that returns nil.
func (s *Store) write(tenant, key, op string, c caller, fn func(b tenantBuckets, now time.Time) (answer, error)) (answer, error) {
	var result answer
	err := s.db.Batch(func(tx *bolt.Tx) error {
		b, err := writeTenant(tx, tenant)
		if err != nil {
			return err
		}
		now := time.Now()
		a, err := fn(b, now)
		if err != nil {
			return err
		}
		if err := record(b, key, op, c, now); err != nil {
			return err
		}
		result = a
		return nil
	})
	return result, err
}
