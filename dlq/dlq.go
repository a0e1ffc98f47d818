// Package dlq owns the dead letter: writes the workers could not apply,
// kept in the dead-letter stream with the reason. It builds a dead letter
// from a failed write (Letter, the format a worker stores) and lists,
// shows, replays and drops the stored ones.
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

// DeadLetter is one stored dead letter.
type DeadLetter struct {
	Seq             uint64      `json:"seq"`              // in the dead-letter stream
	OriginalSubject string      `json:"original_subject"` // as the outbox stored it, partition token included
	OriginalSeq     uint64      `json:"original_seq"`
	Group           string      `json:"group"`
	Class           string      `json:"class"`
	Error           string      `json:"error"`
	HTTPStatus      int         `json:"http_status,omitempty"` // 0: the write never reached the memory API
	Answer          string      `json:"answer,omitempty"`
	Deliveries      int         `json:"deliveries"`
	IdempotencyKey  string      `json:"idempotency_key"`
	Time            time.Time   `json:"time"`
	Header          nats.Header `json:"-"`
	Data            []byte      `json:"-"`
}

// ErrNotFound says the dead-letter stream holds no message at a sequence.
var ErrNotFound = errors.New("no such dead letter")

func fromMsg(subject string, h nats.Header, data []byte, seq uint64, stored time.Time) DeadLetter {
	atoi := func(name string) int { n, _ := strconv.Atoi(h.Get(name)); return n }
	origSeq, _ := strconv.ParseUint(h.Get(streams.HeaderDLQStreamSeq), 10, 64)
	original := h.Get(streams.HeaderDLQSubject)
	if original == "" {
		original = streams.SubjectPrefix + strings.TrimPrefix(subject, streams.DLQSubjectPrefix)
	}
	return DeadLetter{
		Seq:             seq,
		OriginalSubject: original,
		OriginalSeq:     origSeq,
		Group:           h.Get(streams.HeaderDLQGroup),
		Class:           h.Get(streams.HeaderDLQClass),
		Error:           h.Get(streams.HeaderDLQError),
		HTTPStatus:      atoi(streams.HeaderDLQHTTPStatus),
		Answer:          h.Get(streams.HeaderDLQAnswer),
		Deliveries:      atoi(streams.HeaderDLQDeliveries),
		IdempotencyKey:  h.Get(streams.HeaderIdempotencyKey),
		Time:            stored,
		Header:          h,
		Data:            data,
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

// Get returns the dead letter at seq, or an error wrapping ErrNotFound.
func Get(ctx context.Context, js jetstream.JetStream, cfg streams.Config, seq uint64) (DeadLetter, error) {
	stream, err := js.Stream(ctx, cfg.DLQStream)
	if err != nil {
		return DeadLetter{}, fmt.Errorf("dead-letter stream %s: %w", cfg.DLQStream, err)
	}
	msg, err := stream.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return DeadLetter{}, fmt.Errorf("%w at sequence %d in %s (replayed, dropped, aged out, or never there)", ErrNotFound, seq, cfg.DLQStream)
	}
	if err != nil {
		return DeadLetter{}, err
	}
	return fromMsg(msg.Subject, msg.Header, msg.Data, msg.Sequence, msg.Time), nil
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
	var lastSeq uint64 // 0: no upper end
	switch {
	case len(f.Seqs) > 0:
		var first uint64
		first, lastSeq = f.Seqs.bounds()
		occ.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		occ.OptStartSeq = first
	case !f.Since.IsZero():
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
			if lastSeq != 0 && meta.Sequence.Stream > lastSeq {
				return nil
			}
			if d := fromMsg(msg.Subject(), msg.Headers(), msg.Data(), meta.Sequence.Stream, meta.Timestamp); f.matches(d) {
				if err := fn(d); err != nil {
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
	Refused  int `json:"refused"` // bad_input dead letters left in place
}

// ReplayOption changes what Replay does.
type ReplayOption func(*replayOptions)

type replayOptions struct {
	force    bool
	progress func(ReplayResult)
}

// Force replays bad_input dead letters too.
func Force() ReplayOption { return func(o *replayOptions) { o.force = true } }

// WithProgress has fn called with the counts so far after every dead
// letter Replay handles.
func WithProgress(fn func(ReplayResult)) ReplayOption {
	return func(o *replayOptions) { o.progress = fn }
}

// Refused says whether Replay leaves d in place unless forced: a write
// that could not be decoded or validated fails the same way when it comes
// back, and is only dead-lettered again.
func (d DeadLetter) Refused() bool { return d.Class == string(streams.ClassBadInput) }

// Replay republishes the selected dead letters to their original publish
// subjects with a fresh Nats-Msg-Id (the old one may still be inside the
// duplicate window) and their original Soma-Idempotency-Key, so the memory
// API applies each at most once however often it is replayed. A dead letter
// is removed only after the outbox stored its replay. bad_input dead
// letters are left in place and counted as refused, unless Force.
//
// The original subject a worker records is the one the outbox stored the
// write under, partition token included; the outbox takes only the four
// tokens a producer publishes, and partitions the replay again itself.
func Replay(ctx context.Context, js jetstream.JetStream, cfg streams.Config, f Filter, opts ...ReplayOption) (ReplayResult, error) {
	var o replayOptions
	for _, opt := range opts {
		opt(&o)
	}
	var res ReplayResult
	stream, err := js.Stream(ctx, cfg.DLQStream)
	if err != nil {
		return res, fmt.Errorf("dead-letter stream %s: %w", cfg.DLQStream, err)
	}
	err = each(ctx, js, cfg, f, func(d DeadLetter) error {
		if o.progress != nil {
			defer func() { o.progress(res) }()
		}
		if d.Refused() && !o.force {
			res.Refused++
			return nil
		}
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

// Drop removes the dead letters at seqs for good and returns how many it
// removed; one already gone is not counted.
func Drop(ctx context.Context, js jetstream.JetStream, cfg streams.Config, seqs []uint64) (int, error) {
	stream, err := js.Stream(ctx, cfg.DLQStream)
	if err != nil {
		return 0, fmt.Errorf("dead-letter stream %s: %w", cfg.DLQStream, err)
	}
	dropped := 0
	for _, seq := range seqs {
		err := stream.DeleteMsg(ctx, seq)
		if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			// Past the stream's last sequence the server answers with
			// another error; the message is gone all the same.
			if _, getErr := stream.GetMsg(ctx, seq); errors.Is(getErr, jetstream.ErrMsgNotFound) {
				err = getErr
			}
		}
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
		case err != nil:
			return dropped, fmt.Errorf("drop dead letter %d: %w", seq, err)
		default:
			dropped++
		}
	}
	return dropped, nil
}

// replayMsgID is a replay's fresh Nats-Msg-Id, "<tenant token>:replay:<UUID
// v7>": workers refuse an id that claims a tenant other than its subject's.
func replayMsgID(subject string, id uuid.UUID) string {
	if addr, err := streams.ParseSubject(subject); err == nil {
		return addr.Token + ":replay:" + id.String()
	}
	return "replay:" + id.String()
}
