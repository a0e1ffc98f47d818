// Package config reads jetbox's configuration from the environment, once, at
// start-up. Every variable, its default and its meaning is in Vars; the
// README's table is generated from the same list (jetbox config --table).
package config

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetbox-dev/jetbox/frontdoor/limits"
	"github.com/jetbox-dev/jetbox/streams"
	"github.com/jetbox-dev/jetbox/tenancy"
)

// Seconds is a duration written as a number of seconds ("60", "0.5"), as the
// SOMABRAIN_MEMORY_* variables have always been; "90s" is accepted too.
type Seconds time.Duration

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Seconds) UnmarshalText(text []byte) error {
	v := strings.TrimSpace(string(text))
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		*s = Seconds(time.Duration(f * float64(time.Second)))
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("%q is not a number of seconds", v)
	}
	*s = Seconds(d)
	return nil
}

// Duration returns s as a time.Duration.
func (s Seconds) Duration() time.Duration { return time.Duration(s) }

// Config is every setting of jetbox, grouped by what it configures. Each
// variable belongs to one group; Vars and the README's table list them in
// the order of the groups and of their fields.
type Config struct {
	Memory    Memory
	NATS      NATS
	Embedded  Embedded
	Outbox    Outbox
	Worker    Worker
	Producer  Producer
	FrontDoor FrontDoor
	Relay     Relay
	Log       Log
	Ops       Ops
}

// Memory is the memory client's settings, under the names and with the
// meanings SomaBrain gives them (docs/CONTRACT.md, Configuration names):
// the memory API writes go to, their default write mode and tenant, and
// when a tenant's breaker opens.
type Memory struct {
	WriteMode        string  `env:"SOMABRAIN_MEMORY_WRITE_MODE" envDefault:"sync" help:"default write mode of producers: sync, fast_ack or background"`
	FailureThreshold uint32  `env:"SOMABRAIN_MEMORY_FAILURE_THRESHOLD" envDefault:"3" help:"consecutive transient failures that open a tenant's breaker"`
	ResetInterval    Seconds `env:"SOMABRAIN_MEMORY_RESET_INTERVAL" envDefault:"60" help:"seconds an open breaker waits before it lets a probe through"`
	Endpoint         string  `env:"SOMABRAIN_MEMORY_HTTP_ENDPOINT" help:"memory API base URL; empty runs the development memory API"`
	Token            string  `env:"SOMABRAIN_MEMORY_HTTP_TOKEN" secret:"true" help:"bearer token for the memory API"`
	DefaultTenant    string  `env:"SOMABRAIN_DEFAULT_TENANT" envDefault:"public" help:"tenant of a write that names neither tenant nor namespace"`
}

// NATS is how every command connects to NATS, named as in the nats CLI.
type NATS struct {
	URL         string `env:"NATS_URL" help:"NATS server URLs, comma-separated; empty runs an embedded nats-server"`
	Creds       string `env:"NATS_CREDS" help:"path of a NATS credentials (JWT) file"`
	NKey        string `env:"NATS_NKEY" help:"path of a NATS NKey seed file"`
	User        string `env:"NATS_USER" help:"NATS user name"`
	Password    string `env:"NATS_PASSWORD" secret:"true" help:"NATS password"`
	Token       string `env:"NATS_TOKEN" secret:"true" help:"NATS token"`
	CA          string `env:"NATS_CA" help:"path of the CA certificate that signed the NATS server's certificate"`
	Cert        string `env:"NATS_CERT" help:"path of the client certificate for mutual TLS"`
	Key         string `env:"NATS_KEY" help:"path of the client certificate's private key"`
	InboxPrefix string `env:"NATS_INBOX_PREFIX" help:"prefix of reply subjects instead of _INBOX (a tenant user allowed only _INBOX.<tenant token>.> sets _INBOX.<tenant token>)"`
}

// Embedded is the servers 'jetbox run' runs in its own process: a
// nats-server when NATS_URL is empty, the development memory API when
// SOMABRAIN_MEMORY_HTTP_ENDPOINT is.
type Embedded struct {
	DataDir       string `env:"SOMABRAIN_OUTBOX_DATA_DIR" envDefault:"./jetbox-data" help:"where the embedded nats-server and the development memory API keep their data"`
	NATSListen    string `env:"SOMABRAIN_OUTBOX_NATS_LISTEN" envDefault:"127.0.0.1:4222" help:"listen address of the embedded nats-server"`
	NATSSync      string `env:"SOMABRAIN_OUTBOX_NATS_SYNC" envDefault:"1s" help:"embedded nats-server: how often it flushes its files to disk (a duration), or always (before every acknowledgement); a crash of the machine can lose the writes acknowledged since the last flush, a crash of jetbox none"`
	MemAPIListen  string `env:"SOMABRAIN_OUTBOX_MEMAPI_LISTEN" envDefault:"127.0.0.1:9595" help:"listen address of the development memory API"`
	AllowInsecure bool   `env:"SOMABRAIN_OUTBOX_ALLOW_INSECURE" envDefault:"false" help:"true lets the embedded nats-server and the development memory API start beyond loopback without authentication, with a warning (anyone who reaches them can read and write every tenant's memories); false refuses"`
}

