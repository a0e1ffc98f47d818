// Package frontdoor serves SomaFractalMemory's HTTP API in front of the
// outbox, so that a service written for SFM (SomaBrain) writes through
// jetbox by changing its memory API's base URL.
//
// Writes (POST /memories, DELETE /memories/{coord}, POST /graph/link)
// become outbox writes through the producer package, for the tenant the
// request names, in the mode X-Soma-Write-Mode asks for (else the
// configured one), and are answered as SFM answers them:
//
//   - sync: the memory API's own status and body once applied, or its
//     refusal as is; 202 with {"queued": true, "stream_sequence": n} and
//     the fields SFM would answer when the sync timeout passes with the
//     write durable;
//   - fast_ack (once the outbox stored the write) and background (at once):
//     200 with the body SFM would give, derived from the request.
//
// A body SFM would refuse is refused the same way before it enters the
// outbox (422 with Ninja's {"detail": [...]}, 400 {"detail": "..."} for a
// bad coordinate). Reads and health checks are proxied to the memory API
// unchanged, with the front door's own token; the caller's is never
// forwarded. docs/SOMABRAIN.md is the operator's guide.
package frontdoor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/jetbox-dev/jetbox/frontdoor/limits"
	"github.com/jetbox-dev/jetbox/internal/sfmapi"
	"github.com/jetbox-dev/jetbox/internal/text"
	"github.com/jetbox-dev/jetbox/producer"
	"github.com/jetbox-dev/jetbox/streams"
	"github.com/jetbox-dev/jetbox/tenancy"
)

// Defaults of the zero Config and ServerConfig values; jetbox's settings
// refer to them.
const (
	DefaultListen         = limits.Listen
	DefaultMaxBodyBytes   = limits.MaxBodyBytes
	DefaultMaxHeaderBytes = limits.MaxHeaderBytes
	DefaultMaxConcurrent  = limits.MaxConcurrent
	DefaultReadTimeout    = limits.ReadTimeout
	DefaultIdleTimeout    = limits.IdleTimeout
	DefaultProxyTimeout   = 10 * time.Second
)

// Retry-After values, in seconds, of the refusals that ask to come back.
const (
	retryBusy         = "1" // the front door or the outbox is briefly unable
	retryBacklogFull  = "1" // the tenant's writes waiting in the outbox reached its quota
	retryOutboxFull   = "5" // the whole outbox is full: the workers must drain it
	bodyLimitExceeded = "request body larger than %d bytes"
)

// Config configures a Handler.
type Config struct {
	Producer      *producer.Producer // writes go through it; required
	Mode          streams.Mode       // write mode without X-Soma-Write-Mode; "" = sync
	DefaultTenant string             // tenant of a request that names none; "" = tenancy.DefaultTenant
	MemoryAPI     string             // base URL reads are proxied to; required
	MemoryToken   string             // bearer token sent to the memory API with reads
	Tokens        Tokens             // accepted bearer tokens; none: every request is let in
	MaxBodyBytes  int64              // larger bodies are 413; 0 = DefaultMaxBodyBytes
	MaxConcurrent int                // requests served at once, more are 503; 0 = DefaultMaxConcurrent
	ProxyTimeout  time.Duration      // how long a read waits for the memory API's answer; 0 = DefaultProxyTimeout
	Log           zerolog.Logger
}

// Handler serves SFM's routes. It is safe for concurrent use.
type Handler struct {
	cfg   Config
	auth  *authenticator
	slots chan struct{}
	proxy *httputil.ReverseProxy
}

