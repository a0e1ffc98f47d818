package consumer

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"

	"github.com/jetbox-dev/jetbox/streams"
)

// Config configures a Worker.
type Config struct {
	Endpoint string // memory API base URL, e.g. http://127.0.0.1:9595
	Token    string // bearer token sent to the memory API

	Streams streams.Config // the outbox layout the worker consumes
	Modes   []streams.Mode // groups this worker serves; nil = all three

	Concurrency      int           // memory API calls in flight, shared by the groups (sync first)
	RequestTimeout   time.Duration // one memory API call
	MaxAttempts      int           // retry budget: attempts before a transient failure is dead-lettered
	BackoffBase      time.Duration // first retry delay
	BackoffMax       time.Duration // largest retry delay
	MaxRetryAfter    time.Duration // largest Retry-After the worker honours
	FailureThreshold uint32        // consecutive transient failures that open a tenant's breaker
	ResetInterval    time.Duration // how long a breaker stays open before it half-opens
	BreakerIdleTTL   time.Duration // a tenant's breaker is forgotten after this long unused
	ShutdownTimeout  time.Duration // how long in-flight writes may take to finish on shutdown

	ReplyPrefixes []string // subjects a sync outcome may be published under; nil = streams.DefaultReplyPrefix

	// PullMaxBytes bounds the bytes of the writes a worker holds per
	// partition it owns (pulled and not yet settled); 0 = streams.DefaultPullMaxBytes.
	// It is raised to the server's max payload, so any write fits.
	PullMaxBytes int

	// QueuedPerPartition bounds the writes per owned partition that wait
	// for a memory API slot: with that many waiting, the worker pulls no
	// more of the partition until half of them have a slot. Writes waiting
	// behind an earlier write to their memory do not count.
	// 0 = streams.DefaultQueuedPerPartition.
	QueuedPerPartition int

	// MisconfiguredProbe is how often one write is let through while the
	// memory API refuses the worker itself; 0 = DefaultMisconfiguredProbe.
	MisconfiguredProbe time.Duration

	LogPayloads    bool // include write bodies and memory API answers in failure logs
	MetricsTenants int  // distinct tenant label values before the rest share "_other"

	Log        zerolog.Logger
	Registerer prometheus.Registerer // nil = no metrics
	HTTPClient *http.Client          // nil = a keep-alive client sized to Concurrency
	// TracerProvider makes a span of every delivery and memory API call
	// (tracing.go); nil makes none.
	TracerProvider trace.TracerProvider
}

// DefaultMisconfiguredProbe is how often a worker that the memory API
// refuses as misconfigured lets one write through to see whether it is
// accepted again.
const DefaultMisconfiguredProbe = 5 * time.Second

// DefaultConfig holds the defaults the zero values of Config stand for.
// The settings without one (Endpoint, Token, Log, Registerer, HTTPClient,
// TracerProvider, LogPayloads) are left zero.
func DefaultConfig() Config {
	return Config{
		Streams:            streams.DefaultConfig(),
		Modes:              streams.Modes,
		Concurrency:        64,
		RequestTimeout:     10 * time.Second,
		MaxAttempts:        10,
		BackoffBase:        500 * time.Millisecond,
		BackoffMax:         time.Minute,
		MaxRetryAfter:      15 * time.Minute,
		FailureThreshold:   3,
		ResetInterval:      60 * time.Second,
		BreakerIdleTTL:     10 * time.Minute,
		ShutdownTimeout:    30 * time.Second,
		ReplyPrefixes:      []string{streams.DefaultReplyPrefix},
		PullMaxBytes:       streams.DefaultPullMaxBytes,
		QueuedPerPartition: streams.DefaultQueuedPerPartition,
		MisconfiguredProbe: DefaultMisconfiguredProbe,
		MetricsTenants:     100,
	}
}

func (c *Config) setDefaults() {
	d := DefaultConfig()
	if c.Streams.Stream == "" {
		c.Streams = d.Streams
	}
	if len(c.Modes) == 0 {
		c.Modes = d.Modes
	}
	if c.Concurrency == 0 {
		c.Concurrency = d.Concurrency
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = d.RequestTimeout
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = d.MaxAttempts
	}
	if c.BackoffBase == 0 {
		c.BackoffBase = d.BackoffBase
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = d.BackoffMax
	}
	if c.MaxRetryAfter == 0 {
		c.MaxRetryAfter = d.MaxRetryAfter
	}
	if c.FailureThreshold == 0 {
		c.FailureThreshold = d.FailureThreshold
	}
	if c.ResetInterval == 0 {
		c.ResetInterval = d.ResetInterval
	}
	if c.BreakerIdleTTL == 0 {
		c.BreakerIdleTTL = d.BreakerIdleTTL
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = d.ShutdownTimeout
	}
	if len(c.ReplyPrefixes) == 0 {
		c.ReplyPrefixes = d.ReplyPrefixes
	}
	if c.MetricsTenants == 0 {
		c.MetricsTenants = d.MetricsTenants
	}
	if c.PullMaxBytes == 0 {
		c.PullMaxBytes = d.PullMaxBytes
	}
	if c.MisconfiguredProbe == 0 {
		c.MisconfiguredProbe = d.MisconfiguredProbe
	}
	if c.QueuedPerPartition == 0 {
		c.QueuedPerPartition = d.QueuedPerPartition
	}
}

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("invalid worker configuration")

func (c *Config) validate() error {
	u, err := url.Parse(c.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: memory API endpoint %q is not an http(s) URL", ErrConfig, c.Endpoint)
	}
	for _, m := range c.Modes {
		if _, err := streams.ParseMode(string(m)); err != nil {
			return fmt.Errorf("%w: %v", ErrConfig, err)
		}
	}
	switch {
	case c.Concurrency < 1:
		return fmt.Errorf("%w: concurrency %d, want at least 1", ErrConfig, c.Concurrency)
	case c.QueuedPerPartition < 1:
		return fmt.Errorf("%w: queued writes per partition %d, want at least 1", ErrConfig, c.QueuedPerPartition)
	case c.MaxAttempts < 1:
		return fmt.Errorf("%w: max attempts %d, want at least 1", ErrConfig, c.MaxAttempts)
	case c.BackoffBase <= 0 || c.BackoffMax < c.BackoffBase:
		return fmt.Errorf("%w: backoff base %s and max %s, want 0 < base <= max", ErrConfig, c.BackoffBase, c.BackoffMax)
	case c.ResetInterval <= 0:
		return fmt.Errorf("%w: reset interval %s, want > 0", ErrConfig, c.ResetInterval)
	case c.RequestTimeout >= c.Streams.AckWait:
		// Otherwise a slow call outlives the ack wait and the write is
		// attempted a second time, concurrently, by another worker.
		return fmt.Errorf("%w: request timeout %s must be shorter than the ack wait %s", ErrConfig, c.RequestTimeout, c.Streams.AckWait)
	}
	return nil
}
