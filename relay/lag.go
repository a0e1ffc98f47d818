package relay

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetbox-dev/jetbox/streams"
)

// Lag is what a relay records about the table in the status bucket, under
// its ID, for 'jetbox status'.
type Lag struct {
	Relay       string    `json:"relay"`
	Pending     int64     `json:"pending"`      // rows of carried topics waiting
	LeftPending int64     `json:"left_pending"` // rows of other topics, left alone
	OldestAge   float64   `json:"oldest_pending_seconds"`
	LastSuccess time.Time `json:"last_success,omitzero"`
	Updated     time.Time `json:"updated"`
}

// lagInterval is how often a relay measures and records its lag.
var lagInterval = 5 * time.Second

// statusTTL: a relay's record disappears this long after its last update.
const statusTTL = 10 * time.Minute

// reportLag measures the lag every lagInterval until ctx ends, sets the
// gauges and records it in the status bucket. Failures are logged at
// debug level: the lag is a report, not the relay's work.
func (r *Relay) reportLag(ctx context.Context) {
	var kv jetstream.KeyValue
	ticker := time.NewTicker(lagInterval)
	defer ticker.Stop()
	for {
		lag, err := r.measureLag(ctx)
		if err == nil {
			r.metrics.pending.Set(float64(lag.Pending))
			r.metrics.leftPending.Set(float64(lag.LeftPending))
			r.metrics.oldestPending.Set(lag.OldestAge)
			if !lag.LastSuccess.IsZero() {
				r.metrics.lastSuccess.Set(float64(lag.LastSuccess.UnixNano()) / 1e9)
			}
			if kv == nil {
				kv, err = r.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
					Bucket: r.cfg.StatusBucket, Description: "jetbox relay: lag of SomaBrain's outbox_events table, per relay",
					History: 1, TTL: statusTTL,
				})
			}
			if err == nil {
				value, _ := json.Marshal(lag)
				_, err = kv.Put(ctx, r.cfg.ID, value)
			}
		}
		if err != nil && ctx.Err() == nil {
			r.log.Debug().Err(err).Msg("relay: lag not recorded")
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

func (r *Relay) measureLag(ctx context.Context) (Lag, error) {
	lag := Lag{Relay: r.cfg.ID}
	var oldest *time.Time
	err := r.pool.QueryRow(ctx, `SELECT
  count(*) FILTER (WHERE topic = ANY($1)),
  count(*) FILTER (WHERE NOT topic = ANY($1)),
  min(created_at) FILTER (WHERE topic = ANY($1))
FROM outbox_events WHERE status = 'pending'`, CarriedTopics).Scan(&lag.Pending, &lag.LeftPending, &oldest)
	if err != nil {
		return lag, redactErr(err, r.pool.Config().ConnConfig)
	}
	lag.Updated = time.Now().UTC()
	if oldest != nil {
		lag.OldestAge = max(lag.Updated.Sub(*oldest).Seconds(), 0)
	}
	if ns := r.lastSuccess.Load(); ns != 0 {
		lag.LastSuccess = time.Unix(0, ns).UTC()
	}
	return lag, nil
}

// ReadLag returns every relay's latest record in the status bucket, by
// relay id; none when no relay has reported.
func ReadLag(ctx context.Context, js jetstream.JetStream, bucket string) ([]Lag, error) {
	entries, err := streams.ReadBucket(ctx, js, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Lag
	for _, e := range entries {
		var l Lag
		if json.Unmarshal(e.Value(), &l) == nil {
			l.Relay = e.Key()
			out = append(out, l)
		}
	}
	slices.SortFunc(out, func(a, b Lag) int { return strings.Compare(a.Relay, b.Relay) })
	return out, nil
}