// Outbox is the layout of the outbox in JetStream: its streams and
// buckets, their limits, its partitions and the tenant quota.
type Outbox struct {
	Stream         string `env:"SOMABRAIN_OUTBOX_STREAM" envDefault:"MEMORY" help:"outbox stream name"`
	DLQStream      string `env:"SOMABRAIN_OUTBOX_DLQ_STREAM" envDefault:"MEMORY_DLQ" help:"dead-letter stream name"`
	AttemptsBucket string `env:"SOMABRAIN_OUTBOX_ATTEMPTS_BUCKET" envDefault:"MEMORY_ATTEMPTS" help:"KV bucket counting failed attempts"`
	Replicas       int    `env:"SOMABRAIN_OUTBOX_REPLICAS" envDefault:"1" help:"stream and consumer replicas: 1, or 3 on a cluster"`
	Storage        string `env:"SOMABRAIN_OUTBOX_STORAGE" envDefault:"file" help:"stream storage: file or memory"`

	DuplicateWindow time.Duration `env:"SOMABRAIN_OUTBOX_DUPLICATE_WINDOW" envDefault:"2m" help:"Nats-Msg-Id dedupe window; every id costs about 150 bytes per replica for this long"`
	MaxBytes        int64         `env:"SOMABRAIN_OUTBOX_MAX_BYTES" envDefault:"-1" help:"outbox size limit in bytes, -1 unlimited; a full outbox refuses new writes"`
	MaxMsgs         int64         `env:"SOMABRAIN_OUTBOX_MAX_MSGS" envDefault:"-1" help:"outbox message limit, -1 unlimited; a full outbox refuses new writes"`
	DLQMaxAge       time.Duration `env:"SOMABRAIN_OUTBOX_DLQ_MAX_AGE" envDefault:"720h" help:"how long dead letters are kept; 0 forever"`
	AckWait         time.Duration `env:"SOMABRAIN_OUTBOX_ACK_WAIT" envDefault:"30s" help:"a write held this long by a silent worker is redelivered"`
	MaxAckPending   int           `env:"SOMABRAIN_OUTBOX_MAX_ACK_PENDING" help:"writes in flight per partition (per consumer, across all workers)"`
	Partitions      int           `env:"SOMABRAIN_OUTBOX_PARTITIONS" envDefault:"24" help:"partitions per write mode; each is one durable consumer owned by one worker; changing it needs a drained outbox"`
	MemberTTL       time.Duration `env:"SOMABRAIN_OUTBOX_MEMBER_TTL" envDefault:"10s" help:"a worker that has not heartbeated for this long is considered gone and its partitions move"`

	// The default is streams.DefaultTenantMaxPending (codeDefaults).
	TenantMaxPending int64 `env:"SOMABRAIN_OUTBOX_TENANT_MAX_PENDING" help:"tenant quota: writes one tenant may have waiting in the outbox per write mode and op, -1 unlimited; past it that tenant's next write of the mode and op is refused (tenant backlog full), other tenants' are stored"`
}

