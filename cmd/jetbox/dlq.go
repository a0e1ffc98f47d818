package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/jetbox-dev/jetbox/dlq"
	"github.com/jetbox-dev/jetbox/streams"
)

func newDLQCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "List, show, replay and drop dead letters",
		Long: `Dead letters are the writes the workers could not apply, kept in the
dead-letter stream (SOMABRAIN_OUTBOX_DLQ_STREAM) with the reason: their class
(permanent: the memory API refused it; bad_input: it could not be decoded or
validated; exhausted: transient failures used up the retry budget), the error,
and the memory API's status and answer when it got that far.

list, replay and drop take the same filters; every filter given must match.`,
		Example: `  jetbox dlq list --tenant acme --since 1h
  jetbox dlq show 42
  jetbox dlq replay --tenant acme --class exhausted --dry-run
  jetbox dlq drop --class bad_input --until 24h`,
		Args: cobra.NoArgs,
		// Without a subcommand: its help, exit 0.
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newDLQListCmd(), newDLQShowCmd(), newDLQReplayCmd(), newDLQDropCmd())
	return cmd
}

// filterFlags are the dead-letter filters of list, replay and drop.
type filterFlags struct {
	tenant, subject, mode, op, class, seq, since, until string
	limit                                               int
}

func (ff *filterFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&ff.tenant, "tenant", "", "only this tenant's")
	f.StringVar(&ff.subject, "subject", "", "only this original subject (wildcards allowed), e.g. memory.*.sync.store")
	f.StringVar(&ff.mode, "mode", "", "only this write mode: sync, fast_ack or background")
	f.StringVar(&ff.op, "op", "", "only this op: store, delete or link")
	f.StringVar(&ff.class, "class", "", "only these classes, comma-separated: permanent, bad_input, exhausted")
	f.StringVar(&ff.seq, "seq", "", "only these dead-letter sequences: 7, 7-9, 7- (and after), -9, or a comma-separated list")
	f.StringVar(&ff.since, "since", "", "dead-lettered at or after: an RFC 3339 time or a duration ago (1h)")
	f.StringVar(&ff.until, "until", "", "dead-lettered before: an RFC 3339 time or a duration ago")
	f.IntVar(&ff.limit, "limit", 0, "at most this many (0: all)")
	noFiles := cobra.ShellCompDirectiveNoFileComp
	_ = cmd.RegisterFlagCompletionFunc("mode", cobra.FixedCompletions([]string{"sync", "fast_ack", "background"}, noFiles))
	_ = cmd.RegisterFlagCompletionFunc("op", cobra.FixedCompletions([]string{"store", "delete", "link"}, noFiles))
	_ = cmd.RegisterFlagCompletionFunc("class", cobra.FixedCompletions([]string{"permanent", "bad_input", "exhausted"}, noFiles))
}

// filter reads the flags; a mistake is a usageError naming the flag.
func (ff filterFlags) filter() (dlq.Filter, error) {
	f := dlq.Filter{Tenant: ff.tenant, Subject: ff.subject, Limit: ff.limit}
	var err error
	if ff.mode != "" {
		if f.Mode, err = streams.ParseMode(ff.mode); err != nil {
			return f, usageError{fmt.Errorf("--mode: %w", err)}
		}
	}
	if ff.op != "" {
		if f.Op, err = streams.ParseOp(ff.op); err != nil {
			return f, usageError{fmt.Errorf("--op: %w", err)}
		}
	}
	if ff.class != "" {
		if f.Classes, err = dlq.ParseClasses(ff.class); err != nil {
			return f, usageError{fmt.Errorf("--class: %w", err)}
		}
	}
	if ff.seq != "" {
		if f.Seqs, err = dlq.ParseSeqRanges(ff.seq); err != nil {
			return f, usageError{fmt.Errorf("--seq: %w", err)}
		}
	}
	if f.Since, err = parseWhen(ff.since); err != nil {
		return f, usageError{fmt.Errorf("--since: %w", err)}
	}
	if f.Until, err = parseWhen(ff.until); err != nil {
		return f, usageError{fmt.Errorf("--until: %w", err)}
	}
	if ff.limit < 0 {
		return f, usageError{fmt.Errorf("--limit %d: allowed: 0 (all) or more", ff.limit)}
	}
	return f, nil
}

