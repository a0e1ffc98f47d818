package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetbox-dev/jetbox/consumer/internal/intake"
	"github.com/jetbox-dev/jetbox/internal/ownership"
	"github.com/jetbox-dev/jetbox/streams"
	"github.com/jetbox-dev/jetbox/tenancy"
)

// Parking moves a failing tenant's writes out of the way of everybody
// else's.
//
// When a tenant's breaker refuses a write, the partition owner parks the
// tenant: it records it in the parking bucket, and from then on moves each
// of the tenant's writes, in the order the lanes release them, to the
// tenant's parking subject and acks it in the outbox. A parked write is no
// longer pending on the partition's consumer, so it holds none of the
// capacity (MaxAckPending, memory API slots) its partition neighbours need.
// A replayer in the owner applies the parked writes, each memory's in
// order, as the breaker lets probes through (replayer.go); once the parking
// lot is empty
// the owner unparks the tenant under the same lock that moves writes there,
// so no write is left behind and later writes go straight to the memory API
// again.
//
// Only the owner of the tenant's partition parks, diverts, replays and
// unparks, and only while it owns the partition. A new owner first catches
// up with the parking bucket (catchUpParking, once the partition has been
// gathered) and unparks only once it is sure the previous owner has let go
// (ownership.Partition.Sure).

// parking is one group's view of its parked tenants.
type parking struct {
	g  *group
	mu sync.Mutex
	m  map[string]*parkedTenant // by tenant
}

// parkedTenant serialises moving a tenant's writes to its parking subject
// against parking and unparking it: moves share the lock, so writes to
// different memories move at once (the lanes keep each memory's in order),
// while a change of state takes it alone.
type parkedTenant struct {
	mu       sync.RWMutex
	parked   bool
	replayer *replayer // running in this worker, if any
}

func newParking(g *group) *parking { return &parking{g: g, m: map[string]*parkedTenant{}} }

func (pk *parking) tenant(tenant string) *parkedTenant {
	pk.mu.Lock()
	defer pk.mu.Unlock()
	t := pk.m[tenant]
	if t == nil {
		t = &parkedTenant{}
		pk.m[tenant] = t
	}
	return t
}

