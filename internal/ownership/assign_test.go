package ownership

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/jetbox-dev/jetbox/streams"
)

func TestEveryPartitionHasExactlyOneOwnerInBalance(t *testing.T) {
	for n := 1; n <= 7; n++ {
		for _, partitions := range []int{1, 3, 16, 64} {
			members := randomMembers(n, streams.Modes...)
			for _, mode := range streams.Modes {
				shares := assignment(members, mode, partitions)
				owners := make([]int, partitions)
				lo, hi := partitions, 0
				for _, owned := range shares {
					if !slices.IsSorted(owned) {
						t.Fatalf("n=%d P=%d: partitions %v not sorted", n, partitions, owned)
					}
					for _, p := range owned {
						owners[p]++
					}
					lo, hi = min(lo, len(owned)), max(hi, len(owned))
				}
				for p, count := range owners {
					if count != 1 {
						t.Fatalf("n=%d P=%d mode=%s: partition %d has %d owners", n, partitions, mode, p, count)
					}
				}
				if partitions >= n && hi-lo > 1 {
					t.Fatalf("n=%d P=%d mode=%s: shares from %d to %d partitions", n, partitions, mode, lo, hi)
				}
			}
		}
	}
}

func TestMembersWithoutTheModeOwnNothingOfIt(t *testing.T) {
	members := []streams.MemberRecord{
		{ID: "a", Modes: []streams.Mode{streams.ModeSync, streams.ModeBackground}},
		{ID: "b", Modes: []streams.Mode{streams.ModeBackground}},
		{ID: "c", Modes: []streams.Mode{streams.ModeSync}},
	}
	if got := Assign("b", members, streams.ModeSync, 16); len(got) != 0 {
		t.Fatalf("b consumes no sync writes but owns sync partitions %v", got)
	}
	if got := Assign("z", members, streams.ModeSync, 16); len(got) != 0 {
		t.Fatalf("a non-member owns partitions %v", got)
	}
	shares := assignment(members, streams.ModeSync, 16)
	if len(shares["a"])+len(shares["c"]) != 16 || len(shares["a"]) != 8 {
		t.Fatalf("sync partitions shared as %v, want 8 each to a and c", shares)
	}
	if fast := assignment(members, streams.ModeFastAck, 16); len(fast) != 0 {
		t.Fatalf("fast_ack partitions assigned with no member consuming them: %v", fast)
	}
}

// When a member joins three, the old members should mostly keep what they
// had: the newcomer takes its quarter, and only a few partitions move
// between old members to even out the shares.
func TestAJoiningMemberMovesFewPartitionsBetweenTheOthers(t *testing.T) {
	const partitions, trials = 16, 500
	bound := (partitions+3)/4 + 2
	worst, total := 0, 0
	for range trials {
		old := randomMembers(3, streams.ModeSync)
		joined := append(slices.Clone(old), randomMembers(1, streams.ModeSync)...)
		before := owners(assignment(old, streams.ModeSync, partitions), partitions)
		after := owners(assignment(joined, streams.ModeSync, partitions), partitions)
		moved := 0
		for p := range partitions {
			if after[p] != joined[3].ID && after[p] != before[p] {
				moved++
			}
		}
		worst, total = max(worst, moved), total+moved
		if moved > bound {
			t.Fatalf("a fourth member moved %d of %d partitions between the old members (bound %d): before %v, after %v", moved, partitions, bound, before, after)
		}
	}
	t.Logf("partitions moved between old members when a fourth joins, P=%d: mean %.2f, worst %d (bound %d)", partitions, float64(total)/trials, worst, bound)
}

func randomMembers(n int, modes ...streams.Mode) []streams.MemberRecord {
	members := make([]streams.MemberRecord, n)
	for i := range members {
		members[i] = streams.MemberRecord{ID: fmt.Sprintf("worker-%016x", rand.Uint64()), Modes: modes}
	}
	return members
}

// assignment is every member's share, as each computes it from the members
// listed in its own order.
func assignment(members []streams.MemberRecord, mode streams.Mode, partitions int) map[string][]int {
	shares := map[string][]int{}
	for _, m := range members {
		view := slices.Clone(members)
		rand.Shuffle(len(view), func(i, j int) { view[i], view[j] = view[j], view[i] })
		if owned := Assign(m.ID, view, mode, partitions); len(owned) > 0 {
			shares[m.ID] = owned
		}
	}
	return shares
}

func owners(shares map[string][]int, partitions int) []string {
	owner := make([]string, partitions)
	for id, owned := range shares {
		for _, p := range owned {
			owner[p] = id
		}
	}
	return owner
}
