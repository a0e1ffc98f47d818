package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/jetbox-dev/jetbox/consumer"
	"github.com/jetbox-dev/jetbox/internal/config"
	"github.com/jetbox-dev/jetbox/relay"
	"github.com/jetbox-dev/jetbox/streams"
	"github.com/jetbox-dev/jetbox/tenancy"
)

func newStatusCmd() *cobra.Command {
	var (
		wait   time.Duration
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Consumer groups, workers and the partitions they own, parked tenants, breakers, relay lag",
		Long: `Print, from JetStream and from every running worker (they answer on jetbox.status):
- per write mode, its partition consumers: how many, writes pending, in
  flight, redelivered;
- the live workers, and the partitions each owns;
- parked tenants (their memory API is failing) and the writes waiting for each;
- every tenant breaker a worker holds: an open one with the consecutive
  failures that opened it and since when;
- what each 'jetbox relay' last reported about SomaBrain's outbox_events.`,
		Args: cobra.NoArgs,
		RunE: command(func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			nc, js, err := connectJS(cfg, "jetbox status")
			if err != nil {
				return err
			}
			defer nc.Close()
			r, err := gatherReport(cmd.Context(), nc, js, cfg, wait)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(r)
			}
			return r.print(cmd.OutOrStdout(), cfg.Outbox.Partitions, time.Now())
		}),
	}
	cmd.Flags().DurationVar(&wait, "wait", time.Second, "how long to collect answers from workers")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object, for scripts")
	return cmd
}

// statusReport is what 'jetbox status' gathers; --json prints it as is.
type statusReport struct {
	Groups  []groupCounts     `json:"groups"`
	Members []member          `json:"members"` // workers heartbeating in the members bucket
	Workers []consumer.Status `json:"workers"` // the answers of running workers
	Parked  []parkedTenant    `json:"parked"`
	Relays  []relay.Lag       `json:"relays"`
	// Errors holds, by section (groups, members, parked, relays), what
	// could not be read; the other sections are still reported.
	Errors map[string]string `json:"errors,omitempty"`
}

// groupCounts sums the consumers of one mode's partitions.
type groupCounts struct {
	Group      streams.Mode `json:"group"`
	Partitions int          `json:"partitions"`
	// Pinned counts the partitions whose consumer has pinned an owner's
	// pull, which JetStream does at the first write it delivers: an idle
	// partition can be owned and not pinned. Ownership is what the
	// workers report (statusReport.Workers).
	Pinned       int    `json:"pinned"`
	Pending      uint64 `json:"pending"`
	AckPending   int    `json:"ack_pending"`
	Redelivered  int    `json:"redelivered"`
	WaitingPulls int    `json:"waiting_pulls"`
}

// member is one key of the members bucket: a worker's id, and what it
// wrote about itself, when it says so.
type member struct {
	ID   string      `json:"id"`
	Host string      `json:"host"`
	PID  json.Number `json:"pid"`
}

// parkedTenant is one key of the parking bucket with the writes waiting
// in the parking stream for it.
type parkedTenant struct {
	Group   streams.Mode `json:"group"`
	Tenant  string       `json:"tenant"`
	Waiting uint64       `json:"waiting"` // writes in the parking stream
	Since   time.Time    `json:"since,omitzero"`
	Reason  string       `json:"reason,omitempty"`
	Worker  string       `json:"worker,omitempty"` // that parked it
}

func gatherReport(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, cfg config.Config, wait time.Duration) (statusReport, error) {
	scfg := cfg.Outbox.Streams()
	r := statusReport{Errors: map[string]string{}}
	var err error
	if r.Groups, err = partitionCounts(ctx, js, scfg.Stream); err != nil {
		r.Errors["groups"] = fmt.Sprintf("stream %s: %v", scfg.Stream, err)
	}
	if r.Members, err = liveMembers(ctx, js, scfg.MembersBucket); err != nil {
		r.Errors["members"] = fmt.Sprintf("bucket %s: %v", scfg.MembersBucket, err)
	}
	if r.Parked, err = parkedTenants(ctx, js, scfg); err != nil {
		r.Errors["parked"] = err.Error()
	}
	lagCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	r.Relays, err = relay.ReadLag(lagCtx, js, relay.DefaultStatusBucket)
	cancel()
	if err != nil {
		r.Errors["relays"] = err.Error()
	}
	if r.Relays == nil {
		r.Relays = []relay.Lag{}
	}
	if r.Workers, err = gatherStatus(nc, wait); err != nil {
		return r, err
	}
	slices.SortFunc(r.Workers, func(a, b consumer.Status) int { return strings.Compare(a.Worker, b.Worker) })
	if len(r.Errors) == 0 {
		r.Errors = nil
	}
	return r, nil
}

