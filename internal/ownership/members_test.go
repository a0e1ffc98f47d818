package ownership

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/jetbox-dev/jetbox/internal/natstest"
	"github.com/jetbox-dev/jetbox/streams"
)

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
	if err := b.m.Leave(ctx); err != nil {
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
	b, err := json.Marshal(streams.MemberRecord{ID: "b", Modes: []streams.Mode{streams.ModeSync}})
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
	v := &memberView{self: streams.MemberRecord{ID: "a"}, ttl: ttl, live: map[string]sighting{}}
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
	m := NewMembers(kv, streams.MemberRecord{ID: "solo", Modes: []streams.Mode{streams.ModeSync}}, time.Second, zerolog.Nop())
	first := make(chan []streams.MemberRecord, 1)
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go m.Watch(runCtx, func(members []streams.MemberRecord) {
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
	info    streams.MemberRecord
	m       *Members
	views   chan []streams.MemberRecord
	stop    func() // ends Watch, without leaving
	stopped chan struct{}
}

func startMember(ctx context.Context, t *testing.T, kv jetstream.KeyValue, id string, ttl time.Duration, modes ...streams.Mode) *testMember {
	t.Helper()
	info := streams.MemberRecord{ID: id, Host: "host-" + id, PID: int(id[0] - 'a' + 1), Modes: modes, Started: time.Now().UTC()}
	tm := &testMember{info: info, m: NewMembers(kv, info, ttl, zerolog.Nop()), views: make(chan []streams.MemberRecord, 100), stopped: make(chan struct{})}
	if err := tm.m.Join(ctx); err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	go func() {
		defer close(tm.stopped)
		tm.m.Watch(runCtx, func(members []streams.MemberRecord) { tm.views <- members })
	}()
	tm.stop = func() { cancel(); <-tm.stopped }
	t.Cleanup(tm.stop)
	return tm
}

// waitFor waits until changed reports exactly the members ids, e.g. "a,b".
func (tm *testMember) waitFor(t *testing.T, ids string, within time.Duration) []streams.MemberRecord {
	t.Helper()
	deadline := time.After(within)
	var last []streams.MemberRecord
	for {
		select {
		case members := <-tm.views:
			if !slices.IsSortedFunc(members, func(x, y streams.MemberRecord) int { return strings.Compare(x.ID, y.ID) }) {
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

func memberIDs(members []streams.MemberRecord) string {
	ids := make([]string, len(members))
	for i, m := range members {
		ids[i] = m.ID
	}
	return strings.Join(ids, ",")
}
