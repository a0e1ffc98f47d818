package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/jetbox-dev/jetbox/dlq"
	"github.com/jetbox-dev/jetbox/internal/config"
	"github.com/jetbox-dev/jetbox/streams"
)

// deadLetters is 'jetbox dlq list|replay'.
func deadLetters(ctx context.Context, cfg config.Config, args []string, stdout io.Writer) error {
	if len(args) == 0 || (args[0] != "list" && args[0] != "replay") {
		return usageError{fmt.Errorf("usage: jetbox dlq list|replay [--tenant T] [--subject S] [--since T] [--until T] [--limit N]")}
	}
	verb := args[0]
	fs := flag.NewFlagSet("dlq "+verb, flag.ContinueOnError)
	fs.SetOutput(stdout)
	tenant := fs.String("tenant", "", "only this tenant's dead letters")
	subject := fs.String("subject", "", "only this original subject (wildcards allowed), e.g. memory.*.sync.store")
	since := fs.String("since", "", "dead-lettered at or after: RFC 3339 time or a duration ago (1h)")
	until := fs.String("until", "", "dead-lettered before: RFC 3339 time or a duration ago")
	limit := fs.Int("limit", 0, "at most this many (0: all)")
	asJSON := fs.Bool("json", false, "list: JSON lines instead of a table")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	f := dlq.Filter{Tenant: *tenant, Subject: *subject, Limit: *limit}
	var err error
	if f.Since, err = parseWhen(*since); err != nil {
		return usageError{fmt.Errorf("--since: %w", err)}
	}
	if f.Until, err = parseWhen(*until); err != nil {
		return usageError{fmt.Errorf("--until: %w", err)}
	}
	nc, js, err := connectJS(cfg, "jetbox dlq")
	if err != nil {
		return err
	}
	defer nc.Close()
	if verb == "replay" {
		res, err := dlq.Replay(ctx, js, cfg.Streams(), f)
		fmt.Fprintf(stdout, "replayed %d dead letters (%d failed)\n", res.Replayed, res.Failed)
		return err
	}
	list, err := dlq.List(ctx, js, cfg.Streams(), f)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		for _, d := range list {
			if err := enc.Encode(d); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	// The subject the write was published to; --json has the stored one.
	fmt.Fprintln(tw, "SEQ\tTIME\tSUBJECT\tCLASS\tSTATUS\tDELIVERIES\tERROR")
	for _, d := range list {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%d\t%s\n", d.Seq, d.Time.Format(time.RFC3339), streams.PublishSubject(d.OriginalSubject), d.Class, d.HTTPStatus, d.Deliveries, d.Error)
	}
	tw.Flush()
	fmt.Fprintf(stdout, "%d dead letters\n", len(list))
	return nil
}

// parseWhen reads an RFC 3339 time or a duration before now.
func parseWhen(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a duration", s)
	}
	return time.Now().Add(-d), nil
}