// Worker is the worker of 'jetbox run': what it consumes, how it calls
// the memory API and retries, and the ingest gateway it runs beside.
type Worker struct {
	Modes       string `env:"SOMABRAIN_OUTBOX_MODES" envDefault:"sync,fast_ack,background" help:"consumer groups this worker runs"`
	Concurrency int    `env:"SOMABRAIN_OUTBOX_CONCURRENCY" envDefault:"64" help:"memory API calls in flight per worker; sync is served first, then fast_ack, then background"`
	// The default is streams.DefaultPullMaxBytes (codeDefaults).
	PullMaxBytes       int           `env:"SOMABRAIN_OUTBOX_PULL_MAX_BYTES" help:"bytes of pulled, unsettled writes a worker holds per partition it owns (at least the server's max payload)"`
	QueuedPerPartition int           `env:"SOMABRAIN_OUTBOX_QUEUED_PER_PARTITION" help:"writes per owned partition a worker takes from the stream while they wait for a memory API slot; it pulls more once half of them have one"`
	RequestTimeout     time.Duration `env:"SOMABRAIN_OUTBOX_REQUEST_TIMEOUT" envDefault:"10s" help:"one memory API call"`
	MaxAttempts        int           `env:"SOMABRAIN_OUTBOX_MAX_ATTEMPTS" envDefault:"10" help:"retry budget: attempts before a transiently failing write is dead-lettered (deferrals do not count)"`
	BackoffBase        time.Duration `env:"SOMABRAIN_OUTBOX_BACKOFF_BASE" envDefault:"500ms" help:"first retry delay; doubles per attempt, with jitter"`
	BackoffMax         time.Duration `env:"SOMABRAIN_OUTBOX_BACKOFF_MAX" envDefault:"60s" help:"largest retry delay"`
	MaxRetryAfter      time.Duration `env:"SOMABRAIN_OUTBOX_MAX_RETRY_AFTER" envDefault:"15m" help:"largest Retry-After the workers honour"`
	BreakerIdleTTL     time.Duration `env:"SOMABRAIN_OUTBOX_BREAKER_IDLE_TTL" envDefault:"10m" help:"a tenant's breaker is forgotten after this long unused"`
	ReplyPrefixes      string        `env:"SOMABRAIN_OUTBOX_REPLY_PREFIXES" help:"comma-separated subject prefixes a sync outcome may be published under (Soma-Reply-To elsewhere is refused)"`
	NATSGateway        bool          `env:"SOMABRAIN_OUTBOX_NATS_GATEWAY" envDefault:"true" help:"run the ingest gateway: tenants publish to ingest.memory.<tenant token>.<mode>.<op>, and the worker republishes into the outbox with the contract's headers only; false disables"`
	ShutdownTimeout    time.Duration `env:"SOMABRAIN_OUTBOX_SHUTDOWN_TIMEOUT" envDefault:"30s" help:"on SIGTERM, how long in-flight writes may take to finish"`
}

// Producer is how a write is published: by the front door, 'jetbox
// publish' and the relay.
type Producer struct {
	SyncTimeout    time.Duration `env:"SOMABRAIN_OUTBOX_SYNC_TIMEOUT" envDefault:"10s" help:"how long a sync write waits for the memory API before it returns queued"`
	PublishTimeout time.Duration `env:"SOMABRAIN_OUTBOX_PUBLISH_TIMEOUT" envDefault:"5s" help:"how long a publish retries before it reports NATS unreachable"`
	BufferSize     int           `env:"SOMABRAIN_OUTBOX_BUFFER_SIZE" envDefault:"10000" help:"background writes buffered in a producer process"`
	Universe       string        `env:"SOMABRAIN_OUTBOX_UNIVERSE" envDefault:"real" help:"universe used to derive a coord from a key"`
}

// FrontDoor is the HTTP front door of 'jetbox run', which serves
// SomaFractalMemory's HTTP API. Its defaults are frontdoor's (codeDefaults).
type FrontDoor struct {
	Listen         string        `env:"SOMABRAIN_OUTBOX_INGEST_LISTEN" help:"listen address of the front door, which serves SomaFractalMemory's HTTP API and turns its writes into outbox writes (docs/SOMABRAIN.md); off disables (an empty value means the default)"`
	Token          string        `env:"SOMABRAIN_OUTBOX_INGEST_TOKEN" secret:"true" help:"front door: bearer token of a trusted service, which may write as any tenant it names (X-Soma-Tenant, X-Soma-Namespace); with neither this nor a tokens file the front door takes every request and stays on loopback"`
	TokensFile     string        `env:"SOMABRAIN_OUTBOX_INGEST_TOKENS_FILE" help:"front door: file of tokens each bound to one tenant, a token and its tenant per line; a request naming another tenant is 403"`
	MaxBodyBytes   int64         `env:"SOMABRAIN_OUTBOX_INGEST_MAX_BODY_BYTES" help:"front door: largest request body; larger is 413"`
	MaxHeaderBytes int           `env:"SOMABRAIN_OUTBOX_INGEST_MAX_HEADER_BYTES" help:"front door: largest request header block; larger is 431"`
	ReadTimeout    time.Duration `env:"SOMABRAIN_OUTBOX_INGEST_READ_TIMEOUT" help:"front door: time to read a request, headers and body"`
	IdleTimeout    time.Duration `env:"SOMABRAIN_OUTBOX_INGEST_IDLE_TIMEOUT" help:"front door: how long a kept-alive connection may wait for its next request"`
	MaxConcurrent  int           `env:"SOMABRAIN_OUTBOX_INGEST_MAX_CONCURRENT" help:"front door: requests served at once; more are refused with 503 and Retry-After: 1"`
}