// New makes a Handler.
func New(cfg Config) (*Handler, error) {
	if cfg.Producer == nil {
		return nil, errors.New("frontdoor: nil Producer")
	}
	if cfg.Mode == "" {
		cfg.Mode = streams.ModeSync
	}
	if _, err := streams.ParseMode(string(cfg.Mode)); err != nil {
		return nil, fmt.Errorf("frontdoor: Mode: %w", err)
	}
	if cfg.DefaultTenant == "" {
		cfg.DefaultTenant = tenancy.DefaultTenant
	}
	if err := tenancy.Validate(cfg.DefaultTenant); err != nil {
		return nil, fmt.Errorf("frontdoor: DefaultTenant: %w", err)
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = DefaultMaxConcurrent
	}
	if cfg.ProxyTimeout <= 0 {
		cfg.ProxyTimeout = DefaultProxyTimeout
	}
	target, err := url.Parse(cfg.MemoryAPI)
	if err != nil || (target.Scheme != "http" && target.Scheme != "https") || target.Host == "" {
		return nil, errors.New("frontdoor: MemoryAPI must be an http:// or https:// URL")
	}
	return &Handler{
		cfg:   cfg,
		auth:  newAuthenticator(cfg.Tokens),
		slots: make(chan struct{}, cfg.MaxConcurrent),
		proxy: newProxy(target, cfg.MemoryToken, cfg.ProxyTimeout, cfg.Log),
	}, nil
}

// Authenticated reports whether the front door requires a token.
func (h *Handler) Authenticated() bool { return !h.auth.open }

// route is what a request asks for.
type route struct {
	op    streams.Op // a write; "" for a read
	coord string     // DELETE /memories/{coord}: the coord, unescaped
	open  bool       // answered without a token, as SFM does
}

// match finds the route of r, or the refusal SFM's router would give.
func match(r *http.Request) (route, *refusal) {
	path := r.URL.EscapedPath()
	allow := func(methods ...string) *refusal {
		if slices.Contains(methods, r.Method) {
			return nil
		}
		return notAllowed(methods)
	}
	switch path {
	case sfmapi.PathMemories:
		return route{op: streams.OpStore}, allow(http.MethodPost)
	case sfmapi.PathLink:
		return route{op: streams.OpLink}, allow(http.MethodPost)
	case sfmapi.PathSearch:
		return route{}, allow(http.MethodGet, http.MethodPost)
	case sfmapi.PathNeighbors, sfmapi.PathGraphPath, sfmapi.PathHealth:
		return route{}, allow(http.MethodGet)
	case sfmapi.PathHealthz, sfmapi.PathReadyz, sfmapi.PathHealthBasic, sfmapi.PathStats, sfmapi.PathPing:
		return route{open: true}, allow(http.MethodGet)
	}
	if rest, ok := strings.CutPrefix(path, sfmapi.PathMemoryPrefix); ok && rest != "" && !strings.Contains(rest, "/") {
		coord, err := url.PathUnescape(rest)
		if err != nil {
			return route{}, refuse(http.StatusNotFound, sfmapi.MsgNotFound)
		}
		if r.Method == http.MethodDelete {
			return route{op: streams.OpDelete, coord: coord}, nil
		}
		return route{}, allow(http.MethodGet, http.MethodDelete)
	}
	return route{}, refuse(http.StatusNotFound, sfmapi.MsgNotFound)
}

// ServeHTTP serves one request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	select {
	case h.slots <- struct{}{}:
		defer func() { <-h.slots }()
	default:
		w.Header().Set(sfmapi.HeaderRetryAfter, retryBusy)
		writeRefusal(w, refuse(http.StatusServiceUnavailable, fmt.Sprintf("front door busy: %d requests in progress", h.cfg.MaxConcurrent)))
		return
	}
	rt, ref := match(r)
	if ref != nil {
		writeRefusal(w, ref)
		return
	}
	if rt.open {
		h.forward(w, r, "")
		return
	}
	who, ok := h.auth.authenticate(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", "Bearer")
		writeRefusal(w, refuse(http.StatusUnauthorized, unauthorized(r)))
		return
	}
	tenant, ref := resolveTenant(r, who, h.cfg.DefaultTenant)
	if ref != nil {
		writeRefusal(w, ref)
		return
	}
	if rt.op == "" {
		h.forward(w, r, tenant)
		return
	}
	h.write(w, r, rt, tenant)
}