// withDLQ loads the configuration, connects and runs fn.
func withDLQ(cmd *cobra.Command, fn func(ctx context.Context, js jetstream.JetStream, scfg streams.Config) error) error {
	cfg, err := loadConfig(cmd)
	if err != nil {
		return err
	}
	nc, js, err := connectJS(cfg, "jetbox dlq")
	if err != nil {
		return err
	}
	defer nc.Close()
	return fn(cmd.Context(), js, cfg.Outbox.Streams())
}

// selected lists the dead letters the filter flags select.
func selected(cmd *cobra.Command, ff filterFlags, fn func(ctx context.Context, js jetstream.JetStream, scfg streams.Config, f dlq.Filter, list []dlq.DeadLetter) error) error {
	f, err := ff.filter()
	if err != nil {
		return err
	}
	return withDLQ(cmd, func(ctx context.Context, js jetstream.JetStream, scfg streams.Config) error {
		list, err := dlq.List(ctx, js, scfg, f)
		if err != nil {
			return err
		}
		return fn(ctx, js, scfg, f, list)
	})
}

func newDLQListCmd() *cobra.Command {
	var (
		ff     filterFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List dead letters, oldest first",
		Args:  cobra.NoArgs,
		RunE: command(func(cmd *cobra.Command, _ []string) error {
			return selected(cmd, ff, func(_ context.Context, _ jetstream.JetStream, _ streams.Config, _ dlq.Filter, list []dlq.DeadLetter) error {
				if asJSON {
					return printJSONLines(cmd.OutOrStdout(), list)
				}
				printDeadLetters(cmd.OutOrStdout(), list)
				fmt.Fprintf(cmd.OutOrStdout(), "%d dead letters\n", len(list))
				return nil
			})
		}),
	}
	ff.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object per line instead of a table")
	return cmd
}

func printJSONLines(w io.Writer, list []dlq.DeadLetter) error {
	enc := json.NewEncoder(w)
	for _, d := range list {
		if err := enc.Encode(d); err != nil {
			return err
		}
	}
	return nil
}

// printDeadLetters is the table of list and of replay --dry-run: the
// subject the write was published to (--json has the stored one), and "-"
// for the status of a write that never reached the memory API.
func printDeadLetters(w io.Writer, list []dlq.DeadLetter) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME\tSUBJECT\tCLASS\tSTATUS\tDELIVERIES\tERROR")
	for _, d := range list {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\n", d.Seq, d.Time.Format(time.RFC3339), safe(streams.PublishSubject(d.OriginalSubject)),
			orDash(safe(d.Class)), httpStatus(d.HTTPStatus), d.Deliveries, safe(d.Error))
	}
	tw.Flush()
}

func httpStatus(status int) string {
	if status == 0 {
		return "-"
	}
	return strconv.Itoa(status)
}

func newDLQShowCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show SEQ",
		Short: "Show one dead letter: why, the memory API's answer, its headers and its body",
		Long: `Show one dead letter: its class, error, the memory API's status and answer,
every header, and the body, which is the write's data: it is printed here, on
the terminal of whoever may read the dead-letter stream, and never logged.
Control characters in it are escaped.`,
		Args: cobra.ExactArgs(1),
		RunE: command(func(cmd *cobra.Command, args []string) error {
			seq, err := strconv.ParseUint(args[0], 10, 64)
			if err != nil || seq == 0 {
				return usageError{fmt.Errorf("%q is not a dead-letter sequence (a number from 1, as 'jetbox dlq list' shows)", args[0])}
			}
			return withDLQ(cmd, func(ctx context.Context, js jetstream.JetStream, scfg streams.Config) error {
				d, err := dlq.Get(ctx, js, scfg, seq)
				if err != nil {
					return err
				}
				if asJSON {
					return json.NewEncoder(cmd.OutOrStdout()).Encode(shownLetter(d))
				}
				printDeadLetter(cmd.OutOrStdout(), d)
				return nil
			})
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object, headers and body included")
	return cmd
}

// shown is a dead letter as 'dlq show --json' prints it: the body as JSON
// when it is, else as a string.
type shown struct {
	dlq.DeadLetter
	Subject string              `json:"subject"` // as published
	Headers map[string][]string `json:"headers"`
	Body    any                 `json:"body"`
}

func shownLetter(d dlq.DeadLetter) shown {
	s := shown{DeadLetter: d, Subject: streams.PublishSubject(d.OriginalSubject), Headers: d.Header, Body: string(d.Data)}
	if json.Valid(d.Data) {
		s.Body = json.RawMessage(d.Data)
	}
	return s
}

func printDeadLetter(w io.Writer, d dlq.DeadLetter) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(name, value string) { fmt.Fprintf(tw, "%s\t%s\n", name, value) }
	row("dead letter", strconv.FormatUint(d.Seq, 10))
	row("dead-lettered", d.Time.Format(time.RFC3339Nano))
	row("subject", safe(streams.PublishSubject(d.OriginalSubject)))
	row("stored as", fmt.Sprintf("%s, outbox sequence %d", safe(d.OriginalSubject), d.OriginalSeq))
	row("group", orDash(safe(d.Group)))
	row("class", orDash(safe(d.Class)))
	row("error", orDash(safe(d.Error)))
	row("http status", httpStatus(d.HTTPStatus))
	row("answer", orDash(safe(d.Answer)))
	row("deliveries", strconv.Itoa(d.Deliveries))
	row("idempotency key", orDash(safe(d.IdempotencyKey)))
	if d.Refused() {
		row("replay", "refused without --force: it would only be dead-lettered again")
	}
	tw.Flush()
	fmt.Fprintln(w, "\nheaders:")
	names := slices.Sorted(func(yield func(string) bool) {
		for name := range d.Header {
			if !yield(name) {
				return
			}
		}
	})
	for _, name := range names {
		for _, v := range d.Header[name] {
			fmt.Fprintf(w, "  %s: %s\n", safe(name), safe(v))
		}
	}
	fmt.Fprintf(w, "\nbody (%d bytes):\n", len(d.Data))
	body := safeBlock(string(d.Data))
	fmt.Fprint(w, body)
	if !strings.HasSuffix(body, "\n") {
		fmt.Fprintln(w)
	}
}

func newDLQReplayCmd() *cobra.Command {
	var (
		ff            filterFlags
		dryRun, force bool
		every         int
	)
	cmd := &cobra.Command{
		Use:   "replay",
		Short: "Republish dead letters to their original subjects, each applied at most once",
		Long: `Republish the selected dead letters to their original subjects with a fresh
Nats-Msg-Id and their original idempotency key, so the memory API applies each
at most once however often it is replayed; a dead letter is removed once the
outbox stored its replay.

bad_input dead letters are left in place unless --force: they could not be
decoded or validated, and would only be dead-lettered again. --dry-run lists
what would be replayed and changes nothing. Progress goes to stderr: a line
redrawn in place on a terminal, else a line every --progress dead letters.`,
		Args: cobra.NoArgs,
		RunE: command(func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			if dryRun {
				return selected(cmd, ff, func(_ context.Context, _ jetstream.JetStream, _ streams.Config, _ dlq.Filter, list []dlq.DeadLetter) error {
					var replay []dlq.DeadLetter
					refused := 0
					for _, d := range list {
						if d.Refused() && !force {
							refused++
							continue
						}
						replay = append(replay, d)
					}
					printDeadLetters(out, replay)
					fmt.Fprintf(out, "dry run: would replay %d dead letters", len(replay))
					if refused > 0 {
						fmt.Fprintf(out, "; %d bad_input left in place (--force replays them)", refused)
					}
					fmt.Fprintln(out)
					return nil
				})
			}
			f, err := ff.filter()
			if err != nil {
				return err
			}
			if every < 1 {
				return usageError{fmt.Errorf("--progress %d: allowed: 1 or more", every)}
			}
			return withDLQ(cmd, func(ctx context.Context, js jetstream.JetStream, scfg streams.Config) error {
				progress := newReplayProgress(cmd.ErrOrStderr(), isTerminal(cmd.ErrOrStderr()), every)
				opts := []dlq.ReplayOption{dlq.WithProgress(progress.report)}
				if force {
					opts = append(opts, dlq.Force())
				}
				res, err := dlq.Replay(ctx, js, scfg, f, opts...)
				progress.finish(res)
				fmt.Fprintf(out, "replayed %d dead letters (%d failed)\n", res.Replayed, res.Failed)
				if res.Refused > 0 {
					fmt.Fprintf(out, "%d bad_input dead letters left in place: replayed, they would only be dead-lettered again (fix and publish them anew, 'jetbox dlq drop' them, or --force)\n", res.Refused)
				}
				return err
			})
		}),
	}
	ff.register(cmd)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "list what would be replayed; change nothing")
	cmd.Flags().BoolVar(&force, "force", false, "replay bad_input dead letters too")
	cmd.Flags().IntVar(&every, "progress", 1000, "off a terminal, a progress line every this many dead letters")
	return cmd
}