// Relay is 'jetbox relay', which moves SomaBrain's PostgreSQL outbox into
// jetbox's.
type Relay struct {
	PostgresDSN  string        `env:"SOMABRAIN_POSTGRES_DSN" secret:"true" help:"jetbox relay: SomaBrain's PostgreSQL, whose outbox_events table it moves into the outbox (its password is never shown)"`
	Mode         string        `env:"SOMABRAIN_RELAY_MODE" envDefault:"fast_ack" help:"jetbox relay: write mode of relayed writes: fast_ack, background, or sync (without a reply subject: the relay never waits for the memory API)"`
	FailUnknown  bool          `env:"SOMABRAIN_RELAY_FAIL_UNKNOWN" envDefault:"false" help:"jetbox relay: mark rows of topics jetbox does not carry (wm.*, graph.delete_link, ...) failed instead of leaving them pending"`
	PollInterval time.Duration `env:"SOMABRAIN_RELAY_POLL_INTERVAL" envDefault:"5s" help:"jetbox relay: how often it looks for new rows when no notification came"`
	BatchSize    int           `env:"SOMABRAIN_RELAY_BATCH_SIZE" envDefault:"200" help:"jetbox relay: rows per transaction"`
	Concurrency  int           `env:"SOMABRAIN_RELAY_CONCURRENCY" envDefault:"4" help:"jetbox relay: tenants relayed at once (each tenant by one relay at a time, in order)"`
	HTTPListen   string        `env:"SOMABRAIN_RELAY_HTTP_LISTEN" envDefault:"127.0.0.1:9465" help:"jetbox relay: listen address of its /metrics, /healthz and /readyz; off disables"`
}

// Log is what every command logs, and how.
type Log struct {
	Level    string `env:"SOMABRAIN_OUTBOX_LOG_LEVEL" envDefault:"info" help:"debug, info, warn or error"`
	Format   string `env:"SOMABRAIN_OUTBOX_LOG_FORMAT" envDefault:"auto" help:"json, console, or auto (console on a terminal)"`
	Payloads bool   `env:"SOMABRAIN_OUTBOX_LOG_PAYLOADS" envDefault:"false" help:"include write bodies and memory API answers in failure logs (they are the users' data: off by default)"`
}

// Ops is how a running jetbox is watched: its ops HTTP listener and
// what it serves, its traces, its metrics' tenant labels.
type Ops struct {
	HTTPListen     string `env:"SOMABRAIN_OUTBOX_HTTP_LISTEN" envDefault:"127.0.0.1:9464" help:"listen address of /metrics, /healthz and /readyz; off disables (an empty value means the default)"`
	Pprof          bool   `env:"SOMABRAIN_OUTBOX_PPROF" envDefault:"false" help:"also serve Go's profiles under /debug/pprof/ on the ops HTTP listener, the mutex profile included"`
	Tracing        bool   `env:"SOMABRAIN_OUTBOX_TRACING" envDefault:"false" help:"make OpenTelemetry spans of every write (publish, worker process, memory API call) and export them with OTLP over HTTP, configured by the standard OTEL_* variables (README, Tracing); OTEL_SDK_DISABLED=true turns them off again"`
	MetricsTenants int    `env:"SOMABRAIN_OUTBOX_METRICS_TENANTS" envDefault:"100" help:"tenants with their own metrics label (at least 1); later ones share _other"`
}

// MaxRelayBatchSize bounds SOMABRAIN_RELAY_BATCH_SIZE: a batch's rows are
// held in memory, payloads included, until its transaction ends.
const MaxRelayBatchSize = 10000

// HTTPListenOff turns the ops HTTP server off. (An empty variable cannot:
// like every variable with a default, empty means the default.)
const HTTPListenOff = "off"

// ErrInvalid is wrapped by every configuration error.
var ErrInvalid = errors.New("invalid configuration")

