package ownership

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// AckedCheck ends a gather once the pending count has passed: a write
// delivered more than once among those gathered may since have been acked
// by the worker (or replayer) it was first delivered to, and counted here
// it would stand in for a write still pending there. The zero value is
// ready; one AckedCheck serves one gather.
type AckedCheck struct {
	// confirmed: the last check found nothing acked elsewhere, with
	// writes delivered more than once among those gathered.
	confirmed bool
}

// Passed is called when the pending count is no more than the writes
// gathered. It returns the gathered writes still to run, those acked
// elsewhere (no longer to be held), and whether the gather may end: when
// none was acked elsewhere and, if any was delivered more than once, a
// previous check found the same. An ack leaves the consumer's pending
// count a moment before its write leaves the stream, so a second check, a
// little later, sees it gone. The stream is asked for at most 2 s; a
// failed ask ends nothing.
func (c *AckedCheck) Passed(ctx context.Context, nc *nats.Conn, stream string, gathered []jetstream.Msg) (kept, gone []jetstream.Msg, done bool) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	kept, gone, err := dropAcked(ctx, nc, stream, gathered)
	if err != nil {
		c.confirmed = false
		return gathered, nil, false
	}
	done = len(gone) == 0 && (c.confirmed || !deliveredAgain(kept))
	c.confirmed = len(gone) == 0
	return kept, gone, done
}

// Failed is called when the pending count is more than the writes
// gathered, or the gather starts again.
func (c *AckedCheck) Failed() { c.confirmed = false }

// dropAcked splits msgs into those still to run and those gone: a
// message delivered more than once may have been acked, after its ack
// timer ran out, by the worker it was delivered to before (cut off from
// NATS, or behind a consumer leader that lost its in-progress updates).
// The stream is a work queue, so an acked message is no longer in it. The
// stream leader is asked, not a direct get, which any replica may answer
// before it has stored the message. A message delivered once was
// delivered nowhere else and is kept without asking.
func dropAcked(ctx context.Context, nc *nats.Conn, stream string, msgs []jetstream.Msg) (kept, gone []jetstream.Msg, err error) {
	for _, m := range msgs {
		meta, merr := m.Metadata()
		if merr != nil || meta.NumDelivered < 2 {
			kept = append(kept, m)
			continue
		}
		stored, err := storedOnLeader(ctx, nc, stream, meta.Sequence.Stream)
		if err != nil {
			return msgs, nil, err
		}
		if stored {
			kept = append(kept, m)
		} else {
			gone = append(gone, m)
		}
	}
	return kept, gone, nil
}

// errNoMessageFound is JetStream's error code for a sequence the stream
// does not hold.
const errNoMessageFound = 10037

// storedOnLeader asks the stream's leader whether it holds seq.
func storedOnLeader(ctx context.Context, nc *nats.Conn, stream string, seq uint64) (bool, error) {
	req, err := json.Marshal(struct {
		Seq uint64 `json:"seq"`
	}{seq})
	if err != nil {
		return false, err
	}
	resp, err := nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+stream, req)
	if err != nil {
		return false, err
	}
	var answer struct {
		Error *struct {
			Code        int    `json:"code"`
			ErrCode     int    `json:"err_code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(resp.Data, &answer); err != nil {
		return false, fmt.Errorf("message get answer: %w", err)
	}
	switch {
	case answer.Error == nil:
		return true, nil
	case answer.Error.ErrCode == errNoMessageFound:
		return false, nil
	default:
		return false, fmt.Errorf("message get: %s (%d, %d)", answer.Error.Description, answer.Error.Code, answer.Error.ErrCode)
	}
}

// deliveredAgain says whether any of msgs was delivered more than once.
func deliveredAgain(msgs []jetstream.Msg) bool {
	for _, m := range msgs {
		if meta, err := m.Metadata(); err == nil && meta.NumDelivered > 1 {
			return true
		}
	}
	return false
}
