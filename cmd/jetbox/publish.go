package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/rs/zerolog"

	"github.com/jetbox-dev/jetbox/ingest"
	"github.com/jetbox-dev/jetbox/internal/config"
	"github.com/jetbox-dev/jetbox/internal/tracing"
	"github.com/jetbox-dev/jetbox/producer"
	"github.com/jetbox-dev/jetbox/streams"
)

// publish is 'jetbox publish': one write from the shell, printed as JSON.
func publish(ctx context.Context, cfg config.Config, args []string, stdout io.Writer, log zerolog.Logger) error {
	fs := flag.NewFlagSet("publish", flag.ContinueOnError)
	fs.SetOutput(stdout)
	mode := fs.String("mode", cfg.WriteMode, "write mode: sync, fast_ack or background")
	op := fs.String("op", "store", "operation: store, delete or link")
	tenant := fs.String("tenant", "", "tenant id (default: from --namespace, else SOMABRAIN_DEFAULT_TENANT)")
	namespace := fs.String("namespace", "", "namespace, e.g. memory:sandbox-tenant")
	coord := fs.String("coord", "", "coordinate x,y,z (store, delete; link: from)")
	key := fs.String("key", "", "key to derive the coordinate from, instead of --coord")
	toCoord := fs.String("to-coord", "", "link: target coordinate")
	toKey := fs.String("to-key", "", "link: target key")
	linkType := fs.String("link-type", "related", "link: type")
	strength := fs.Float64("strength", producer.DefaultLinkStrength, "link: strength, any finite number")
	metadata := fs.String("metadata", "", "link: metadata, a JSON object")
	payload := fs.String("payload", "{}", "store: JSON object")
	memoryType := fs.String("memory-type", "episodic", "store: episodic or semantic")
	requestID := fs.String("request-id", "", "X-Request-ID; with the write itself, it makes the idempotency key")
	viaGateway := fs.Bool("via-gateway", false, "publish through the workers' ingest gateway (ingest.memory.…), as a tenant's NATS user must")
	if err := fs.Parse(args); err != nil {
		return err
	}
	m, err := streams.ParseMode(*mode)
	if err != nil {
		return usageError{err}
	}
	tp, stopTracing, err := tracing.Setup(ctx, cfg.Tracing, log)
	if err != nil {
		return err
	}
	defer flushSpans(ctx, stopTracing, log)
	nc, err := connect(cfg, "jetbox publish")
	if err != nil {
		return err
	}
	defer nc.Close()
	// A background write's failure comes after the call, by the time
	// Close has returned.
	bgFailure := make(chan error, 1)
	pcfg := producer.Config{
		Mode: m, DefaultTenant: cfg.DefaultTenant, Universe: cfg.Universe,
		SyncTimeout: cfg.SyncTimeout, PublishTimeout: cfg.PublishTimeout, BufferSize: cfg.BufferSize,
		TracerProvider: tp,
		OnBackgroundError: func(f producer.BackgroundFailure) {
			select {
			case bgFailure <- f.Err:
			default:
			}
		},
	}
	if *viaGateway {
		pcfg.SubjectPrefix = ingest.SubjectPrefix
	}
	p, err := producer.New(nc, pcfg)
	if err != nil {
		return err
	}
	opts := []producer.WriteOption{producer.WithMode(m)}
	if *requestID != "" {
		opts = append(opts, producer.WithRequestID(*requestID))
	}
	var res producer.Result
	switch *op {
	case "store":
		res, err = p.Store(ctx, producer.StoreRequest{Tenant: *tenant, Namespace: *namespace, Coord: *coord, Key: *key, Payload: json.RawMessage(*payload), MemoryType: *memoryType}, opts...)
	case "delete":
		res, err = p.Delete(ctx, producer.DeleteRequest{Tenant: *tenant, Namespace: *namespace, Coord: *coord, Key: *key}, opts...)
	case "link":
		link := producer.LinkRequest{Tenant: *tenant, Namespace: *namespace, FromCoord: *coord, FromKey: *key, ToCoord: *toCoord, ToKey: *toKey, LinkType: *linkType, Strength: strength}
		if *metadata != "" {
			link.Metadata = json.RawMessage(*metadata)
		}
		res, err = p.Link(ctx, link, opts...)
	default:
		return usageError{fmt.Errorf("unknown --op %q (allowed: store, delete, link)", *op)}
	}
	if closeErr := p.Close(ctx); err == nil {
		err = closeErr
	}
	select {
	case failure := <-bgFailure:
		err = errors.Join(err, failure)
	default:
	}
	if errors.Is(err, producer.ErrTenantBacklogFull) {
		err = fmt.Errorf("%w (the tenant quota, SOMABRAIN_OUTBOX_TENANT_MAX_PENDING of the workers: retry once they have applied some)", err)
	}
	out := map[string]any{
		"mode": res.Mode, "subject": res.Subject, "seq": res.Sequence, "duplicate": res.Duplicate,
		"msg_id": res.MsgID, "idempotency_key": res.IdempotencyKey, "coord": res.Coord,
	}
	var queued *producer.QueuedError
	switch {
	case errors.As(err, &queued):
		out["outcome"] = "queued"
		err = nil
	case err != nil:
		return err
	case m == streams.ModeSync:
		out["outcome"] = "applied"
		out["status"] = res.Status
		out["answer"] = json.RawMessage(res.Body)
		if !json.Valid(res.Body) {
			out["answer"] = string(res.Body)
		}
	default:
		out["outcome"] = "stored"
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
