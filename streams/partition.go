package streams

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"
)

// The outbox is partitioned at ingest: its subject transform appends to
// every write's subject a partition number hashed from the tenant token, so
// all writes of a tenant (hence of a memory) land in one partition. Each
// (mode, partition) has its own durable consumer, which one worker at a
// time owns through the consumer's pinned priority group.

// MaxPartitions bounds Config.Partitions: with three modes, 1000 partitions
// already make 3000 consumers.
const MaxPartitions = 1000

// OwnerGroup is the priority group of every partition consumer. Its policy
// is pinned-client: the server delivers to one pull subscription at a time,
// the partition's owner, so two workers never hold writes of one partition
// at once.
const OwnerGroup = "owner"

// PullExpiry is how long a worker's pull request lives. An owner keeps a
// pull request waiting at all times, so its pin is renewed at least this
// often; Config.PinnedTTL depends on it.
const PullExpiry = 2 * time.Second

// PartitionOf is the partition the outbox stores a tenant's writes in, as
// nats-server's partition(P,1) subject transform computes it: FNV-1a (32
// bits) of the tenant token, modulo the number of partitions. Like the
// server, it gives 0 when there are no partitions.
func PartitionOf(token string, partitions int) int {
	if partitions < 1 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(token))
	return int(h.Sum32() % uint32(partitions))
}

// PartitionConsumerName is the durable name of a partition's consumer: the
// mode and the partition zero-padded to three digits ("sync-007").
func PartitionConsumerName(mode Mode, p int) string {
	return fmt.Sprintf("%s-%03d", mode, p)
}

// ParsePartitionConsumerName reads a name PartitionConsumerName made. ok is
// false for any other consumer name.
func ParsePartitionConsumerName(name string) (mode Mode, p int, ok bool) {
	i := strings.LastIndexByte(name, '-')
	if i < 0 || len(name)-i-1 != 3 {
		return "", 0, false
	}
	m, err := ParseMode(name[:i])
	if err != nil {
		return "", 0, false
	}
	p, err = strconv.Atoi(name[i+1:])
	if err != nil || p < 0 || PartitionConsumerName(m, p) != name {
		return "", 0, false
	}
	return m, p, true
}

// PartitionFilter selects the stored writes of one mode in one partition:
// memory.*.<mode>.*.<p>, the filter of that partition's consumer.
func PartitionFilter(mode Mode, p int) string {
	return ModeSubject(mode) + "." + strconv.Itoa(p)
}

// parsePartition reads the partition token the outbox's subject transform
// appends: a decimal number below MaxPartitions, written as the server
// writes it (no sign, no leading zeros).
func parsePartition(token string) (int, bool) {
	p, err := strconv.Atoi(token)
	if err != nil || p < 0 || p >= MaxPartitions || strconv.Itoa(p) != token {
		return 0, false
	}
	return p, true
}