// partitionCounts lists the outbox's consumers once and sums the partition
// consumers of each mode. Consumers of partitions beyond the configured
// count, left until they drain, are counted too.
func partitionCounts(ctx context.Context, js jetstream.JetStream, stream string) ([]groupCounts, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	groups := make([]groupCounts, len(streams.Modes))
	for i, m := range streams.Modes {
		groups[i].Group = m
	}
	list := s.ListConsumers(ctx)
	for info := range list.Info() {
		m, _, ok := streams.ParsePartitionConsumerName(info.Name)
		if !ok {
			continue
		}
		g := &groups[slices.Index(streams.Modes, m)]
		g.Partitions++
		g.Pending += info.NumPending
		g.AckPending += info.NumAckPending
		g.Redelivered += info.NumRedelivered
		g.WaitingPulls += info.NumWaiting
		for _, pg := range info.PriorityGroups {
			if pg.Group == streams.OwnerGroup && pg.PinnedClientID != "" {
				g.Pinned++
			}
		}
	}
	return groups, list.Err()
}

// readBucket reads every key of a KV bucket, within 5 seconds.
func readBucket(ctx context.Context, js jetstream.JetStream, bucket string) ([]jetstream.KeyValueEntry, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return streams.ReadBucket(ctx, js, bucket)
}

// liveMembers is the members bucket: the workers that heartbeated within
// the member TTL, sorted by id.
func liveMembers(ctx context.Context, js jetstream.JetStream, bucket string) ([]member, error) {
	entries, err := readBucket(ctx, js, bucket)
	if err != nil {
		return nil, err
	}
	out := make([]member, 0, len(entries))
	for _, e := range entries {
		m := member{ID: e.Key()}
		_ = json.Unmarshal(e.Value(), &m) // what it could read; a value that is not a JSON object shows dashes
		m.ID = e.Key()
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b member) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// parkedTenants joins the parking bucket (<mode>.<tenant token> → since,
// reason, worker) with the parking stream's count of writes per subject
// (memory_parked.<tenant token>.<mode>.<op>). Writes still waiting for a
// tenant no longer in the bucket are listed too.
func parkedTenants(ctx context.Context, js jetstream.JetStream, scfg streams.Config) ([]parkedTenant, error) {
	type key struct {
		mode  streams.Mode
		token string
	}
	byKey := map[key]*parkedTenant{}
	get := func(k key) *parkedTenant {
		p := byKey[k]
		if p == nil {
			tenant, err := tenancy.Decode(k.token)
			if err != nil {
				tenant = k.token
			}
			p = &parkedTenant{Group: k.mode, Tenant: tenant}
			byKey[k] = p
		}
		return p
	}
	entries, err := readBucket(ctx, js, scfg.ParkingBucket)
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", scfg.ParkingBucket, err)
	}
	for _, e := range entries {
		mode, token, ok := streams.ParseParkingKey(e.Key())
		if !ok {
			continue
		}
		p := get(key{mode, token})
		var rec streams.ParkedRecord
		_ = json.Unmarshal(e.Value(), &rec) // what it could read of what the worker wrote
		p.Since, p.Reason, p.Worker = rec.Since, rec.Reason, rec.Worker
	}
	stream, err := js.Stream(ctx, scfg.ParkingStream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", scfg.ParkingStream, err)
	}
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(streams.ParkedSubjectPrefix+".>"))
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", scfg.ParkingStream, err)
	}
	for subject, n := range info.State.Subjects {
		tokens := strings.Split(subject, ".")
		if len(tokens) != 4 {
			continue
		}
		get(key{streams.Mode(tokens[2]), tokens[1]}).Waiting += n
	}
	out := make([]parkedTenant, 0, len(byKey))
	for _, p := range byKey {
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b parkedTenant) int {
		return cmp.Or(cmp.Compare(slices.Index(streams.Modes, a.Group), slices.Index(streams.Modes, b.Group)), strings.Compare(a.Tenant, b.Tenant))
	})
	return out, nil
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
	out := []consumer.Status{}
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

