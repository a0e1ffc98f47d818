package ownership

import (
	"cmp"
	"encoding/binary"
	"hash/fnv"
	"slices"
	"strings"

	"github.com/jetbox-dev/jetbox/streams"
)

// Assign is the partitions of mode that self owns among members.
// Every member computing it over the same members gets its share of one
// disjoint cover of all partitions, whatever the order of the list. Only
// members consuming mode take part. Each partition goes to the member
// ranking highest for it (rendezvous hashing) that still has room: with P
// partitions over n members, P mod n members may hold ceil(P/n) and the
// others floor(P/n), so shares differ by at most one. Rendezvous ranking
// keeps moves few when a member joins or leaves: a partition changes owner
// mostly when the newcomer ranks first for it, or to make room under the
// new shares.
func Assign(self string, members []streams.MemberRecord, mode streams.Mode, partitions int) []int {
	var ids []string
	for _, mb := range members {
		if slices.Contains(mb.Modes, mode) {
			ids = append(ids, mb.ID)
		}
	}
	slices.Sort(ids)
	ids = slices.Compact(ids) // a duplicate would leave partitions without room
	if partitions <= 0 || !slices.Contains(ids, self) {
		return nil
	}
	share, bigShares := partitions/len(ids), partitions%len(ids)
	load := make(map[string]int, len(ids))
	hasRoom := func(id string) bool {
		return load[id] < share || load[id] == share && bigShares > 0
	}
	type ranked struct {
		id    string
		score uint64
	}
	ranking := make([]ranked, len(ids))
	var owned []int
	for p := range partitions {
		for i, id := range ids {
			ranking[i] = ranked{id, rendezvousScore(id, mode, p)}
		}
		slices.SortFunc(ranking, func(a, b ranked) int {
			return cmp.Or(cmp.Compare(b.score, a.score), strings.Compare(a.id, b.id))
		})
		for _, r := range ranking {
			if !hasRoom(r.id) {
				continue
			}
			if load[r.id] == share {
				bigShares--
			}
			load[r.id]++
			if r.id == self {
				owned = append(owned, p)
			}
			break
		}
	}
	return owned
}

// rendezvousScore ranks a member for one partition of one mode. FNV-1a
// alone barely spreads a change in the last bytes (the partition) into the
// high bits that decide a comparison: raw, it ranks the same member first
// for nearly every pair of neighbouring partitions. Its sum goes through
// the splitmix64 finalizer.
func rendezvousScore(member string, mode streams.Mode, p int) uint64 {
	h := fnv.New64a()
	h.Write([]byte(member))
	h.Write([]byte{0})
	h.Write([]byte(mode))
	h.Write([]byte{0})
	h.Write(binary.BigEndian.AppendUint64(nil, uint64(p)))
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
