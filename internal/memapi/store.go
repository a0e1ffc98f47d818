// Package memapi is the development memory API: a persistent implementation of
// the SomaFractalMemory HTTP API that jetbox runs when no endpoint is
// configured and that the project's tests run against.
//
// Everything lives in one bbolt file. A write, its idempotency record, its
// counter and its history entry are committed in one transaction, so a crash
// or restart never separates them.
package memapi

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Options configures a Store.
type Options struct {
	Path           string        // bbolt file path (created with parent dirs)
	Token          string        // bearer token; empty = no auth
	AllowInsecure  bool          // Listen may go beyond loopback without a Token (SOMABRAIN_OUTBOX_ALLOW_INSECURE)
	Delay          time.Duration // artificial latency added to every data request (for scale tests); 0 = none
	IdempotencyTTL time.Duration // how long idempotency records are kept; 0 = 24h
	// Fail, when set, makes every data request of a tenant for which it
	// returns true fail with 503 and a JSON error body, without Retry-After
	// and without touching the store (for failure scenarios); nil = never.
	Fail func(tenant string) bool
}

const defaultIdempotencyTTL = 24 * time.Hour

// Store is the persistent state of the memory API.
type Store struct {
	db    *bolt.DB
	opts  Options
	stop  chan struct{}
	swept sync.WaitGroup
	once  sync.Once
}

// Stats holds the counters of every tenant that has written.
type Stats struct {
	Tenants map[string]TenantStats `json:"tenants"`
}

// TenantStats counts one tenant's writes.
type TenantStats struct {
	Applied    uint64 `json:"applied"`    // writes applied (store, delete, link)
	Suppressed uint64 `json:"suppressed"` // repeats answered from an idempotency record
	Conflicts  uint64 `json:"conflicts"`  // keys reused with a different request
}

// HistoryEntry is one applied write to a coord.
type HistoryEntry struct {
	Op             string    `json:"op"` // "store" | "delete" | "link"
	IdempotencyKey string    `json:"idempotency_key"`
	RequestID      string    `json:"request_id"`
	At             time.Time `json:"at"`
}

// Memory is a stored memory as the API returns it.
type Memory struct {
	Coord      string          `json:"coord"`
	Payload    json.RawMessage `json:"payload"`
	MemoryType string          `json:"memory_type"`
}

// storedMemory is a Memory with the namespace it was written under.
type storedMemory struct {
	Memory
	Namespace string `json:"namespace,omitempty"`
}

// Bucket layout: tenants/<tenant>/{memories,links,history,idempotency,stats}.
var (
	bucketTenants     = []byte("tenants")
	bucketMemories    = []byte("memories")    // canonical coord -> storedMemory JSON
	bucketLinks       = []byte("links")       // from \x00 to \x00 link_type -> storedLink JSON
	bucketHistory     = []byte("history")     // canonical coord \x00 seq -> HistoryEntry JSON
	bucketIdempotency = []byte("idempotency") // key -> idempotencyRecord
	bucketStats       = []byte("stats")       // counter name -> uint64

	counterApplied    = []byte("applied")
	counterSuppressed = []byte("suppressed")
	counterConflicts  = []byte("conflicts")
)

// tenantBuckets are one tenant's buckets inside a transaction.
type tenantBuckets struct {
	memories, links, history, idempotency, stats *bolt.Bucket
}

// Open opens or creates the store at opts.Path and starts the sweep of
// expired idempotency records.
func Open(opts Options) (*Store, error) {
	if opts.Path == "" {
		return nil, errors.New("memapi: Options.Path is empty")
	}
	if opts.IdempotencyTTL <= 0 {
		opts.IdempotencyTTL = defaultIdempotencyTTL
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
		_, err := tx.CreateBucketIfNotExists(bucketTenants)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("memapi: initialise %s: %w", opts.Path, err)
	}
	s := &Store{db: db, opts: opts, stop: make(chan struct{})}
	s.swept.Add(1)
	go s.sweepLoop()
	return s, nil
}

// Close stops the sweep and closes the file.
func (s *Store) Close() error {
	s.once.Do(func() { close(s.stop) })
	s.swept.Wait()
	return s.db.Close()
}