// codeDefaults are the defaults declared by the package a setting belongs
// to, by variable; their envDefault tags are empty. Like envDefault, they
// apply to a variable that is unset or empty.
var codeDefaults = map[string]string{
	"SOMABRAIN_OUTBOX_TENANT_MAX_PENDING":      strconv.FormatInt(streams.DefaultTenantMaxPending, 10),
	"SOMABRAIN_OUTBOX_MAX_ACK_PENDING":         strconv.Itoa(streams.DefaultConfig().MaxAckPending),
	"SOMABRAIN_OUTBOX_PULL_MAX_BYTES":          strconv.Itoa(streams.DefaultPullMaxBytes),
	"SOMABRAIN_OUTBOX_QUEUED_PER_PARTITION":    strconv.Itoa(streams.DefaultQueuedPerPartition),
	"SOMABRAIN_OUTBOX_REPLY_PREFIXES":          streams.DefaultReplyPrefix,
	"SOMABRAIN_OUTBOX_INGEST_LISTEN":           limits.Listen,
	"SOMABRAIN_OUTBOX_INGEST_MAX_BODY_BYTES":   strconv.Itoa(limits.MaxBodyBytes),
	"SOMABRAIN_OUTBOX_INGEST_MAX_HEADER_BYTES": strconv.Itoa(limits.MaxHeaderBytes),
	"SOMABRAIN_OUTBOX_INGEST_READ_TIMEOUT":     durationText(limits.ReadTimeout),
	"SOMABRAIN_OUTBOX_INGEST_IDLE_TIMEOUT":     durationText(limits.IdleTimeout),
	"SOMABRAIN_OUTBOX_INGEST_MAX_CONCURRENT":   strconv.Itoa(limits.MaxConcurrent),
}

// durationText writes d as a setting is written: 2m rather than 2m0s.
func durationText(d time.Duration) string {
	s := d.String()
	for _, zero := range []string{"m0s", "h0m"} {
		if strings.HasSuffix(s, zero) {
			s = s[:len(s)-2]
		}
	}
	return s
}

// Load reads the environment. environ nil means the process environment.
func Load(environ map[string]string) (Config, error) {
	if environ == nil {
		environ = env.ToMap(os.Environ())
	}
	environ = maps.Clone(environ)
	if _, err := applyAliases(environ); err != nil {
		return Config{}, err
	}
	for name, def := range codeDefaults {
		if environ[name] == "" {
			environ[name] = def
		}
	}
	var c Config
	if err := parse(&c, environ); err != nil {
		return c, err
	}
	return c, c.Validate()
}

// parse fills c's groups from environ, in order. It parses one group at a
// time because the parser names a field it cannot parse by the field's
// name alone, which only its group makes unique (Worker.Concurrency,
// Relay.Concurrency).
func parse(c *Config, environ map[string]string) error {
	groups := reflect.ValueOf(c).Elem()
	var msgs []string
	for i := range groups.NumField() {
		group := groups.Field(i)
		if err := env.ParseWithOptions(group.Addr().Interface(), env.Options{Environment: environ}); err != nil {
			msgs = append(msgs, explain(err, group.Type())...)
		}
	}
	if len(msgs) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalid, strings.Join(msgs, "; "))
	}
	return nil
}

// explain rewrites the parser's field names, in group, into variable names.
func explain(err error, group reflect.Type) []string {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return []string{err.Error()}
	}
	var msgs []string
	for _, e := range agg.Errors {
		var pe env.ParseError
		if errors.As(e, &pe) {
			if f, ok := group.FieldByName(pe.Name); ok {
				msgs = append(msgs, fmt.Sprintf("%s: %v (%s)", f.Tag.Get("env"), pe.Err, f.Tag.Get("help")))
				continue
			}
		}
		msgs = append(msgs, e.Error())
	}
	return msgs
}

func bad(variable, value, allowed string) error {
	return fmt.Errorf("%w: %s=%q, allowed: %s", ErrInvalid, variable, value, allowed)
}

// DiskSync is SOMABRAIN_OUTBOX_NATS_SYNC: the embedded nats-server
// flushes its files to disk every interval, or after every write when
// always is true.
func (e Embedded) DiskSync() (interval time.Duration, always bool, err error) {
	if e.NATSSync == "always" {
		return 0, true, nil
	}
	interval, err = time.ParseDuration(e.NATSSync)
	if err == nil && interval <= 0 {
		err = fmt.Errorf("sync interval %s is not above 0", interval)
	}
	return interval, false, err
}

