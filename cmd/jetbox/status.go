package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetbox-dev/jetbox/consumer"
	"github.com/jetbox-dev/jetbox/internal/config"
	"github.com/jetbox-dev/jetbox/relay"
	"github.com/jetbox-dev/jetbox/streams"
)

// status is 'jetbox status': per group the counts of its partition
// consumers from JetStream, the live workers from the members bucket, and
// per tenant the breaker state every running worker reports.
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
	scfg := cfg.Streams()
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tPARTITIONS\tPINNED\tPENDING\tACK PENDING\tREDELIVERED\tWAITING PULLS")
	if groups, err := partitionCounts(ctx, js, scfg.Stream); err != nil {
		fmt.Fprintf(tw, "%s\t%v\n", scfg.Stream, err)
	} else {
		for _, m := range streams.Modes {
			g := groups[m]
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\n", m, g.partitions, g.pinned, g.pending, g.ackPending, g.redelivered, g.waiting)
		}
	}
	tw.Flush()

	members, err := liveMembers(ctx, js, scfg.MembersBucket)
	if err != nil {
		fmt.Fprintf(stdout, "\nmembers bucket %s: %v\n", scfg.MembersBucket, err)
	} else {
		fmt.Fprintf(stdout, "\n%d live workers\n", len(members))
		tw = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "WORKER\tHOST\tPID")
		for _, m := range members {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", m.id, orDash(m.Host), orDash(m.PID.String()))
		}
		tw.Flush()
	}

	printRelayLag(ctx, js, stdout)

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

// printRelayLag prints what each 'jetbox relay' last recorded about
// SomaBrain's outbox_events table.
func printRelayLag(ctx context.Context, js jetstream.JetStream, stdout io.Writer) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	lags, err := relay.ReadLag(ctx, js, relay.DefaultStatusBucket)
	switch {
	case err != nil:
		fmt.Fprintf(stdout, "\nrelay: %v\n", err)
		return
	case len(lags) == 0:
		fmt.Fprintln(stdout, "\nrelay: none has reported")
		return
	}
	fmt.Fprintf(stdout, "\nrelay: %d reporting\n", len(lags))
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RELAY\tPENDING\tOLDEST PENDING\tLEFT PENDING\tLAST SUCCESS\tUPDATED")
	for _, l := range lags {
		last := "-"
		if !l.LastSuccess.IsZero() {
			last = time.Since(l.LastSuccess).Round(time.Second).String() + " ago"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t%s ago\n", l.Relay, l.Pending,
			(time.Duration(l.OldestAge * float64(time.Second))).Round(time.Second), l.LeftPending, last,
			time.Since(l.Updated).Round(time.Second))
	}
	tw.Flush()
}

// groupCounts sums the consumers of one mode's partitions.
type groupCounts struct {
	partitions  int
	pinned      int // partitions whose owner group has a pinned client
	pending     uint64
	ackPending  int
	redelivered int
	waiting     int
}

// partitionCounts lists the outbox's consumers once and sums the partition
// consumers of each mode. Consumers of partitions beyond the configured
// count, left until they drain, are counted too.
func partitionCounts(ctx context.Context, js jetstream.JetStream, stream string) (map[streams.Mode]*groupCounts, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	groups := map[streams.Mode]*groupCounts{}
	for _, m := range streams.Modes {
		groups[m] = &groupCounts{}
	}
	list := s.ListConsumers(ctx)
	for info := range list.Info() {
		m, _, ok := streams.ParsePartitionConsumerName(info.Name)
		if !ok {
			continue
		}
		g := groups[m]
		g.partitions++
		g.pending += info.NumPending
		g.ackPending += info.NumAckPending
		g.redelivered += info.NumRedelivered
		g.waiting += info.NumWaiting
		for _, pg := range info.PriorityGroups {
			if pg.Group == streams.OwnerGroup && pg.PinnedClientID != "" {
				g.pinned++
			}
		}
	}
	return groups, list.Err()
}

// member is one key of the members bucket: a worker's id, and what it
// wrote about itself, when it says so.
type member struct {
	id   string
	Host string      `json:"host"`
	PID  json.Number `json:"pid"`
}

// liveMembers reads every key of the members bucket in one pass: the
// workers that heartbeated within the member TTL, sorted by id.
func liveMembers(ctx context.Context, js jetstream.JetStream, bucket string) ([]member, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		return nil, err
	}
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, err
	}
	defer w.Stop()
	var out []member
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("watch %s ended early", bucket)
			}
			if e == nil { // every key read
				slices.SortFunc(out, func(a, b member) int { return strings.Compare(a.id, b.id) })
				return out, nil
			}
			m := member{id: e.Key()}
			_ = json.Unmarshal(e.Value(), &m) // what it could read; a value that is not a JSON object shows dashes
			out = append(out, m)
		}
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
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
