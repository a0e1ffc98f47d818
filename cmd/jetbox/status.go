package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetbox-dev/jetbox/consumer"
	"github.com/jetbox-dev/jetbox/internal/config"
	"github.com/jetbox-dev/jetbox/streams"
)

// status is 'jetbox status': per group the consumer's counts from
// JetStream, per tenant the breaker state every running worker reports.
func status(ctx context.Context, cfg config.Config, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stdout)
	wait := fs.Duration("wait", time.Second, "how long to collect answers from workers")
	if err := fs.Parse(args); err != nil {
		return err
	}
	nc, js, err := connectJS(cfg, "jetbox status")
	if err != nil {
		return err
	}
	defer nc.Close()
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tPENDING\tACK PENDING\tREDELIVERED\tWAITING PULLS")
	for _, m := range streams.Modes {
		info, err := func() (*jetstream.ConsumerInfo, error) {
			c, err := js.Consumer(ctx, cfg.Stream, streams.ConsumerName(m))
			if err != nil {
				return nil, err
			}
			return c.Info(ctx)
		}()
		if err != nil {
			fmt.Fprintf(tw, "%s\t%v\n", m, err)
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\n", m, info.NumPending, info.NumAckPending, info.NumRedelivered, info.NumWaiting)
	}
	tw.Flush()

	workers, err := gatherStatus(nc, *wait)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\n%d workers answered\n", len(workers))
	tw = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKER\tGROUP\tTENANT\tBREAKER\tCONSECUTIVE FAILURES")
	for _, w := range workers {
		for _, g := range w.Groups {
			for _, b := range g.Breakers {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", w.Worker, g.Group, b.Tenant, b.State, b.ConsecutiveFailures)
			}
		}
	}
	return tw.Flush()
}

// gatherStatus asks every worker at once and collects answers for wait.
func gatherStatus(nc *nats.Conn, wait time.Duration) ([]consumer.Status, error) {
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest(consumer.StatusSubject, inbox, nil); err != nil {
		return nil, err
	}
	var out []consumer.Status
	deadline := time.Now().Add(wait)
	for {
		msg, err := sub.NextMsg(time.Until(deadline))
		if err != nil {
			return out, nil
		}
		var s consumer.Status
		if json.Unmarshal(msg.Data, &s) == nil {
			out = append(out, s)
		}
	}
}