// Validate checks values the parser cannot.
func (c Config) Validate() error {
	if _, err := streams.ParseMode(c.Memory.WriteMode); err != nil {
		return bad("SOMABRAIN_MEMORY_WRITE_MODE", c.Memory.WriteMode, "sync, fast_ack, background")
	}
	if c.Memory.FailureThreshold < 1 {
		return bad("SOMABRAIN_MEMORY_FAILURE_THRESHOLD", fmt.Sprint(c.Memory.FailureThreshold), "a whole number of at least 1")
	}
	if c.Memory.ResetInterval.Duration() <= 0 {
		return bad("SOMABRAIN_MEMORY_RESET_INTERVAL", fmt.Sprint(c.Memory.ResetInterval.Duration().Seconds()), "a number of seconds above 0")
	}
	if c.Memory.Endpoint != "" {
		if u, err := url.Parse(c.Memory.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return bad("SOMABRAIN_MEMORY_HTTP_ENDPOINT", RedactURL(c.Memory.Endpoint), "an http:// or https:// URL, or empty for the development memory API")
		}
	}
	if err := tenancy.Validate(c.Memory.DefaultTenant); err != nil {
		return fmt.Errorf("%w: SOMABRAIN_DEFAULT_TENANT: %v", ErrInvalid, err)
	}
	for name, addr := range map[string]string{"SOMABRAIN_OUTBOX_NATS_LISTEN": c.Embedded.NATSListen, "SOMABRAIN_OUTBOX_MEMAPI_LISTEN": c.Embedded.MemAPIListen} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return bad(name, addr, "host:port")
		}
	}
	for name, addr := range map[string]string{"SOMABRAIN_OUTBOX_HTTP_LISTEN": c.Ops.HTTPListen, "SOMABRAIN_RELAY_HTTP_LISTEN": c.Relay.HTTPListen, "SOMABRAIN_OUTBOX_INGEST_LISTEN": c.FrontDoor.Listen} {
		if addr == HTTPListenOff {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return bad(name, addr, "host:port, or off")
		}
	}
	if c.Memory.Endpoint != "" && c.FrontDoor.Listen != HTTPListenOff {
		if u, err := url.Parse(c.Memory.Endpoint); err == nil && u.Host == c.FrontDoor.Listen {
			return bad("SOMABRAIN_MEMORY_HTTP_ENDPOINT", RedactURL(c.Memory.Endpoint), "the memory API, not the front door on SOMABRAIN_OUTBOX_INGEST_LISTEN (its writes would come back to it)")
		}
	}
	if _, err := streams.ParseMode(c.Relay.Mode); err != nil {
		return bad("SOMABRAIN_RELAY_MODE", c.Relay.Mode, "fast_ack, background, sync")
	}
	if _, _, err := c.Embedded.DiskSync(); err != nil {
		return bad("SOMABRAIN_OUTBOX_NATS_SYNC", c.Embedded.NATSSync, "a duration above 0 such as 1s or 2m, or always")
	}
	if c.Outbox.Replicas != 1 && c.Outbox.Replicas != 3 && c.Outbox.Replicas != 5 {
		return bad("SOMABRAIN_OUTBOX_REPLICAS", fmt.Sprint(c.Outbox.Replicas), "1, 3 or 5")
	}
	if c.Outbox.TenantMaxPending == 0 || c.Outbox.TenantMaxPending < -1 {
		return bad("SOMABRAIN_OUTBOX_TENANT_MAX_PENDING", fmt.Sprint(c.Outbox.TenantMaxPending), "a whole number of at least 1, or -1 for unlimited")
	}
	if c.Outbox.Storage != "file" && c.Outbox.Storage != "memory" {
		return bad("SOMABRAIN_OUTBOX_STORAGE", c.Outbox.Storage, "file, memory")
	}
	if _, err := c.Worker.GroupModes(); err != nil {
		return bad("SOMABRAIN_OUTBOX_MODES", c.Worker.Modes, "a comma-separated list of sync, fast_ack, background")
	}
	positive := []struct {
		name string
		ok   bool
		val  string
	}{
		{"SOMABRAIN_OUTBOX_DUPLICATE_WINDOW", c.Outbox.DuplicateWindow > 0, c.Outbox.DuplicateWindow.String()},
		{"SOMABRAIN_OUTBOX_ACK_WAIT", c.Outbox.AckWait >= time.Second, c.Outbox.AckWait.String()},
		{"SOMABRAIN_OUTBOX_MAX_ACK_PENDING", c.Outbox.MaxAckPending >= 1, fmt.Sprint(c.Outbox.MaxAckPending)},
		{"SOMABRAIN_OUTBOX_PARTITIONS", c.Outbox.Partitions >= 1 && c.Outbox.Partitions <= streams.MaxPartitions, fmt.Sprint(c.Outbox.Partitions)},
		{"SOMABRAIN_OUTBOX_MEMBER_TTL", c.Outbox.MemberTTL >= time.Second, c.Outbox.MemberTTL.String()},
		{"SOMABRAIN_OUTBOX_CONCURRENCY", c.Worker.Concurrency >= 1, fmt.Sprint(c.Worker.Concurrency)},
		{"SOMABRAIN_OUTBOX_REQUEST_TIMEOUT", c.Worker.RequestTimeout > 0, c.Worker.RequestTimeout.String()},
		{"SOMABRAIN_OUTBOX_MAX_ATTEMPTS", c.Worker.MaxAttempts >= 1, fmt.Sprint(c.Worker.MaxAttempts)},
		{"SOMABRAIN_OUTBOX_BACKOFF_BASE", c.Worker.BackoffBase > 0, c.Worker.BackoffBase.String()},
		{"SOMABRAIN_OUTBOX_BACKOFF_MAX", c.Worker.BackoffMax >= c.Worker.BackoffBase, c.Worker.BackoffMax.String()},
		{"SOMABRAIN_OUTBOX_SYNC_TIMEOUT", c.Producer.SyncTimeout > 0, c.Producer.SyncTimeout.String()},
		{"SOMABRAIN_OUTBOX_PUBLISH_TIMEOUT", c.Producer.PublishTimeout > 0, c.Producer.PublishTimeout.String()},
		{"SOMABRAIN_OUTBOX_BUFFER_SIZE", c.Producer.BufferSize >= 1, fmt.Sprint(c.Producer.BufferSize)},
		{"SOMABRAIN_OUTBOX_METRICS_TENANTS", c.Ops.MetricsTenants >= 1, fmt.Sprint(c.Ops.MetricsTenants)},
		{"SOMABRAIN_OUTBOX_PULL_MAX_BYTES", c.Worker.PullMaxBytes >= 1, fmt.Sprint(c.Worker.PullMaxBytes)},
		{"SOMABRAIN_OUTBOX_QUEUED_PER_PARTITION", c.Worker.QueuedPerPartition >= 1, fmt.Sprint(c.Worker.QueuedPerPartition)},
		{"SOMABRAIN_OUTBOX_INGEST_MAX_BODY_BYTES", c.FrontDoor.MaxBodyBytes >= 1, fmt.Sprint(c.FrontDoor.MaxBodyBytes)},
		{"SOMABRAIN_OUTBOX_INGEST_MAX_HEADER_BYTES", c.FrontDoor.MaxHeaderBytes >= 1, fmt.Sprint(c.FrontDoor.MaxHeaderBytes)},
		{"SOMABRAIN_OUTBOX_INGEST_READ_TIMEOUT", c.FrontDoor.ReadTimeout > 0, c.FrontDoor.ReadTimeout.String()},
		{"SOMABRAIN_OUTBOX_INGEST_IDLE_TIMEOUT", c.FrontDoor.IdleTimeout > 0, c.FrontDoor.IdleTimeout.String()},
		{"SOMABRAIN_OUTBOX_INGEST_MAX_CONCURRENT", c.FrontDoor.MaxConcurrent >= 1, fmt.Sprint(c.FrontDoor.MaxConcurrent)},
		{"SOMABRAIN_RELAY_POLL_INTERVAL", c.Relay.PollInterval > 0, c.Relay.PollInterval.String()},
		{"SOMABRAIN_RELAY_BATCH_SIZE", c.Relay.BatchSize >= 1 && c.Relay.BatchSize <= MaxRelayBatchSize, fmt.Sprint(c.Relay.BatchSize)},
		{"SOMABRAIN_RELAY_CONCURRENCY", c.Relay.Concurrency >= 1, fmt.Sprint(c.Relay.Concurrency)},
	}
	for _, p := range positive {
		if !p.ok {
			allowed := "a value above 0"
			switch p.name {
			case "SOMABRAIN_OUTBOX_ACK_WAIT", "SOMABRAIN_OUTBOX_MEMBER_TTL":
				allowed = "at least 1s"
			case "SOMABRAIN_OUTBOX_PARTITIONS":
				allowed = fmt.Sprintf("1 to %d", streams.MaxPartitions)
			case "SOMABRAIN_RELAY_BATCH_SIZE":
				allowed = fmt.Sprintf("1 to %d", MaxRelayBatchSize)
			case "SOMABRAIN_OUTBOX_BACKOFF_MAX":
				allowed = "at least SOMABRAIN_OUTBOX_BACKOFF_BASE"
			}
			return bad(p.name, p.val, allowed)
		}
	}
	if c.Worker.RequestTimeout >= c.Outbox.AckWait {
		return bad("SOMABRAIN_OUTBOX_REQUEST_TIMEOUT", c.Worker.RequestTimeout.String(), "shorter than SOMABRAIN_OUTBOX_ACK_WAIT ("+c.Outbox.AckWait.String()+"), or a slow call is attempted twice at once")
	}
	if len(c.Worker.ReplyPrefixList()) == 0 {
		return bad("SOMABRAIN_OUTBOX_REPLY_PREFIXES", c.Worker.ReplyPrefixes, "one or more subject prefixes such as _INBOX.")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return bad("SOMABRAIN_OUTBOX_LOG_LEVEL", c.Log.Level, "debug, info, warn, error")
	}
	switch c.Log.Format {
	case "auto", "json", "console":
	default:
		return bad("SOMABRAIN_OUTBOX_LOG_FORMAT", c.Log.Format, "auto, json, console")
	}
	return nil
}

