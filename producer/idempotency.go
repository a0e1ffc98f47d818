package producer

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/jetbox-dev/jetbox/streams"
)

// idempotencyVersion starts every derivation, so that a later change of
// the recipe can never collide with ids made by this one.
const idempotencyVersion = "jetbox-idem-v1"

// DeriveIdempotencyKey is the key of one write (and, after the tenant token
// and a colon, its Nats-Msg-Id): the first 32 hex digits of the SHA-256 of
//
//	jetbox-idem-v1 NUL <op> NUL <raw tenant> NUL <base> NUL <body>
//
// where base is the caller's idempotency key, else its request id, else a
// fresh UUID v7, and body is the exact JSON body published. A retry of the
// same write (same base, same body) gets the same key, in any process; two
// writes that differ in op, tenant, target or content never share one,
// whatever request id they carry; and nobody who does not know the whole
// write can compute its key in advance to claim it first.
// docs/CONTRACT.md states the recipe for producers in other languages.
func DeriveIdempotencyKey(op streams.Op, tenant, base string, body []byte) string {
	h := sha256.New()
	for _, part := range [...]string{idempotencyVersion, string(op), tenant, base} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	h.Write(body)
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:16])
}
