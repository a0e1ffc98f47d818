// Package dlq lists and replays dead letters: writes the workers could not
// apply, kept in the dead-letter stream with the reason.
package dlq

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetbox-dev/jetbox/streams"
)

// Filter selects dead letters. Zero fields select everything.
type Filter struct {
	Tenant  string    // raw tenant id
	Subject string    // original outbox subject, wildcards allowed (memory.*.sync.store); a stored subject's partition token is ignored
	Since   time.Time // dead-lettered at or after
	Until   time.Time // dead-lettered before
	Limit   int       // at most this many; 0 = no limit
}

// ErrBadFilter says a filter cannot select anything meaningful.
var ErrBadFilter = errors.New("bad dead-letter filter")

func (f Filter) subject() (string, error) {
	all := streams.DLQSubjectPrefix + ".>"
	if f.Subject != "" && f.Subject != streams.SubjectPrefix+".>" && !strings.HasPrefix(f.Subject, streams.SubjectPrefix+".") {
		return "", fmt.Errorf("%w: subject %q is not an outbox subject (memory.<tenant>.<mode>.<op>)", ErrBadFilter, f.Subject)
	}
	subject := all
	if f.Subject != "" {
		subject = streams.DLQSubjectFor(f.Subject)
	}
	if f.Tenant == "" {
		return subject, nil
	}
	tenantFilter, err := streams.TenantDLQFilter(f.Tenant)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadFilter, err)
	}
	token := strings.Split(tenantFilter, ".")[1]
	// The tenant fills the subject's tenant token: a literal must match it,
	// a wildcard is narrowed to it.
	parts := strings.Split(subject, ".")
	switch parts[1] {
	case token:
	case "*":
		parts[1] = token
	case ">":
		parts = []string{parts[0], token, ">"}
	default:
		return "", fmt.Errorf("%w: subject %q is not tenant %q's", ErrBadFilter, f.Subject, f.Tenant)
	}
	return strings.Join(parts, "."), nil
}

// DeadLetter is one stored dead letter.
type DeadLetter struct {
	Seq             uint64      `json:"seq"`              // in the dead-letter stream
	OriginalSubject string      `json:"original_subject"` // as the outbox stored it, partition token included
	OriginalSeq     uint64      `json:"original_seq"`
	Group           string      `json:"group"`
	Class           string      `json:"class"`
	Error           string      `json:"error"`
	HTTPStatus      int         `json:"http_status,omitempty"`
	Answer          string      `json:"answer,omitempty"`
	Deliveries      int         `json:"deliveries"`
	IdempotencyKey  string      `json:"idempotency_key"`
	Time            time.Time   `json:"time"`
	Header          nats.Header `json:"-"`
	Data            []byte      `json:"-"`
}

func fromMsg(msg jetstream.Msg, meta *jetstream.MsgMetadata) DeadLetter {
	h := msg.Headers()
	atoi := func(name string) int { n, _ := strconv.Atoi(h.Get(name)); return n }
	origSeq, _ := strconv.ParseUint(h.Get(streams.HeaderDLQStreamSeq), 10, 64)
	subject := h.Get(streams.HeaderDLQSubject)
	if subject == "" {
		subject = streams.SubjectPrefix + strings.TrimPrefix(msg.Subject(), streams.DLQSubjectPrefix)
	}
	return DeadLetter{
		Seq:             meta.Sequence.Stream,
		OriginalSubject: subject,
		OriginalSeq:     origSeq,
		Group:           h.Get(streams.HeaderDLQGroup),
		Class:           h.Get(streams.HeaderDLQClass),
		Error:           h.Get(streams.HeaderDLQError),
		HTTPStatus:      atoi(streams.HeaderDLQHTTPStatus),
		Answer:          h.Get(streams.HeaderDLQAnswer),
		Deliveries:      atoi(streams.HeaderDLQDeliveries),
		IdempotencyKey:  h.Get(streams.HeaderIdempotencyKey),
		Time:            meta.Timestamp,
		Header:          h,
		Data:            msg.Data(),
	}
}

