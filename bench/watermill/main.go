// Command watermill is the baseline of jetbox's benchmark: the same memory
// writes carried over NATS JetStream by Watermill and watermill-nats, set up
// the way a team using the usual Go library would, tuned as far as those
// libraries allow. A benchmark harness starts the nats-server and the memory
// API, runs this program and reads the one JSON object it prints on stdout.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Phases of a run.
const (
	phasePublish = "publish" // time the publisher only
	phaseDrain   = "drain"   // publish untimed, then time the router applying everything
	phaseBoth    = "both"    // time the publisher, then time the drain of what it published
	// phaseDrainOnly drains a backlog an earlier run with -phase publish
	// -keep-stream left in the stream: this process publishes nothing, so
	// its CPU time and peak memory are the drain's alone.
	phaseDrainOnly = "drain-only"
)

// settings are the flags, parsed once. The tagged ones are reported with the
// figures; the addresses and the token are not.
type settings struct {
	NATSURL     string        `json:"-"`
	APIURL      string        `json:"-"`
	Token       string        `json:"-"`
	N           int           `json:"n"`
	Size        int           `json:"size_bytes"`
	Tenants     int           `json:"tenants"`
	Concurrency int           `json:"concurrency"`
	Publishers  int           `json:"publishers"`
	Phase       string        `json:"phase"`
	Stream      string        `json:"stream"`
	KeepStream  bool          `json:"keep_stream"`
	Timeout     time.Duration `json:"-"`
	Verbose     bool          `json:"-"`

	// Delivery knobs; see the README for why each default was chosen.
	AckAsync      bool `json:"ack_async"`
	MaxAckPending int  `json:"max_ack_pending"`
}

func parseSettings(args []string) (settings, error) {
	var s settings
	fs := flag.NewFlagSet("watermill", flag.ContinueOnError)
	fs.StringVar(&s.NATSURL, "nats", "", "NATS URL (required)")
	fs.StringVar(&s.APIURL, "api", "", "memory API base URL (required)")
	fs.StringVar(&s.Token, "token", "", "memory API bearer token")
	fs.IntVar(&s.N, "n", 200000, "messages")
	fs.IntVar(&s.Size, "size", 512, "bytes of each message body, the store request sent to the memory API")
	fs.IntVar(&s.Tenants, "tenants", 1000, "tenants the messages are spread over")
	fs.IntVar(&s.Concurrency, "concurrency", 64, "subscribers, and so handlers running at once")
	fs.IntVar(&s.Publishers, "publishers", 64, "goroutines publishing at once")
	fs.StringVar(&s.Phase, "phase", phaseBoth, "publish, drain, both or drain-only (the backlog a -phase publish -keep-stream run left)")
	fs.StringVar(&s.Stream, "stream", "WATERMILL_BENCH", "JetStream stream the run creates and deletes")
	fs.BoolVar(&s.KeepStream, "keep-stream", false, "leave the stream and what it holds at the end, for a -phase drain-only run")
	fs.DurationVar(&s.Timeout, "timeout", 30*time.Minute, "give up when the run takes longer")
	fs.BoolVar(&s.Verbose, "v", false, "log Watermill at info level instead of error")
	fs.BoolVar(&s.AckAsync, "ack-async", true, "ack without waiting for the server's confirmation")
	fs.IntVar(&s.MaxAckPending, "max-ack-pending", 0, "messages the server hands out before acks; 0 = 2 x concurrency")
	if err := fs.Parse(args); err != nil {
		return s, err
	}
	if s.MaxAckPending == 0 {
		s.MaxAckPending = 2 * s.Concurrency
	}
	switch {
	case s.NATSURL == "":
		return s, fmt.Errorf("-nats is required")
	case s.APIURL == "":
		return s, fmt.Errorf("-api is required")
	case s.N < 1:
		return s, fmt.Errorf("-n %d: want at least 1", s.N)
	case s.Size < minBodySize:
		return s, fmt.Errorf("-size %d: want at least %d bytes, the store request without its padding", s.Size, minBodySize)
	case s.Tenants < 1:
		return s, fmt.Errorf("-tenants %d: want at least 1", s.Tenants)
	case s.Concurrency < 1:
		return s, fmt.Errorf("-concurrency %d: want at least 1", s.Concurrency)
	case s.Publishers < 1:
		return s, fmt.Errorf("-publishers %d: want at least 1", s.Publishers)
	case s.Phase != phasePublish && s.Phase != phaseDrain && s.Phase != phaseBoth && s.Phase != phaseDrainOnly:
		return s, fmt.Errorf("-phase %q: want %s, %s, %s or %s", s.Phase, phasePublish, phaseDrain, phaseBoth, phaseDrainOnly)
	case s.Stream == "":
		return s, fmt.Errorf("-stream is required")
	case s.MaxAckPending < 1:
		return s, fmt.Errorf("-max-ack-pending %d: want at least 1", s.MaxAckPending)
	}
	return s, nil
}