// divert moves d to its tenant's parking subject if the tenant is parked.
// moved is false when it is not parked; err says the move failed and the
// write is still held.
func (pk *parking) divert(ctx context.Context, d delivery) (moved bool, err error) {
	pk.mu.Lock()
	t := pk.m[d.w.Addr.Tenant]
	pk.mu.Unlock()
	if t == nil {
		return false, nil // never parked: the common case costs one map lookup
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	if !t.parked {
		return false, nil
	}
	return true, pk.move(ctx, d)
}

// park parks d's tenant, if it is not parked yet, and moves d there.
func (pk *parking) park(ctx context.Context, d delivery, pt *ownership.Partition, reason string) error {
	g := pk.g
	t := pk.tenant(d.w.Addr.Tenant)
	t.mu.Lock()
	if !t.parked {
		rec, _ := json.Marshal(streams.ParkedRecord{Since: time.Now().UTC(), Reason: reason, Worker: g.workerID})
		if _, err := g.buckets.parked.Put(ctx, streams.ParkingKey(g.mode, d.w.Addr.Token), rec); err != nil {
			t.mu.Unlock()
			return fmt.Errorf("record parked tenant: %w", err)
		}
		t.parked = true
		g.metrics.ParkedTenants.WithLabelValues(string(g.mode)).Inc()
		g.log.Warn().Str("group", string(g.mode)).Str("tenant", d.w.Addr.Tenant).Str("reason", reason).Msg("tenant parked: its writes wait aside until its memory API recovers")
	}
	if t.replayer == nil || t.replayer.ended() {
		t.replayer = pk.startReplayer(d.w.Addr.Tenant, d.w.Addr.Token, pt)
	}
	t.mu.Unlock()
	// Unparked in between (the lot emptied): d goes through the memory API
	// again, like any write of an unparked tenant.
	moved, err := pk.divert(ctx, d)
	if err == nil && !moved {
		return errUnparked
	}
	return err
}

// errUnparked says the tenant was unparked before the write could be moved.
var errUnparked = errors.New("tenant unparked meanwhile")

// move publishes d to the parking subject and acks it in the outbox; the
// tenant's lock is held. The message id makes a repeat after a crash
// between the two a duplicate the parking stream absorbs.
func (pk *parking) move(ctx context.Context, d delivery) error {
	g := pk.g
	m := nats.NewMsg(streams.ParkedSubject(d.w.Addr))
	for name, values := range d.msg.Headers() {
		if strings.HasPrefix(name, "Nats-") {
			continue
		}
		m.Header[name] = values
	}
	m.Header.Set(streams.HeaderIdempotencyKey, d.w.IdempotencyKey)
	m.Header.Set(streams.HeaderParkedSubject, d.msg.Subject())
	m.Header.Set(streams.HeaderParkedSeq, strconv.FormatUint(d.meta.Sequence.Stream, 10))
	m.Header.Set(streams.HeaderParkedTime, d.meta.Timestamp.UTC().Format(time.RFC3339Nano))
	if d.retry.attempts > 0 {
		m.Header.Set(streams.HeaderParkedAttempts, strconv.Itoa(d.retry.attempts))
	}
	if time.Until(d.retry.notBefore) > 0 {
		m.Header.Set(streams.HeaderParkedNotBefore, d.retry.notBefore.UTC().Format(time.RFC3339Nano))
	}
	m.Data = d.msg.Data()
	id := fmt.Sprintf("parked:%s:%d", g.cfg.Streams.Stream, d.meta.Sequence.Stream)
	if _, err := g.js.PublishMsg(ctx, m, jetstream.WithMsgID(id)); err != nil {
		return fmt.Errorf("park write %d: %w", d.meta.Sequence.Stream, err)
	}
	if err := d.msg.Ack(); err != nil {
		g.log.Warn().Err(err).Uint64("seq", d.meta.Sequence.Stream).Msg("ack after parking failed; the redelivery is absorbed as a duplicate")
	}
	g.metrics.Parked.WithLabelValues(string(g.mode), g.metrics.TenantLabel(d.w.Addr.Tenant)).Inc()
	return nil
}

// unpark ends a tenant's parking if nothing is left in its parking lot.
//
// The lot is counted on the stream, which its leader answers for: the
// leader acknowledged every move, so it has stored every parked write.
// The replayer's consumer is no witness: on a cluster its leader can be a
// stream follower that has not stored the latest move yet, and a lot it
// saw empty too soon would be unparked with a write still in it, stranded
// until the tenant is parked again.
func (pk *parking) unpark(ctx context.Context, tenant, token string) (bool, error) {
	g := pk.g
	t := pk.tenant(tenant)
	t.mu.Lock()
	defer t.mu.Unlock()
	stream, err := g.js.Stream(ctx, g.cfg.Streams.ParkingStream)
	if err != nil {
		return false, err
	}
	n, err := streams.CountStored(ctx, stream, streams.ParkedFilter(g.mode, token))
	if err != nil {
		return false, err
	}
	if n > 0 {
		return false, nil // still parked, or replayed and not yet acked
	}
	if err := g.buckets.parked.Delete(ctx, streams.ParkingKey(g.mode, token)); err != nil {
		return false, err
	}
	if t.parked {
		g.metrics.ParkedTenants.WithLabelValues(string(g.mode)).Dec()
	}
	t.parked = false
	t.replayer = nil
	g.log.Info().Str("group", string(g.mode)).Str("tenant", tenant).Msg("tenant unparked: its parked writes are applied")
	return true, nil
}

// learned applies a parking bucket change seen by the watcher.
func (pk *parking) learned(tenant string, parked bool) {
	if !parked {
		pk.mu.Lock()
		_, known := pk.m[tenant]
		pk.mu.Unlock()
		if !known {
			return
		}
	}
	t := pk.tenant(tenant)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.parked != parked {
		if parked {
			pk.g.metrics.ParkedTenants.WithLabelValues(string(pk.g.mode)).Inc()
		} else {
			pk.g.metrics.ParkedTenants.WithLabelValues(string(pk.g.mode)).Dec()
		}
	}
	t.parked = parked
}

// parkedIn lists the parked tenants (and their tokens) of a partition.
func (pk *parking) parkedIn(p int) map[string]string {
	pk.mu.Lock()
	defer pk.mu.Unlock()
	out := map[string]string{}
	for tenant, t := range pk.m {
		t.mu.RLock()
		if t.parked {
			if token, err := tenancy.Encode(tenant); err == nil && streams.PartitionOf(token, pk.g.cfg.Streams.Partitions) == p {
				out[tenant] = token
			}
		}
		t.mu.RUnlock()
	}
	return out
}

// ensureReplayers starts a replayer for every parked tenant of a partition
// that has none. It is the partitions' Tend hook: called when a partition
// is taken, once it has been gathered and at every keeper tick.
func (pk *parking) ensureReplayers(pt *ownership.Partition) {
	for tenant, token := range pk.parkedIn(pt.Number()) {
		t := pk.tenant(tenant)
		t.mu.Lock()
		if t.parked && (t.replayer == nil || t.replayer.ended()) {
			t.replayer = pk.startReplayer(tenant, token, pt)
		}
		t.mu.Unlock()
	}
}

// parkedMsg is a parked write seen as the outbox write it was: its subject
// is the original one, so decoding and dead-lettering treat it alike.
type parkedMsg struct {
	jetstream.Msg
	subject string
}

func (m parkedMsg) Subject() string { return m.subject }

// Headers leaves out the parking stream's own Nats-Msg-Id: the write's id
// was checked when it was pulled from the outbox, and its key travels in
// Soma-Idempotency-Key.
func (m parkedMsg) Headers() nats.Header {
	h := m.Msg.Headers()
	if h.Get(streams.HeaderMsgID) == "" {
		return h
	}
	h = maps.Clone(h)
	delete(h, streams.HeaderMsgID)
	return h
}

// parkedDelivery decodes a parked write. Its metadata carries the original
// outbox sequence and time, so attempt counts, dead-letter ids and latency
// are those of the original write.
func parkedDelivery(msg jetstream.Msg, replyPrefixes []string) delivery {
	meta, err := msg.Metadata()
	if err != nil {
		return delivery{msg: msg, err: err}
	}
	h := msg.Headers()
	orig := *meta
	seq, err := strconv.ParseUint(h.Get(streams.HeaderParkedSeq), 10, 64)
	if err != nil {
		return delivery{msg: msg, meta: meta, w: &intake.Write{}, err: fmt.Errorf("parked write without its outbox sequence: %v", err)}
	}
	orig.Sequence.Stream = seq
	if at, err := time.Parse(time.RFC3339Nano, h.Get(streams.HeaderParkedTime)); err == nil {
		orig.Timestamp = at
	}
	pm := parkedMsg{Msg: msg, subject: h.Get(streams.HeaderParkedSubject)}
	w, err := intake.Decode(pm, seq, replyPrefixes)
	d := delivery{msg: pm, meta: &orig, w: w, err: err}
	if n, perr := strconv.Atoi(h.Get(streams.HeaderParkedAttempts)); perr == nil {
		d.retry.attempts = n
	}
	if at, perr := time.Parse(time.RFC3339Nano, h.Get(streams.HeaderParkedNotBefore)); perr == nil {
		d.retry.notBefore = at
	}
	return d
}

// catchUpParking is the partitions' Gathered hook: whatever the previous
// owner parked or unparked before letting go is read before any write of
// the partition is handled.
func (g *group) catchUpParking(pt *ownership.Partition) {
	ctx := pt.Context()
	for err := g.buckets.parking.CatchUp(ctx); err != nil && ctx.Err() == nil; err = g.buckets.parking.CatchUp(ctx) {
		g.log.Warn().Err(err).Msg("cannot read the parking bucket; retrying")
		time.Sleep(time.Second)
	}
}
