package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/jetbox-dev/jetbox/ingest"
	"github.com/jetbox-dev/jetbox/internal/config"
	"github.com/jetbox-dev/jetbox/internal/logging"
	"github.com/jetbox-dev/jetbox/internal/tracing"
	"github.com/jetbox-dev/jetbox/producer"
	"github.com/jetbox-dev/jetbox/streams"
)

// publishFlags are the flags of 'jetbox publish'.
type publishFlags struct {
	mode, op, tenant, namespace, coord, key, toCoord, toKey string
	linkType, metadata, payload, memoryType, requestID      string
	strength                                                float64
	viaGateway                                              bool
}

func newPublishCmd() *cobra.Command {
	var pf publishFlags
	cmd := &cobra.Command{
		Use:   "publish",
		Short: "Write a memory from the shell in any mode, and print the outcome as JSON",
		Example: `  jetbox publish --mode sync --namespace memory:sandbox-tenant --key hello --payload '{"text":"hello"}'
  jetbox publish --op delete --tenant sandbox-tenant --key hello
  jetbox publish --op link --tenant sandbox-tenant --key a --to-key b --link-type related`,
		Args: cobra.NoArgs,
		RunE: command(func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			return publish(cmd.Context(), cfg, pf, cmd.OutOrStdout())
		}),
	}
	f := cmd.Flags()
	f.StringVar(&pf.mode, "mode", "", "write mode: sync, fast_ack or background (default: SOMABRAIN_MEMORY_WRITE_MODE, else sync)")
	bindVar(f, "mode", "SOMABRAIN_MEMORY_WRITE_MODE")
	f.StringVar(&pf.op, "op", "store", "operation: store, delete or link")
	f.StringVar(&pf.tenant, "tenant", "", "tenant id (default: from --namespace, else SOMABRAIN_DEFAULT_TENANT)")
	f.StringVar(&pf.namespace, "namespace", "", "namespace, e.g. memory:sandbox-tenant")
	f.StringVar(&pf.coord, "coord", "", "coordinate x,y,z (store, delete; link: from)")
	f.StringVar(&pf.key, "key", "", "key to derive the coordinate from, instead of --coord")
	f.StringVar(&pf.toCoord, "to-coord", "", "link: target coordinate")
	f.StringVar(&pf.toKey, "to-key", "", "link: target key")
	f.StringVar(&pf.linkType, "link-type", "related", "link: type")
	f.Float64Var(&pf.strength, "strength", producer.DefaultLinkStrength, "link: strength, any finite number")
	f.StringVar(&pf.metadata, "metadata", "", "link: metadata, a JSON object")
	f.StringVar(&pf.payload, "payload", "{}", "store: JSON object")
	f.StringVar(&pf.memoryType, "memory-type", "episodic", "store: episodic or semantic")
	f.StringVar(&pf.requestID, "request-id", "", "X-Request-ID; with the write itself, it makes the idempotency key")
	f.BoolVar(&pf.viaGateway, "via-gateway", false, "publish through the workers' ingest gateway (ingest.memory.…), as a tenant's NATS user must")
	_ = cmd.RegisterFlagCompletionFunc("mode", cobra.FixedCompletions([]string{"sync", "fast_ack", "background"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("op", cobra.FixedCompletions([]string{"store", "delete", "link"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("memory-type", cobra.FixedCompletions([]string{"episodic", "semantic"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// publish is 'jetbox publish': one write from the shell, printed as JSON.
// The write mode is cfg's, which --mode overrides.
func publish(ctx context.Context, cfg config.Config, pf publishFlags, stdout io.Writer) error {
	m, err := streams.ParseMode(cfg.Memory.WriteMode)
	if err != nil {
		return usageError{err}
	}
	if _, err := streams.ParseOp(pf.op); err != nil {
		return usageError{fmt.Errorf("--op: %w", err)}
	}
	log := logging.New(os.Stderr, cfg.Log.Level, cfg.Log.Format)
	tp, stopTracing, err := tracing.Setup(ctx, cfg.Ops.Tracing, log)
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
	pcfg := producerConfig(cfg)
	pcfg.TracerProvider = tp
	pcfg.OnBackgroundError = func(f producer.BackgroundFailure) {
		select {
		case bgFailure <- f.Err:
		default:
		}
	}
	if pf.viaGateway {
		pcfg.SubjectPrefix = ingest.SubjectPrefix
	}
	p, err := producer.New(nc, pcfg)
	if err != nil {
		return err
	}
	opts := []producer.WriteOption{producer.WithMode(m)}
	if pf.requestID != "" {
		opts = append(opts, producer.WithRequestID(pf.requestID))
	}
	var res producer.Result
	switch pf.op {
	case "store":
		res, err = p.Store(ctx, producer.StoreRequest{Tenant: pf.tenant, Namespace: pf.namespace, Coord: pf.coord, Key: pf.key, Payload: json.RawMessage(pf.payload), MemoryType: pf.memoryType}, opts...)
	case "delete":
		res, err = p.Delete(ctx, producer.DeleteRequest{Tenant: pf.tenant, Namespace: pf.namespace, Coord: pf.coord, Key: pf.key}, opts...)
	case "link":
		link := producer.LinkRequest{Tenant: pf.tenant, Namespace: pf.namespace, FromCoord: pf.coord, FromKey: pf.key, ToCoord: pf.toCoord, ToKey: pf.toKey, LinkType: pf.linkType, Strength: &pf.strength}
		if pf.metadata != "" {
			link.Metadata = json.RawMessage(pf.metadata)
		}
		res, err = p.Link(ctx, link, opts...)
	default:
		return usageError{fmt.Errorf("unknown --op %q (allowed: store, delete, link)", pf.op)}
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
