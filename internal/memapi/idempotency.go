package memapi

import (
	"crypto/sha256"
	"encoding/binary"
	"time"

	bolt "go.etcd.io/bbolt"
)

// idempotencyRecord is the stored answer to the first request with a key.
// Encoded as: written-at unix nanos (8 bytes) | fingerprint (32) | status (2) | body.
type idempotencyRecord struct {
	at          time.Time
	fingerprint [sha256.Size]byte
	answer      answer
}

const idempotencyHeaderLen = 8 + sha256.Size + 2

// fingerprint identifies a request for idempotency: the same key with a
// different fingerprint is a conflict, not a repeat.
func fingerprint(method, path string, body []byte) [sha256.Size]byte {
	h := sha256.New()
	h.Write([]byte(method))
	h.Write([]byte{0})
	h.Write([]byte(path))
	h.Write([]byte{0})
	h.Write(body)
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

func (r idempotencyRecord) encode() []byte {
	v := make([]byte, 0, idempotencyHeaderLen+len(r.answer.body))
	v = binary.BigEndian.AppendUint64(v, uint64(r.at.UnixNano()))
	v = append(v, r.fingerprint[:]...)
	v = binary.BigEndian.AppendUint16(v, uint16(r.answer.status))
	return append(v, r.answer.body...)
}

// decodeIdempotencyRecord copies out of v, which bbolt only lends for the
// life of the transaction.
func decodeIdempotencyRecord(v []byte) (idempotencyRecord, bool) {
	if len(v) < idempotencyHeaderLen {
		return idempotencyRecord{}, false
	}
	var r idempotencyRecord
	r.at = recordTime(v)
	copy(r.fingerprint[:], v[8:8+sha256.Size])
	r.answer.status = int(binary.BigEndian.Uint16(v[8+sha256.Size:]))
	r.answer.body = append([]byte(nil), v[idempotencyHeaderLen:]...)
	return r, true
}

func recordTime(v []byte) time.Time {
	return time.Unix(0, int64(binary.BigEndian.Uint64(v)))
}

// storable reports whether an answer is kept for repeats: a 2xx or 4xx is
// the request's final answer, anything else may change on a retry.
func storable(status int) bool {
	return status >= 200 && status < 300 || status >= 400 && status < 500
}

// lookupIdempotency returns the live record for key. An expired record the
// sweep has not reached yet counts as absent, so expiry does not depend on
// sweep timing.
func (s *Store) lookupIdempotency(b *bolt.Bucket, key string, now time.Time) (idempotencyRecord, bool) {
	r, ok := decodeIdempotencyRecord(b.Get([]byte(key)))
	if !ok || s.expired(r.at, now) {
		return idempotencyRecord{}, false
	}
	return r, true
}

func (s *Store) expired(at, now time.Time) bool {
	return now.Sub(at) >= s.opts.IdempotencyTTL
}

// sweepInterval is a quarter of the TTL, so a record outlives its TTL by at
// most a quarter, bounded to keep short test TTLs cheap and long ones fresh.
func sweepInterval(ttl time.Duration) time.Duration {
	return min(max(ttl/4, 10*time.Millisecond), time.Minute)
}

func (s *Store) sweepLoop() {
	defer s.swept.Done()
	t := time.NewTicker(sweepInterval(s.opts.IdempotencyTTL))
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			// A failed sweep is retried on the next tick; lookups already
			// ignore the records it missed.
			_ = s.sweepIdempotency(now)
		}
	}
}

// sweepIdempotency deletes every record older than the TTL.
func (s *Store) sweepIdempotency(now time.Time) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		tenants := tx.Bucket(bucketTenants)
		return tenants.ForEachBucket(func(name []byte) error {
			b := tenants.Bucket(name).Bucket(bucketIdempotency)
			if b == nil {
				return nil
			}
			var expired [][]byte
			err := b.ForEach(func(k, v []byte) error {
				if len(v) < 8 || s.expired(recordTime(v), now) {
					expired = append(expired, append([]byte(nil), k...))
				}
				return nil
			})
			if err != nil {
				return err
			}
			for _, k := range expired {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
	})
}
