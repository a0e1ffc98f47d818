package ownership

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/jetbox-dev/jetbox/streams"
)

// Members lets workers join and leave by themselves. Each worker keeps
// its key alive in a KV bucket whose TTL is the member TTL: a worker that
// stops heartbeating (crashed, partitioned away) drops out of the bucket
// within the TTL, one that shuts down deletes its key and drops out at
// once. Every worker watches the bucket and derives the same partition
// assignment from the members it holds (Assign).
type Members struct {
	kv   jetstream.KeyValue
	self streams.MemberRecord
	ttl  time.Duration
	log  zerolog.Logger
}

// NewMembers is this worker, self, among the members kept in kv, whose
// keys expire after ttl.
func NewMembers(kv jetstream.KeyValue, self streams.MemberRecord, ttl time.Duration, log zerolog.Logger) *Members {
	return &Members{kv: kv, self: self, ttl: ttl, log: log}
}

// Join publishes this worker as a member.
func (m *Members) Join(ctx context.Context) error {
	data, err := json.Marshal(m.self)
	if err != nil {
		return err
	}
	_, err = m.kv.Put(ctx, m.self.ID, data)
	return err
}

// Leave deletes this worker's key, so the others take its partitions over
// at once instead of after the TTL.
func (m *Members) Leave(ctx context.Context) error {
	return m.kv.Delete(ctx, m.self.ID)
}

// Watch heartbeats and watches the members until ctx ends. Every quarter of
// the TTL it refreshes this worker's key. Whenever the live members (their
// IDs and modes) differ from the last ones reported, it calls changed with
// them, sorted by ID; the first call follows the first listing of the
// bucket. Self is always among them: a worker never sees a world without
// itself, even before its key is listed.
//
// changed runs on Watch's goroutine and owns the slice it is given. Call
// Leave only after Watch has returned, or a last heartbeat may bring the
// key back.
func (m *Members) Watch(ctx context.Context, changed func(members []streams.MemberRecord)) {
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
			if err := m.Join(putCtx); err != nil && ctx.Err() == nil {
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
	self    streams.MemberRecord
	ttl     time.Duration
	live    map[string]sighting
	selfNow time.Time // the stream time of this worker's last refresh seen
}

type sighting struct {
	info streams.MemberRecord
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
	var info streams.MemberRecord
	if err := json.Unmarshal(e.Value(), &info); err != nil {
		log.Warn().Err(err).Str("member", e.Key()).Msg("unreadable member entry; ignoring it")
		return
	}
	info.ID = e.Key() // the key is what the member refreshes and deletes
	v.live[info.ID] = sighting{info: info, at: e.Created()}
}

// members is self and the live members, sorted by ID.
func (v *memberView) members() []streams.MemberRecord {
	members := []streams.MemberRecord{v.self}
	for _, s := range v.live {
		members = append(members, s.info)
	}
	slices.SortFunc(members, func(a, b streams.MemberRecord) int { return strings.Compare(a.ID, b.ID) })
	return members
}

// membersSignature is what an assignment depends on: the members' IDs and
// modes, in ID order.
func membersSignature(members []streams.MemberRecord) string {
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