// Get returns the tenant's memory at coord.
func (s *Store) Get(tenant, coord string) (Memory, bool, error) {
	key, err := canonicalCoord(coord)
	if err != nil {
		return Memory{}, false, err
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
		v := b.memories.Get([]byte(key))
		if v == nil {
			return nil
		}
		found = true
		return json.Unmarshal(v, &m)
	})
	if err != nil {
		return Memory{}, false, fmt.Errorf("memapi: get %s: %w", coord, err)
	}
	return m.Memory, found, nil
}

// History returns every applied write to the tenant's coord, in apply order.
// A link is filed under its from_coord. An invalid coord has no history.
func (s *Store) History(tenant, coord string) []HistoryEntry {
	key, err := canonicalCoord(coord)
	if err != nil {
		return nil
	}
	var entries []HistoryEntry
	prefix := historyPrefix(key)
	_ = s.db.View(func(tx *bolt.Tx) error {
		b, ok := readTenant(tx, tenant)
		if !ok {
			return nil
		}
		c := b.history.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
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
		return tx.Bucket(bucketTenants).ForEachBucket(func(name []byte) error {
			b, _ := readTenant(tx, string(name))
			stats.Tenants[string(name)] = readCounters(b.stats)
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
			ts = readCounters(b.stats)
		}
		return nil
	})
	return ts
}

// readTenant returns the tenant's buckets in a read transaction; ok is false
// for a tenant that has never written.
func readTenant(tx *bolt.Tx, tenant string) (tenantBuckets, bool) {
	if tenant == "" {
		return tenantBuckets{}, false
	}
	t := tx.Bucket(bucketTenants).Bucket([]byte(tenant))
	if t == nil {
		return tenantBuckets{}, false
	}
	return tenantBuckets{
		memories:    t.Bucket(bucketMemories),
		links:       t.Bucket(bucketLinks),
		history:     t.Bucket(bucketHistory),
		idempotency: t.Bucket(bucketIdempotency),
		stats:       t.Bucket(bucketStats),
	}, true
}

// writeTenant returns the tenant's buckets in a write transaction, creating
// them on the tenant's first write.
func writeTenant(tx *bolt.Tx, tenant string) (tenantBuckets, error) {
	t, err := tx.Bucket(bucketTenants).CreateBucketIfNotExists([]byte(tenant))
	if err != nil {
		return tenantBuckets{}, err
	}
	var b tenantBuckets
	for _, sub := range []struct {
		name []byte
		dst  **bolt.Bucket
	}{
		{bucketMemories, &b.memories},
		{bucketLinks, &b.links},
		{bucketHistory, &b.history},
		{bucketIdempotency, &b.idempotency},
		{bucketStats, &b.stats},
	} {
		if *sub.dst, err = t.CreateBucketIfNotExists(sub.name); err != nil {
			return tenantBuckets{}, err
		}
	}
	return b, nil
}

func readCounters(b *bolt.Bucket) TenantStats {
	get := func(name []byte) uint64 {
		v := b.Get(name)
		if len(v) != 8 {
			return 0
		}
		return binary.BigEndian.Uint64(v)
	}
	return TenantStats{
		Applied:    get(counterApplied),
		Suppressed: get(counterSuppressed),
		Conflicts:  get(counterConflicts),
	}
}

func incrementCounter(b *bolt.Bucket, name []byte) error {
	var n uint64
	if v := b.Get(name); len(v) == 8 {
		n = binary.BigEndian.Uint64(v)
	}
	return b.Put(name, binary.BigEndian.AppendUint64(nil, n+1))
}

func historyPrefix(canonical string) []byte {
	return append([]byte(canonical), 0)
}

// appendHistory files an entry under the canonical coord. The bucket's
// sequence orders entries across the whole tenant, so a prefix scan returns
// them in apply order.
func appendHistory(b *bolt.Bucket, canonical string, e HistoryEntry) error {
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	v, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return b.Put(binary.BigEndian.AppendUint64(historyPrefix(canonical), seq), v)
}
