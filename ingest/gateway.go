// Package ingest is the NATS ingest gateway: the way untrusted tenants
// publish writes.
//
// A tenant publishes a write to ingest.memory.<tenant token>.<mode>.<op>
// as a JetStream publish (a request). Every jetbox worker runs a gateway:
// one queue subscription (queue group jetbox-ingest) on those subjects.
// For each write the gateway publishes a new message to the outbox subject
// memory.<tenant token>.<mode>.<op> with the body unchanged and only the
// wire contract's headers, and with the tenant's reply subject as its
// reply: the outbox sends its PubAck (or its refusal) straight to the
// tenant, and the gateway never waits for it.
//
// Why: the nats-server obeys some publish headers itself (the
// Nats-Expected-* checks, Nats-Rollup, Nats-TTL, Nats-Schedule-*,
// Nats-Batch-*, Nats-Incr, Nats-Trace-Dest) and no stream setting refuses
// them. Published straight into the outbox, Nats-Expected-Last-Subject-Sequence
// with Nats-Expected-Last-Subject-Sequence-Subject naming another tenant's
// stored subject makes the PubAck's error tell whether that tenant has
// writes waiting, and their stream sequence. The gateway drops every such
// header (docs/SECURITY.md).
package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/jetbox-dev/jetbox/internal/text"
	"github.com/jetbox-dev/jetbox/streams"
)

// Subjects of the gateway.
const (
	// SubjectPrefix is put before an outbox subject to publish the write
	// through the gateway: ingest.memory.<tenant token>.<mode>.<op>. It is
	// the value of producer.Config.SubjectPrefix for tenants.
	SubjectPrefix = streams.IngestSubjectPrefix + "."
	// Subject is what the gateway subscribes to.
	Subject = SubjectPrefix + streams.SubjectPrefix + ".*.*.*"
	// Queue is the gateway's queue group: every worker's gateway shares
	// the writes.
	Queue = "jetbox-ingest"
)

// forwarded are the headers of the wire contract: the only ones the
// gateway puts on the outbox message, each with its first value.
var forwarded = [...]string{
	streams.HeaderMsgID,
	streams.HeaderIdempotencyKey,
	streams.HeaderTenant,
	streams.HeaderNamespace,
	streams.HeaderRequestID,
	streams.HeaderReplyTo,
	streams.HeaderTraceparent,
	streams.HeaderTracestate,
}

func isForwarded(name string) bool {
	for _, f := range forwarded {
		if name == f {
			return true
		}
	}
	return false
}

// Error codes of the gateway's refusals, in the err_code of the
// JetStream-style API error it answers with. nats-server's own codes are
// below 11000 (server/errors.json); these stay clear of them.
const (
	ErrCodeBadSubject   jetstream.ErrorCode = 19001
	ErrCodeForeignMsgID jetstream.ErrorCode = 19002
	ErrCodeUnavailable  jetstream.ErrorCode = 19003
)

// The gateway's refusals as a publisher sees them: nats.go's JetStream
// publish returns a *jetstream.APIError with the same ErrorCode, so
// errors.Is(err, ingest.ErrForeignMsgID) holds.
var (
	// ErrBadSubject: the subject is not ingest.memory.<tenant token>.<mode>.<op>
	// with a valid tenant token, mode and op.
	ErrBadSubject = &jetstream.APIError{Code: 400, ErrorCode: ErrCodeBadSubject, Description: "not a write address"}
	// ErrForeignMsgID: the Nats-Msg-Id claims another tenant's token
	// (streams.MsgIDTenantToken). Stored, it would make that tenant's
	// write with the same id vanish as a duplicate.
	ErrForeignMsgID = &jetstream.APIError{Code: 400, ErrorCode: ErrCodeForeignMsgID, Description: "Nats-Msg-Id claims another tenant"}
	// ErrUnavailable: the gateway could not publish the write (its
	// connection is down). Code 503: a publisher retries it.
	ErrUnavailable = &jetstream.APIError{Code: 503, ErrorCode: ErrCodeUnavailable, Description: "ingest gateway cannot reach the outbox"}
)

// DefaultReplyPrefixes is where a publish's reply subject must lead when
// Config.ReplyPrefixes is empty: the inboxes NATS clients make.
var DefaultReplyPrefixes = []string{streams.DefaultReplyPrefix}

// Config configures a Gateway.
type Config struct {
	// ReplyPrefixes are the prefixes a publish's reply subject must start
	// with (jetbox run passes SOMABRAIN_OUTBOX_REPLY_PREFIXES); empty means
	// DefaultReplyPrefixes.
	ReplyPrefixes []string
	Registerer    prometheus.Registerer // nil = no metrics
	Log           zerolog.Logger
}

// Gateway re-publishes tenants' writes into the outbox. Start it, Stop it.
type Gateway struct {
	nc            *nats.Conn
	sub           *nats.Subscription
	replyPrefixes []string
	metrics       *metrics
}

