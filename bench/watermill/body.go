package main

import (
	"crypto/sha256"
	"encoding/binary"
	"strconv"
	"strings"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
)

// Metadata keys of a store message; the NATS marshaler sends them as headers.
const (
	metaTenant      = "tenant"
	metaSeq         = "seq"          // the message's number in the run, 0 to n-1
	metaPublishedAt = "published_at" // Unix nanoseconds, set just before Publish
)

// A message body is the store request jetbox's producer builds and its
// worker sends as is to POST /memories, with the payload's text padded so
// that the whole body is the -size the run asks for.
const (
	bodyHead = `{"coord":"`
	bodyMid  = `","payload":{"text":"`
	bodyTail = `"},"memory_type":"episodic"}`
	// maxCoordLen is three floats of at most 24 bytes and two commas.
	maxCoordLen = 3*24 + 2
	minBodySize = len(bodyHead) + maxCoordLen + len(bodyMid) + len(bodyTail)
)

// storeMessages makes the run's messages.
type storeMessages struct {
	size    int
	tenants int
	padding string
}

func newStoreMessages(s settings) storeMessages {
	return storeMessages{size: s.Size, tenants: s.Tenants, padding: strings.Repeat("m", s.Size)}
}

// message returns message i: a store of its own memory for tenant
// tenant-<i % tenants>, under a new UUID that is also its idempotency key.
func (sm storeMessages) message(i int) *message.Message {
	coord := coordOf("memory-" + strconv.Itoa(i))
	body := make([]byte, 0, sm.size)
	body = append(body, bodyHead...)
	body = append(body, coord...)
	body = append(body, bodyMid...)
	body = append(body, sm.padding[:sm.size-len(body)-len(bodyTail)]...)
	body = append(body, bodyTail...)

	msg := message.NewMessage(watermill.NewUUID(), body)
	msg.Metadata.Set(metaTenant, "tenant-"+strconv.Itoa(i%sm.tenants))
	msg.Metadata.Set(metaSeq, strconv.Itoa(i))
	return msg
}

// coordOf derives a coordinate from a key the way jetbox's CoordFromKey
// does, so the memory API sees coordinates of the same form: a 12-byte
// digest split into three big-endian uint32, each mapped into [-1, 1).
// SHA-256 stands in for BLAKE2b, which only changes which point a key names.
func coordOf(key string) string {
	sum := sha256.Sum256([]byte(key))
	out := make([]byte, 0, maxCoordLen)
	for i := range 3 {
		if i > 0 {
			out = append(out, ',')
		}
		u := binary.BigEndian.Uint32(sum[4*i:])
		out = strconv.AppendFloat(out, 2*(float64(u)/(1<<32))-1, 'g', -1, 64)
	}
	return string(out)
}