// report is the JSON object printed on stdout.
type report struct {
	Publish    *publishResult `json:"publish,omitempty"`
	Drain      *drainResult   `json:"drain,omitempty"`
	CPUSeconds float64        `json:"cpu_seconds"`
	PeakRSS    int64          `json:"peak_rss_bytes"`
	Settings   reportSettings `json:"settings"`
}

func main() {
	s, err := parseSettings(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "watermill:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()

	r, err := run(ctx, s)
	if err != nil {
		fmt.Fprintln(os.Stderr, "watermill:", err)
		os.Exit(1)
	}
	r.CPUSeconds, r.PeakRSS = cpuTime().Seconds(), peakRSS()
	enc := json.NewEncoder(os.Stdout)
	if err := enc.Encode(r); err != nil {
		fmt.Fprintln(os.Stderr, "watermill:", err)
		os.Exit(1)
	}
}

// run provisions the stream, runs the phases and deletes the stream.
func run(ctx context.Context, s settings) (report, error) {
	r := report{Settings: describe(s)}
	admin, err := nats.Connect(s.NATSURL, nats.Name("watermill bench admin"))
	if err != nil {
		return r, fmt.Errorf("connect to NATS: %w", err)
	}
	defer admin.Close()
	js, err := jetstream.New(admin)
	if err != nil {
		return r, err
	}
	if s.Phase == phaseDrainOnly {
		err = checkBacklog(ctx, js, s.Stream, s.N)
	} else {
		err = createStream(ctx, js, s.Stream)
	}
	if err != nil {
		return r, err
	}
	if !s.KeepStream {
		defer func() {
			// The run's context may be over; the cleanup still gets its own time.
			cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			if err := js.DeleteStream(cleanup, s.Stream); err != nil {
				fmt.Fprintf(os.Stderr, "watermill: delete stream %s: %v\n", s.Stream, err)
			}
		}()
	}

	logger := newLogger(s.Verbose)
	if s.Phase == phaseDrainOnly {
		drained, err := drainAll(ctx, s, logger)
		if err != nil {
			return r, err
		}
		r.Drain = &drained
		return r, nil
	}
	published, err := publishAll(ctx, s, logger)
	if err != nil {
		return r, err
	}
	if s.Phase != phaseDrain {
		r.Publish = &published
	}
	if s.Phase == phasePublish {
		return r, nil
	}
	drained, err := drainAll(ctx, s, logger)
	if err != nil {
		return r, err
	}
	r.Drain = &drained
	return r, nil
}

// newLogger writes Watermill's logs to stderr, errors only unless verbose:
// the per-message info and trace lines would cost more than the work.
func newLogger(verbose bool) watermill.LoggerAdapter {
	level := slog.LevelError
	if verbose {
		level = slog.LevelInfo
	}
	return watermill.NewSlogLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
}