// Start subscribes the gateway on nc, in the queue group Queue. The
// connection's user needs to subscribe to Subject in that queue group and
// to publish to the outbox's subjects and to the reply prefixes.
func Start(nc *nats.Conn, cfg Config) (*Gateway, error) {
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("ingest: metrics: %w", err)
	}
	g := &Gateway{nc: nc, replyPrefixes: cfg.ReplyPrefixes, metrics: m}
	if len(g.replyPrefixes) == 0 {
		g.replyPrefixes = DefaultReplyPrefixes
	}
	g.sub, err = nc.QueueSubscribe(Subject, Queue, g.handle)
	if err != nil {
		return nil, fmt.Errorf("ingest: subscribe %s: %w", Subject, err)
	}
	// A denied subscription comes back asynchronously; the flush makes it
	// arrive before the gateway counts as started.
	if err := nc.Flush(); err != nil {
		g.sub.Unsubscribe()
		return nil, fmt.Errorf("ingest: subscribe %s: %w", Subject, err)
	}
	if err := nc.LastError(); err != nil && errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), Subject) {
		g.sub.Unsubscribe()
		return nil, fmt.Errorf("ingest: subscribe %s in queue %s: %w", Subject, Queue, err)
	}
	cfg.Log.Info().Str("subject", Subject).Str("queue", Queue).Msg("ingest gateway subscribed")
	return g, nil
}

// Stop unsubscribes and forwards the writes already received, until ctx
// ends. Writes still queued for this gateway's subscription when ctx ends
// are lost; their publishers get no PubAck and publish them again.
func (g *Gateway) Stop(ctx context.Context) error {
	closed := g.sub.StatusChanged(nats.SubscriptionClosed)
	if err := g.sub.Drain(); err != nil {
		if errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrBadSubscription) {
			return nil
		}
		return fmt.Errorf("ingest: stop: %w", err)
	}
	select {
	case <-closed:
		return nil
	case <-ctx.Done():
		g.sub.Unsubscribe()
		return fmt.Errorf("ingest: stop: %w", ctx.Err())
	}
}

// handle forwards one write. It runs on the subscription's goroutine, one
// write at a time, and never waits for the outbox: the outbox answers the
// publisher directly.
func (g *Gateway) handle(req *nats.Msg) {
	if req.Reply == "" {
		// A plain publish: no PubAck could reach its publisher, who would
		// never know whether the write was stored.
		g.metrics.refused(reasonNoReply)
		return
	}
	if !g.replyAllowed(req.Reply) {
		// The outbox publishes its PubAck to the reply subject, inside
		// the account: a reply of memory.<another tenant>... would store
		// the PubAck there. Nobody to answer: the reply is the problem.
		g.metrics.refused(reasonBadReply)
		return
	}
	outbox, ok := strings.CutPrefix(req.Subject, SubjectPrefix)
	addr, err := streams.ParseSubject(outbox)
	if !ok || err != nil || addr.Partition >= 0 {
		reason := "want ingest.memory.<tenant token>.<mode>.<op>"
		if err != nil {
			reason = err.Error()
		}
		g.refuse(req.Reply, ErrBadSubject, reason, reasonBadSubject)
		return
	}
	out := &nats.Msg{Subject: outbox, Reply: req.Reply, Data: req.Data, Header: make(nats.Header, len(forwarded))}
	for name, values := range req.Header {
		if !isForwarded(name) {
			g.metrics.dropped(name)
			continue
		}
		// Empty counts as absent; a repeated header's first value is the
		// one the contract uses.
		if len(values) > 0 && values[0] != "" {
			out.Header[name] = values[:1]
		}
	}
	if claimed, ok := streams.MsgIDTenantToken(out.Header.Get(streams.HeaderMsgID)); ok && claimed != addr.Token {
		g.refuse(req.Reply, ErrForeignMsgID, fmt.Sprintf("%s claims tenant token %q, not the subject's %q", streams.HeaderMsgID, text.Clip(claimed, 64), text.Clip(addr.Token, 64)), reasonForeignMsgID)
		return
	}
	if err := g.nc.PublishMsg(out); err != nil {
		g.refuse(req.Reply, ErrUnavailable, "", reasonUnavailable)
		return
	}
	g.metrics.forwarded.Inc()
}

// replyAllowed accepts what a worker would accept as a Soma-Reply-To: a
// literal subject under one of the reply prefixes, outside jetbox's and
// the server's own subjects.
func (g *Gateway) replyAllowed(reply string) bool {
	return streams.CheckReplyTo(reply, g.replyPrefixes) == nil
}

// apiErrorReply is the body of a JetStream API error, which nats.go's
// JetStream publish turns into a *jetstream.APIError.
type apiErrorReply struct {
	Error jetstream.APIError `json:"error"`
}

// refuse answers the publisher with e, its description extended by
// detail, and counts the refusal.
func (g *Gateway) refuse(reply string, e *jetstream.APIError, detail string, reason string) {
	g.metrics.refused(reason)
	answer := apiErrorReply{Error: *e}
	if detail != "" {
		answer.Error.Description += ": " + detail
	}
	body, err := json.Marshal(answer)
	if err != nil {
		return
	}
	// Best effort: if this is lost too, the publisher's ack times out.
	g.nc.Publish(reply, body)
}
