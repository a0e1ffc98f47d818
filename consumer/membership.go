package consumer

import (
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"hash/fnv"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/jetbox-dev/jetbox/streams"
)

// memberInfo is what a worker publishes about itself in the members bucket,
// under its ID.
type memberInfo struct {
	ID      string         `json:"id"`
	Host    string         `json:"host"`
	PID     int            `json:"pid"`
	Modes   []streams.Mode `json:"modes"`
	Started time.Time      `json:"started"`
}

// membership lets workers join and leave by themselves. Each worker keeps
// its key alive in a KV bucket whose TTL is the member TTL: a worker that
// stops heartbeating (crashed, partitioned away) drops out of the bucket
// within the TTL, one that shuts down deletes its key and drops out at
// once. Every worker watches the bucket and derives the same partition
// assignment from the members it holds (ownedPartitions).
type membership struct {
	kv   jetstream.KeyValue
	self memberInfo
	ttl  time.Duration
	log  zerolog.Logger
}

func newMembership(kv jetstream.KeyValue, self memberInfo, ttl time.Duration, log zerolog.Logger) *membership {
	return &membership{kv: kv, self: self, ttl: ttl, log: log}
}

// join publishes this worker as a member.
func (m *membership) join(ctx context.Context) error {
	data, err := json.Marshal(m.self)
	if err != nil {
		return err
	}
	_, err = m.kv.Put(ctx, m.self.ID, data)
	return err
}

// leave deletes this worker's key, so the others take its partitions over
// at once instead of after the TTL.
func (m *membership) leave(ctx context.Context) error {
	return m.kv.Delete(ctx, m.self.ID)
}

// run heartbeats and watches the members until ctx ends. Every quarter of
// the TTL it refreshes this worker's key. Whenever the live members (their
// IDs and modes) differ from the last ones reported, it calls changed with
// them, sorted by ID; the first call follows the first listing of the
// bucket. Self is always among them: a worker never sees a world without
// itself, even before its key is listed.
//
// changed runs on run's goroutine and owns the slice it is given. Call
// leave only after run has returned, or a last heartbeat may bring the key
// back.
func (m *membership) run(ctx context.Context, changed func(members []memberInfo)) {
	every := m.ttl / 4
	heartbeat := time.NewTicker(every)
	defer heartbeat.Stop()
	view := &memberView{self: m.self, ttl: m.ttl, live: map[string]sighting{}}
	var (
		watcher  jetstream.KeyWatcher
		updates  <-chan jetstream.KeyValueEntry // nil while no watcher runs
		listed   bool
		reported string
	)
	watch := func() {
		w, err := m.kv.WatchAll(ctx)
		if err != nil {
			if ctx.Err() == nil {
				m.log.Warn().Err(err).Msg("cannot watch members; keeping the last assignment and trying again")
			}
			return
		}
		watcher, updates = w, w.Updates()
	}
	defer func() {
		if watcher != nil {
			_ = watcher.Stop()
		}
	}()
	watch()
	for {
		select {
		case <-ctx.Done():
			return
		case <-heartbeat.C:
			putCtx, cancel := context.WithTimeout(ctx, every)
			if err := m.join(putCtx); err != nil && ctx.Err() == nil {
				m.log.Warn().Err(err).Dur("ttl", m.ttl).Msg("member heartbeat failed; the others drop this worker if it keeps failing for the TTL")
			}
			cancel()
			if updates == nil {
				watch()
			}
			continue
		case e, open := <-updates:
			switch {
			case !open: // watched again at the next heartbeat
				if ctx.Err() == nil {
					m.log.Warn().Msg("members watcher closed")
				}
				updates = nil
				continue
			case e == nil:
				listed = true // every key's latest value seen
			default:
				view.apply(e, m.log)
			}
		}
		if !listed {
			continue
		}
		members := view.members()
		if sig := membersSignature(members); sig != reported {
			reported = sig
			changed(members)
		}
	}
}

// memberView is the live members as one watcher sees them.
//
// The view follows every update rather than listing the bucket afresh each
// heartbeat: a listing's "all values seen" marker can come before a key
// that is being refreshed at that moment, so a listing can miss a live
// member; a watcher receives that key with its next refresh.
//
// A key expired by the bucket's TTL makes no event (unless the bucket keeps
// limit markers), so the view expires members itself, the way the bucket
// does: a member whose last refresh is stamped more than the TTL before
// this worker's own last refresh, as this watcher received it, is gone.
// Measuring against its own refreshes rather than the local clock, a
// worker whose watcher stalls (disconnected) drops no one.
type memberView struct {
	self    memberInfo
	ttl     time.Duration
	live    map[string]sighting
	selfNow time.Time // the stream time of this worker's last refresh seen
}

type sighting struct {
	info memberInfo
	at   time.Time // stream time of the member's last refresh
}

func (v *memberView) apply(e jetstream.KeyValueEntry, log zerolog.Logger) {
	if e.Operation() != jetstream.KeyValuePut {
		delete(v.live, e.Key()) // left, or purged
		return
	}
	if e.Key() == v.self.ID {
		v.selfNow = e.Created()
		for id, s := range v.live {
			if v.selfNow.Sub(s.at) > v.ttl {
				delete(v.live, id)
			}
		}
		return
	}
	var info memberInfo
	if err := json.Unmarshal(e.Value(), &info); err != nil {
		log.Warn().Err(err).Str("member", e.Key()).Msg("unreadable member entry; ignoring it")
		return
	}
	info.ID = e.Key() // the key is what the member refreshes and deletes
	v.live[info.ID] = sighting{info: info, at: e.Created()}
}

// members is self and the live members, sorted by ID.
func (v *memberView) members() []memberInfo {
	members := []memberInfo{v.self}
	for _, s := range v.live {
		members = append(members, s.info)
	}
	slices.SortFunc(members, func(a, b memberInfo) int { return strings.Compare(a.ID, b.ID) })
	return members
}

// membersSignature is what an assignment depends on: the members' IDs and
// modes, in ID order.
func membersSignature(members []memberInfo) string {
	var b strings.Builder
	for _, mb := range members {
		b.WriteString(mb.ID)
		for _, mode := range mb.Modes {
			b.WriteByte(' ')
			b.WriteString(string(mode))
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// ownedPartitions is the partitions of mode that self owns among members.
// Every member computing it over the same members gets its share of one
// disjoint cover of all partitions, whatever the order of the list. Only
// members consuming mode take part. Each partition goes to the member
// ranking highest for it (rendezvous hashing) that still has room: with P
// partitions over n members, P mod n members may hold ceil(P/n) and the
// others floor(P/n), so shares differ by at most one. Rendezvous ranking
// keeps moves few when a member joins or leaves: a partition changes owner
// mostly when the newcomer ranks first for it, or to make room under the
// new shares.
func ownedPartitions(self string, members []memberInfo, mode streams.Mode, partitions int) []int {
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