// List returns the dead letters the filter selects, oldest first.
func List(ctx context.Context, js jetstream.JetStream, cfg streams.Config, f Filter) ([]DeadLetter, error) {
	var out []DeadLetter
	err := each(ctx, js, cfg, f, func(d DeadLetter) error {
		out = append(out, d)
		return nil
	})
	return out, err
}

// each walks the selected dead letters with an ordered consumer, which
// needs no durable state and leaves the stream as it is.
func each(ctx context.Context, js jetstream.JetStream, cfg streams.Config, f Filter, fn func(DeadLetter) error) error {
	subject, err := f.subject()
	if err != nil {
		return err
	}
	stream, err := js.Stream(ctx, cfg.DLQStream)
	if err != nil {
		return fmt.Errorf("dead-letter stream %s: %w", cfg.DLQStream, err)
	}
	occ := jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}, DeliverPolicy: jetstream.DeliverAllPolicy}
	if !f.Since.IsZero() {
		occ.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		occ.OptStartTime = &f.Since
	}
	cons, err := stream.OrderedConsumer(ctx, occ)
	if err != nil {
		return err
	}
	if info, err := cons.Info(ctx); err != nil {
		return err
	} else if info.NumPending == 0 {
		return nil
	}
	seen := 0
	for {
		batch, err := cons.Fetch(256, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return err
		}
		got := 0
		for msg := range batch.Messages() {
			got++
			meta, err := msg.Metadata()
			if err != nil {
				return err
			}
			if f.Until.IsZero() || meta.Timestamp.Before(f.Until) {
				if err := fn(fromMsg(msg, meta)); err != nil {
					return err
				}
				seen++
				if f.Limit > 0 && seen >= f.Limit {
					return nil
				}
			}
			if meta.NumPending == 0 {
				return nil
			}
		}
		if err := batch.Error(); err != nil {
			return err
		}
		if got == 0 {
			return nil
		}
	}
}

// ReplayResult counts what Replay did.
type ReplayResult struct {
	Replayed int `json:"replayed"`
	Failed   int `json:"failed"`
}

// Replay republishes the selected dead letters to their original publish
// subjects with a fresh Nats-Msg-Id (the old one may still be inside the
// duplicate window) and their original Soma-Idempotency-Key, so the memory
// API applies each at most once however often it is replayed. A dead letter
// is removed only after the outbox stored its replay.
//
// The original subject a worker records is the one the outbox stored the
// write under, partition token included; the outbox takes only the four
// tokens a producer publishes, and partitions the replay again itself.
func Replay(ctx context.Context, js jetstream.JetStream, cfg streams.Config, f Filter) (ReplayResult, error) {
	var res ReplayResult
	stream, err := js.Stream(ctx, cfg.DLQStream)
	if err != nil {
		return res, fmt.Errorf("dead-letter stream %s: %w", cfg.DLQStream, err)
	}
	err = each(ctx, js, cfg, f, func(d DeadLetter) error {
		subject := streams.PublishSubject(d.OriginalSubject)
		msg := nats.NewMsg(subject)
		for name, values := range d.Header {
			if strings.HasPrefix(name, "Soma-Dlq-") || strings.HasPrefix(name, "Nats-") || name == streams.HeaderReplyTo {
				continue
			}
			msg.Header[name] = values
		}
		msg.Data = d.Data
		id, err := uuid.NewV7()
		if err != nil {
			return err
		}
		if _, err := js.PublishMsg(ctx, msg, jetstream.WithMsgID(replayMsgID(subject, id))); err != nil {
			res.Failed++
			return fmt.Errorf("replay dead letter %d to %s: %w", d.Seq, subject, err)
		}
		res.Replayed++
		if err := stream.DeleteMsg(ctx, d.Seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return fmt.Errorf("remove replayed dead letter %d: %w", d.Seq, err)
		}
		return nil
	})
	return res, err
}

// replayMsgID is a replay's fresh Nats-Msg-Id, "<tenant token>:replay:<UUID
// v7>": workers refuse an id that claims a tenant other than its subject's.
func replayMsgID(subject string, id uuid.UUID) string {
	if addr, err := streams.ParseSubject(subject); err == nil {
		return addr.Token + ":replay:" + id.String()
	}
	return "replay:" + id.String()
}