// GroupModes parses SOMABRAIN_OUTBOX_MODES.
func (w Worker) GroupModes() ([]streams.Mode, error) {
	var modes []streams.Mode
	for _, s := range strings.Split(w.Modes, ",") {
		m, err := streams.ParseMode(strings.TrimSpace(s))
		if err != nil {
			return nil, err
		}
		modes = append(modes, m)
	}
	return modes, nil
}

// ReplyPrefixList parses SOMABRAIN_OUTBOX_REPLY_PREFIXES.
func (w Worker) ReplyPrefixList() []string {
	var out []string
	for _, p := range strings.Split(w.ReplyPrefixes, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Streams is the outbox layout.
func (o Outbox) Streams() streams.Config {
	s := streams.DefaultConfig()
	s.Stream, s.DLQStream, s.AttemptsBucket = o.Stream, o.DLQStream, o.AttemptsBucket
	s.Replicas = o.Replicas
	s.Storage = jetstream.FileStorage
	if o.Storage == "memory" {
		s.Storage = jetstream.MemoryStorage
	}
	s.DuplicateWindow, s.MaxBytes, s.MaxMsgs = o.DuplicateWindow, o.MaxBytes, o.MaxMsgs
	s.TenantMaxPending = o.TenantMaxPending
	s.DLQMaxAge, s.AckWait, s.MaxAckPending = o.DLQMaxAge, o.AckWait, o.MaxAckPending
	s.Partitions, s.MemberTTL = o.Partitions, o.MemberTTL
	return s
}

// Var is one configuration variable as documented.
type Var struct {
	Name, Default, Help, Value string
	Secret                     bool
}

// Vars lists every variable, group by group, with its default and,
// redacted where secret, its effective value.
func (c Config) Vars() []Var {
	var out []Var
	groups := reflect.ValueOf(c)
	for i := range groups.NumField() {
		group := groups.Field(i)
		for j := range group.NumField() {
			f, field := group.Type().Field(j), group.Field(j)
			name := f.Tag.Get("env")
			value := fmt.Sprint(field.Interface())
			if s, ok := field.Interface().(Seconds); ok {
				value = strconv.FormatFloat(s.Duration().Seconds(), 'f', -1, 64)
			}
			secret := f.Tag.Get("secret") == "true"
			if secret && value != "" {
				value = Redacted
			}
			switch name {
			case "SOMABRAIN_MEMORY_HTTP_ENDPOINT", "NATS_URL":
				value = RedactURL(value)
			case "SOMABRAIN_POSTGRES_DSN":
				value = RedactDSN(c.Relay.PostgresDSN)
			}
			def := f.Tag.Get("envDefault")
			if def == "" {
				def = codeDefaults[name]
			}
			out = append(out, Var{Name: name, Default: def, Help: f.Tag.Get("help"), Value: value, Secret: secret})
		}
	}
	return out
}

// RedactDSN hides the password of a PostgreSQL connection string, in URL
// form (postgres://user:secret@host/db?password=...) or key=value form
// (password=secret), and keeps the rest, so a log or an error still says
// which database.
func RedactDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		if u.User != nil {
			if _, has := u.User.Password(); has {
				u.User = url.UserPassword(u.User.Username(), "xxxxx")
			}
		}
		if q := u.Query(); q.Has("password") {
			q.Set("password", "xxxxx")
			u.RawQuery = q.Encode()
		}
		return u.String()
	}
	return kvPassword.ReplaceAllString(dsn, "${1}xxxxx")
}

// kvPassword matches password=... in a key=value DSN, quoted or not.
var kvPassword = regexp.MustCompile(`(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)