// print writes the report as tables; partitions is the configured count
// per group, against which unowned partitions are found.
func (r statusReport) print(w io.Writer, partitions int, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tPARTITIONS\tPENDING\tACK PENDING\tREDELIVERED\tWAITING PULLS")
	if e, ok := r.Errors["groups"]; ok {
		fmt.Fprintf(tw, "%s\n", e)
	}
	for _, g := range r.Groups {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\n", g.Group, g.Partitions, g.Pending, g.AckPending, g.Redelivered, g.WaitingPulls)
	}
	tw.Flush()

	if e, ok := r.Errors["members"]; ok {
		fmt.Fprintf(w, "\nmembers: %s\n", e)
	} else {
		fmt.Fprintf(w, "\n%d live workers\n", len(r.Members))
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "WORKER\tHOST\tPID")
		for _, m := range r.Members {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", m.ID, orDash(m.Host), orDash(m.PID.String()))
		}
		tw.Flush()
	}

	fmt.Fprintf(w, "\n%d workers answered\n", len(r.Workers))
	printOwnership(w, r.Workers, partitions)

	switch e, failed := r.Errors["parked"]; {
	case failed:
		fmt.Fprintf(w, "\nparked tenants: %s\n", e)
	case len(r.Parked) == 0:
		fmt.Fprintln(w, "\nno parked tenants")
	default:
		fmt.Fprintf(w, "\n%d parked tenants: their memory API is failing; their writes wait aside, in order\n", len(r.Parked))
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "GROUP\tTENANT\tWAITING WRITES\tPARKED SINCE\tREASON\tBY WORKER")
		for _, p := range r.Parked {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", p.Group, safe(p.Tenant), p.Waiting, since(p.Since, now), orDash(safe(p.Reason)), orDash(safe(p.Worker)))
		}
		tw.Flush()
	}

	printRelayLag(w, r.Relays, r.Errors["relays"], now)

	var rows int
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, s := range r.Workers {
		for _, g := range s.Groups {
			for _, b := range g.Breakers {
				if rows == 0 {
					fmt.Fprintln(w, "\nbreakers (an open one lets no write through until a probe succeeds; its failures are those that opened it)")
					fmt.Fprintln(tw, "WORKER\tGROUP\tTENANT\tBREAKER\tCONSECUTIVE FAILURES\tOPEN SINCE")
				}
				rows++
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", s.Worker, g.Group, safe(b.Tenant), b.State, b.ConsecutiveFailures, since(b.OpenSince, now))
			}
		}
	}
	if rows == 0 {
		fmt.Fprintln(w, "\nno tenant breakers in memory")
	}
	return tw.Flush()
}

// printOwnership says which partitions each worker owns, and which of the
// configured ones no answering worker owns.
func printOwnership(w io.Writer, workers []consumer.Status, partitions int) {
	owned := map[string]map[int]bool{}
	for _, s := range workers {
		var parts []string
		total := 0
		for _, g := range s.Groups {
			total += len(g.Partitions)
			if len(g.Partitions) > 0 {
				parts = append(parts, g.Group+" "+compactRanges(g.Partitions))
			}
			if owned[g.Group] == nil {
				owned[g.Group] = map[int]bool{}
			}
			for _, p := range g.Partitions {
				owned[g.Group][p] = true
			}
		}
		ready := ""
		if !s.Ready {
			ready = " (not ready)"
		}
		fmt.Fprintf(w, "  %s%s owns %d partitions", s.Worker, ready, total)
		if len(parts) > 0 {
			fmt.Fprintf(w, ": %s", strings.Join(parts, ", "))
		}
		fmt.Fprintln(w)
	}
	if len(workers) == 0 {
		return
	}
	var unowned []string
	for _, m := range streams.Modes {
		var free []int
		for p := range partitions {
			if !owned[string(m)][p] {
				free = append(free, p)
			}
		}
		if len(free) > 0 {
			unowned = append(unowned, string(m)+" "+compactRanges(free))
		}
	}
	if len(unowned) > 0 {
		fmt.Fprintf(w, "  owned by no answering worker: %s\n", strings.Join(unowned, ", "))
	}
}

// compactRanges writes partition numbers as ranges: 0-7, 9, 11-12.
func compactRanges(ps []int) string {
	ps = slices.Sorted(slices.Values(ps))
	var out []string
	for i := 0; i < len(ps); {
		j := i
		for j+1 < len(ps) && ps[j+1] == ps[j]+1 {
			j++
		}
		if j == i {
			out = append(out, strconv.Itoa(ps[i]))
		} else {
			out = append(out, strconv.Itoa(ps[i])+"-"+strconv.Itoa(ps[j]))
		}
		i = j + 1
	}
	return strings.Join(out, ", ")
}

// printRelayLag prints what each 'jetbox relay' last recorded about
// SomaBrain's outbox_events table.
func printRelayLag(w io.Writer, lags []relay.Lag, failure string, now time.Time) {
	switch {
	case failure != "":
		fmt.Fprintf(w, "\nrelay: %s\n", failure)
		return
	case len(lags) == 0:
		fmt.Fprintln(w, "\nrelay: none has reported")
		return
	}
	fmt.Fprintf(w, "\nrelay: %d reporting\n", len(lags))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RELAY\tPENDING\tOLDEST PENDING\tLEFT PENDING\tLAST SUCCESS\tUPDATED")
	for _, l := range lags {
		last := "-"
		if !l.LastSuccess.IsZero() {
			last = now.Sub(l.LastSuccess).Round(time.Second).String() + " ago"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t%s ago\n", l.Relay, l.Pending,
			(time.Duration(l.OldestAge * float64(time.Second))).Round(time.Second), l.LeftPending, last,
			now.Sub(l.Updated).Round(time.Second))
	}
	tw.Flush()
}

// since is "15:04:05 (2m0s ago)", or "-" for a zero time.
func since(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return fmt.Sprintf("%s (%s ago)", t.Local().Format(time.DateTime), now.Sub(t).Round(time.Second))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