// replayProgress reports a replay on stderr: on a terminal one line
// redrawn in place, elsewhere a line every n dead letters.
type replayProgress struct {
	w        io.Writer
	terminal bool
	n        int
	drawn    time.Time
}

func newReplayProgress(w io.Writer, terminal bool, n int) *replayProgress {
	return &replayProgress{w: w, terminal: terminal, n: n}
}

func (p *replayProgress) report(r dlq.ReplayResult) {
	switch {
	case p.terminal && time.Since(p.drawn) >= 100*time.Millisecond:
		p.drawn = time.Now()
		p.draw(r, "\r", " ")
	case !p.terminal && (r.Replayed+r.Failed+r.Refused)%p.n == 0:
		p.draw(r, "", "\n")
	}
}

// finish draws the last state and ends the line on a terminal.
func (p *replayProgress) finish(r dlq.ReplayResult) {
	if p.terminal && !p.drawn.IsZero() {
		p.draw(r, "\r", "\n")
	}
}

func (p *replayProgress) draw(r dlq.ReplayResult, start, end string) {
	fmt.Fprintf(p.w, "%sreplaying: %d replayed, %d failed, %d left in place%s", start, r.Replayed, r.Failed, r.Refused, end)
}

func newDLQDropCmd() *cobra.Command {
	var (
		ff  filterFlags
		yes bool
	)
	cmd := &cobra.Command{
		Use:   "drop",
		Short: "Remove dead letters for good, after confirmation",
		Long: `Remove the selected dead letters for good. It lists them and asks first;
--yes skips the question, and is needed when stdin is not a terminal.`,
		Args: cobra.NoArgs,
		RunE: command(func(cmd *cobra.Command, _ []string) error {
			if ff == (filterFlags{}) {
				return usageError{fmt.Errorf("no filter: name what to drop (--seq, --tenant, --class, --since, ...); --seq 1- selects every dead letter")}
			}
			return selected(cmd, ff, func(ctx context.Context, js jetstream.JetStream, scfg streams.Config, _ dlq.Filter, list []dlq.DeadLetter) error {
				out := cmd.OutOrStdout()
				if len(list) == 0 {
					fmt.Fprintln(out, "no dead letters selected")
					return nil
				}
				printDeadLetters(out, list)
				if !yes {
					in := cmd.InOrStdin()
					if !isTerminal(in) {
						return usageError{fmt.Errorf("drop %d dead letters: stdin is not a terminal to confirm on; add --yes", len(list))}
					}
					fmt.Fprintf(out, "drop these %d dead letters for good? [y/N] ", len(list))
					answer, _ := bufio.NewReader(in).ReadString('\n')
					if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
						fmt.Fprintln(out, "nothing dropped")
						return nil
					}
				}
				seqs := make([]uint64, len(list))
				for i, d := range list {
					seqs[i] = d.Seq
				}
				n, err := dlq.Drop(ctx, js, scfg, seqs)
				fmt.Fprintf(out, "dropped %d dead letters\n", n)
				return err
			})
		}),
	}
	ff.register(cmd)
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "drop without asking")
	return cmd
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

// safe escapes the control characters of untrusted text (a publisher's
// headers, a memory API's answer) so it prints as one line of text and
// cannot drive the terminal.
func safe(s string) string { return escape(s, false) }

// safeBlock is safe, but keeps line breaks and tabs: for a body.
func safeBlock(s string) string { return escape(s, true) }

func escape(s string, block bool) string {
	needs := func(r rune) bool {
		if block && (r == '\n' || r == '\t') {
			return false
		}
		return unicode.IsControl(r) || r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069 // bidi overrides
	}
	if !strings.ContainsFunc(s, needs) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if needs(r) {
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