// unauthorized is SFM's word for a request without an accepted token:
// its /health checks the token itself and says what is wrong; every other
// route answers as Django Ninja's bearer check does.
func unauthorized(r *http.Request) string {
	if r.URL.Path != sfmapi.PathHealth {
		return sfmapi.MsgUnauthorized
	}
	if r.Header.Get(sfmapi.HeaderAuthorization) == "" {
		return sfmapi.MsgMissingAuthHeader
	}
	return sfmapi.MsgInvalidAPIToken
}

// forward proxies a read to the memory API as the given tenant ("" keeps
// the request's tenant header, for the open health checks).
func (h *Handler) forward(w http.ResponseWriter, r *http.Request, tenant string) {
	if r.ContentLength > h.cfg.MaxBodyBytes {
		writeRefusal(w, refuse(http.StatusRequestEntityTooLarge, fmt.Sprintf(bodyLimitExceeded, h.cfg.MaxBodyBytes)))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes)
	if tenant != "" {
		r.Header.Set(sfmapi.HeaderTenant, tenant)
	}
	h.proxy.ServeHTTP(w, r)
}

// readBody reads at most MaxBodyBytes.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, *refusal) {
	tooLarge := refuse(http.StatusRequestEntityTooLarge, fmt.Sprintf(bodyLimitExceeded, h.cfg.MaxBodyBytes))
	if r.ContentLength > h.cfg.MaxBodyBytes {
		return nil, tooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes))
	var maxErr *http.MaxBytesError
	switch {
	case errors.As(err, &maxErr):
		return nil, tooLarge
	case err != nil:
		return nil, refuse(http.StatusBadRequest, "reading the request body failed")
	}
	return body, nil
}

// writeMode is the request's X-Soma-Write-Mode, else the configured mode.
func (h *Handler) writeMode(r *http.Request) (streams.Mode, *refusal) {
	v := strings.TrimSpace(r.Header.Get(headerWriteMode))
	if v == "" {
		return h.cfg.Mode, nil
	}
	m, err := streams.ParseMode(v)
	if err != nil {
		return "", refuse(http.StatusBadRequest, headerWriteMode+" must be sync, fast_ack or background")
	}
	return m, nil
}

func writeRefusal(w http.ResponseWriter, r *refusal) {
	if r.allow != "" {
		w.Header().Set("Allow", r.allow)
		w.Header().Set(sfmapi.HeaderContentType, "text/html; charset=utf-8")
		w.WriteHeader(r.status)
		_, _ = w.Write(r.body)
		return
	}
	writeJSON(w, r.status, r.body)
}

// notAllowed is the router's answer to a method a route does not serve,
// as Ninja gives it: 405, plain text, the route's methods in Allow.
func notAllowed(methods []string) *refusal {
	allowed := slices.Sorted(slices.Values(methods))
	return &refusal{status: http.StatusMethodNotAllowed, body: []byte(sfmapi.MsgMethodNotAllowed), allow: strings.Join(allowed, ", ")}
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set(sfmapi.HeaderContentType, sfmapi.ContentTypeJSON)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// newProxy forwards reads to target with the front door's own token.
func newProxy(target *url.URL, token string, timeout time.Duration, log zerolog.Logger) *httputil.ReverseProxy {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.ResponseHeaderTimeout = timeout
	transport.MaxIdleConnsPerHost = 64
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			for _, h := range callerCredentials {
				pr.Out.Header.Del(h)
			}
			if token != "" {
				pr.Out.Header.Set(sfmapi.HeaderAuthorization, sfmapi.Bearer(token))
			}
		},
		Transport: transport,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			var maxErr *http.MaxBytesError
			if errors.As(err, &maxErr) {
				writeRefusal(w, refuse(http.StatusRequestEntityTooLarge, fmt.Sprintf(bodyLimitExceeded, maxErr.Limit)))
				return
			}
			if errors.Is(err, context.Canceled) {
				return // the caller left
			}
			log.Warn().Err(err).Str("path", text.Clip(r.URL.Path, 128)).Msg("front door: memory API unreachable for a read")
			writeRefusal(w, refuse(http.StatusBadGateway, "memory API unreachable"))
		},
	}
}
