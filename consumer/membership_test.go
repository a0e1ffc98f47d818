package consumer

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/jetbox-dev/jetbox/internal/natstest"
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
	members := []memberInfo{
		{ID: "a", Modes: []streams.Mode{streams.ModeSync, streams.ModeBackground}},
		{ID: "b", Modes: []streams.Mode{streams.ModeBackground}},
		{ID: "c", Modes: []streams.Mode{streams.ModeSync}},
	}
	if got := ownedPartitions("b", members, streams.ModeSync, 16); len(got) != 0 {
		t.Fatalf("b consumes no sync writes but owns sync partitions %v", got)
	}
	if got := ownedPartitions("z", members, streams.ModeSync, 16); len(got) != 0 {
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

func TestMembersSeeEachOtherJoinLeaveAndExpire(t *testing.T) {
	const ttl = time.Second
	_, js := natstest.Start(t).Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "MEMBERS_TEST", TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	a := startMember(ctx, t, kv, "a", ttl, streams.ModeSync, streams.ModeFastAck)
	b := startMember(ctx, t, kv, "b", ttl, streams.ModeBackground)

	for _, m := range []*testMember{a, b} {
		got := m.waitFor(t, "a,b", 5*time.Second)
		if !slices.Equal(got[0].Modes, []streams.Mode{streams.ModeSync, streams.ModeFastAck}) || !slices.Equal(got[1].Modes, []streams.Mode{streams.ModeBackground}) || got[1].Host != "host-b" || got[1].PID != 2 {
			t.Fatalf("%s sees members %+v", m.info.ID, got)
		}
	}
	// Heartbeats that change nothing report nothing.
	time.Sleep(ttl)
	if extra := a.drain(); len(extra) != 0 {
		t.Fatalf("changed called again with unchanged members: %v", extra)
	}

	// Leaving is seen at once, well before the TTL.
	b.stop()
	left := time.Now()
	if err := b.m.leave(ctx); err != nil {
		t.Fatal(err)
	}
	a.waitFor(t, "a", ttl)
	t.Logf("a saw b leave after %s", time.Since(left).Round(time.Millisecond))

	// A member that stops heartbeating expires with its key.
	c := startMember(ctx, t, kv, "c", ttl, streams.ModeSync)
	a.waitFor(t, "a,c", 5*time.Second)
	c.stop()
	silent := time.Now()
	a.waitFor(t, "a", 2*ttl)
	t.Logf("a saw c expire %s after its last heartbeat could have been", time.Since(silent).Round(time.Millisecond))
}

// A listing of the bucket can miss a key refreshed while it runs; a member
// that keeps refreshing must never be reported gone for that.
func TestARefreshingMemberIsNeverReportedGone(t *testing.T) {
	const ttl = 500 * time.Millisecond
	_, js := natstest.Start(t).Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "MEMBERS_BUSY", TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(memberInfo{ID: "b", Modes: []streams.Mode{streams.ModeSync}})
	if err != nil {
		t.Fatal(err)
	}
	refreshing, stopRefreshing := context.WithCancel(ctx)
	defer stopRefreshing()
	go func() {
		for refreshing.Err() == nil {
			_, _ = kv.Put(refreshing, "b", b)
			time.Sleep(time.Millisecond)
		}
	}()
	a := startMember(ctx, t, kv, "a", ttl, streams.ModeSync)
	a.waitFor(t, "a,b", 5*time.Second)
	time.Sleep(4 * ttl)
	if seen := a.drain(); len(seen) != 0 {
		t.Fatalf("members reported changed while b kept refreshing: %v", seen)
	}
}

// Expiry is measured against the worker's own refreshes as its watcher
// receives them: while they do not arrive (the watcher stalled), no one
// expires however long it lasts.
func TestMemberViewExpiresAgainstItsOwnRefreshes(t *testing.T) {
	const ttl = time.Second
	v := &memberView{self: memberInfo{ID: "a"}, ttl: ttl, live: map[string]sighting{}}
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	refresh := func(key string, at time.Time) {
		v.apply(fakeEntry{key: key, value: []byte(`{"id":"` + key + `","modes":["sync"]}`), created: at}, zerolog.Nop())
	}
	refresh("b", t0)
	refresh("a", t0.Add(ttl))
	if got := memberIDs(v.members()); got != "a,b" {
		t.Fatalf("members %q one TTL after b refreshed, want a,b", got)
	}
	refresh("a", t0.Add(ttl+time.Millisecond))
	if got := memberIDs(v.members()); got != "a" {
		t.Fatalf("members %q past a TTL after b refreshed, want a", got)
	}
	refresh("b", t0.Add(2*ttl))
	v.apply(fakeEntry{key: "b", op: jetstream.KeyValueDelete, created: t0.Add(2 * ttl)}, zerolog.Nop())
	if got := memberIDs(v.members()); got != "a" {
		t.Fatalf("members %q after b left, want a", got)
	}
}

type fakeEntry struct {
	jetstream.KeyValueEntry
	key     string
	value   []byte
	created time.Time
	op      jetstream.KeyValueOp
}

func (e fakeEntry) Key() string                     { return e.key }
func (e fakeEntry) Value() []byte                   { return e.value }
func (e fakeEntry) Created() time.Time              { return e.created }
func (e fakeEntry) Operation() jetstream.KeyValueOp { return e.op }

// The first listing may not show the worker's own key (not yet joined, or
// a listing racing an expiry): it is among the members all the same.
func TestAMemberAlwaysSeesItself(t *testing.T) {
	_, js := natstest.Start(t).Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "MEMBERS_SELF", TTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	m := newMembership(kv, memberInfo{ID: "solo", Modes: []streams.Mode{streams.ModeSync}}, time.Second, zerolog.Nop())
	first := make(chan []memberInfo, 1)
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go m.run(runCtx, func(members []memberInfo) {
		select {
		case first <- members:
		default:
		}
	})
	select {
	case got := <-first:
		if len(got) != 1 || got[0].ID != "solo" {
			t.Fatalf("first members %+v, want only solo", got)
		}
	case <-ctx.Done():
		t.Fatal("changed never called")
	}
}

type testMember struct {
	info    memberInfo
	m       *membership
	views   chan []memberInfo
	stop    func() // ends run, without leaving
	stopped chan struct{}
}

func startMember(ctx context.Context, t *testing.T, kv jetstream.KeyValue, id string, ttl time.Duration, modes ...streams.Mode) *testMember {
	t.Helper()
	info := memberInfo{ID: id, Host: "host-" + id, PID: int(id[0] - 'a' + 1), Modes: modes, Started: time.Now().UTC()}
	tm := &testMember{info: info, m: newMembership(kv, info, ttl, zerolog.Nop()), views: make(chan []memberInfo, 100), stopped: make(chan struct{})}
	if err := tm.m.join(ctx); err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	go func() {
		defer close(tm.stopped)
		tm.m.run(runCtx, func(members []memberInfo) { tm.views <- members })
	}()
	tm.stop = func() { cancel(); <-tm.stopped }
	t.Cleanup(tm.stop)
	return tm
}

// waitFor waits until changed reports exactly the members ids, e.g. "a,b".
func (tm *testMember) waitFor(t *testing.T, ids string, within time.Duration) []memberInfo {
	t.Helper()
	deadline := time.After(within)
	var last []memberInfo
	for {
		select {
		case members := <-tm.views:
			if !slices.IsSortedFunc(members, func(x, y memberInfo) int { return strings.Compare(x.ID, y.ID) }) {
				t.Fatalf("%s: members not sorted by ID: %+v", tm.info.ID, members)
			}
			if memberIDs(members) == ids {
				return members
			}
			last = members
		case <-deadline:
			t.Fatalf("%s: members %q not seen within %s; last seen %q", tm.info.ID, ids, within, memberIDs(last))
		}
	}
}

func (tm *testMember) drain() []string {
	var seen []string
	for {
		select {
		case members := <-tm.views:
			seen = append(seen, memberIDs(members))
		default:
			return seen
		}
	}
}

func memberIDs(members []memberInfo) string {
	ids := make([]string, len(members))
	for i, m := range members {
		ids[i] = m.ID
	}
	return strings.Join(ids, ",")
}

func randomMembers(n int, modes ...streams.Mode) []memberInfo {
	members := make([]memberInfo, n)
	for i := range members {
		members[i] = memberInfo{ID: fmt.Sprintf("worker-%016x", rand.Uint64()), Modes: modes}
	}
	return members
}

// assignment is every member's share, as each computes it from the members
// listed in its own order.
func assignment(members []memberInfo, mode streams.Mode, partitions int) map[string][]int {
	shares := map[string][]int{}
	for _, m := range members {
		view := slices.Clone(members)
		rand.Shuffle(len(view), func(i, j int) { view[i], view[j] = view[j], view[i] })
		if owned := ownedPartitions(m.ID, view, mode, partitions); len(owned) > 0 {
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
