package memapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jetbox-dev/jetbox/streams"
)

// Request headers the API reads.
const (
	headerTenant         = "X-Soma-Tenant"
	headerNamespace      = "X-Soma-Namespace"
	headerIdempotencyKey = "X-Idempotency-Key"
	headerRequestID      = "X-Request-ID"
	headerReplayed       = "Idempotent-Replayed"
)

const (
	maxBodyBytes         = 8 << 20
	maxTenantBytes       = 128
	maxIdempotencyKeyLen = 1024
	defaultLinkStrength  = 1.0
	defaultLinkType      = "related"
	memoryTypeEpisodic   = streams.MemoryEpisodic
	memoryTypeSemantic   = streams.MemorySemantic
	bearerPrefix         = "bearer "
)

// Handler returns the full HTTP API.
func (s *Store) Handler() http.Handler {
	api := http.NewServeMux()
	api.Handle("/memories", byMethod{
		http.MethodPost: s.tenantScoped(s.handleStore),
	})
	api.Handle("/memories/{coord}", byMethod{
		http.MethodGet:    s.tenantScoped(s.handleGet),
		http.MethodDelete: s.tenantScoped(s.handleDelete),
	})
	api.Handle("/graph/link", byMethod{
		http.MethodPost: s.tenantScoped(s.handleLink),
	})
	api.Handle("/history/{coord}", byMethod{
		http.MethodGet: s.tenantScoped(s.handleHistory),
	})
	api.Handle("/stats", byMethod{
		http.MethodGet: func(w http.ResponseWriter, _ *http.Request) {
			writeAnswer(w, jsonAnswer(http.StatusOK, s.Stats()), false)
		},
	})
	api.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeAnswer(w, errorAnswer(http.StatusNotFound, fmt.Errorf("no such endpoint: %s", r.URL.Path)), false)
	})

	root := http.NewServeMux()
	root.Handle("/healthz", byMethod{
		http.MethodGet: func(w http.ResponseWriter, _ *http.Request) {
			writeAnswer(w, jsonAnswer(http.StatusOK, map[string]bool{"healthy": true}), false)
		},
	})
	root.Handle("/", s.authenticate(api))
	return root
}

// byMethod dispatches on the request method and answers 405 otherwise, in
// JSON like every other error.
type byMethod map[string]http.HandlerFunc

func (m byMethod) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h, ok := m[r.Method]; ok {
		h(w, r)
		return
	}
	allowed := make([]string, 0, len(m))
	for method := range m {
		allowed = append(allowed, method)
	}
	sort.Strings(allowed)
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	writeAnswer(w, errorAnswer(http.StatusMethodNotAllowed, fmt.Errorf("method %s not allowed on %s", r.Method, r.URL.Path)), false)
}

// authenticate requires the bearer token when one is configured. Both sides
// are hashed first so the comparison takes the same time whatever the length.
func (s *Store) authenticate(next http.Handler) http.Handler {
	if s.opts.Token == "" {
		return next
	}
	want := sha256.Sum256([]byte(s.opts.Token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		var token string
		if len(auth) > len(bearerPrefix) && strings.EqualFold(auth[:len(bearerPrefix)], bearerPrefix) {
			token = auth[len(bearerPrefix):]
		}
		got := sha256.Sum256([]byte(token))
		if token == "" || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="memory"`)
			writeAnswer(w, errorAnswer(http.StatusUnauthorized, errUnauthorized), false)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// dataHandler serves a tenant's data endpoint; body is already read.
type dataHandler func(w http.ResponseWriter, r *http.Request, c caller, body []byte)

// tenantScoped reads the caller headers and the body, rejects a request
// without a valid tenant, fails one of a tenant Options.Fail names, and adds
// the configured delay before h runs. The
// body is read first because the server only notices a client that went
// away once the body is consumed, and the delay must end with the client.
func (s *Store) tenantScoped(h dataHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c := caller{
			tenant:         r.Header.Get(headerTenant),
			namespace:      r.Header.Get(headerNamespace),
			requestID:      r.Header.Get(headerRequestID),
			idempotencyKey: r.Header.Get(headerIdempotencyKey),
		}
		if err := validateTenant(c.tenant); err != nil {
			writeAnswer(w, errorAnswer(http.StatusBadRequest, err), false)
			return
		}
		if len(c.idempotencyKey) > maxIdempotencyKeyLen {
			writeAnswer(w, errorAnswer(http.StatusBadRequest,
				fmt.Errorf("%s is longer than %d bytes", headerIdempotencyKey, maxIdempotencyKeyLen)), false)
			return
		}
		body, ok := readBody(w, r)
		if !ok {
			return
		}
		if s.opts.Fail != nil && s.opts.Fail(c.tenant) {
			writeAnswer(w, errorAnswer(http.StatusServiceUnavailable, errTenantUnavailable), false)
			return
		}
		if err := pause(r.Context(), s.opts.Delay); err != nil {
			writeAnswer(w, errorAnswer(http.StatusServiceUnavailable, fmt.Errorf("request ended during the configured delay: %w", err)), false)
			return
		}
		h(w, r, c, body)
	}
}

// pause waits d or until ctx ends. It reports ctx's error even when both
// happened, so a request whose client has left is not applied after the wait.
func pause(ctx context.Context, d time.Duration) error {
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
	}
	return ctx.Err()
}

// validateTenant applies the contract's rule: 1 to 128 bytes of valid UTF-8
// with no control characters.
func validateTenant(tenant string) error {
	switch {
	case tenant == "":
		return fmt.Errorf("header %s is required", headerTenant)
	case len(tenant) > maxTenantBytes:
		return fmt.Errorf("header %s is longer than %d bytes", headerTenant, maxTenantBytes)
	case !utf8.ValidString(tenant):
		return fmt.Errorf("header %s is not valid UTF-8", headerTenant)
	case strings.IndexFunc(tenant, unicode.IsControl) >= 0:
		return fmt.Errorf("header %s contains a control character", headerTenant)
	}
	return nil
}

type storeRequest struct {
	Coord      string          `json:"coord"`
	Payload    json.RawMessage `json:"payload"`
	MemoryType string          `json:"memory_type"`
}

func (s *Store) handleStore(w http.ResponseWriter, r *http.Request, c caller, body []byte) {
	s.write(w, r, c, body, parseStore(body))
}

func parseStore(body []byte) mutation {
	var req storeRequest
	if err := decodeObject(body, &req); err != nil {
		return reject(err)
	}
	canonical, err := canonicalCoord(req.Coord)
	if err != nil {
		return reject(err)
	}
	payload := bytes.TrimSpace(req.Payload)
	if len(payload) == 0 || payload[0] != '{' {
		return reject(errors.New("payload must be a JSON object"))
	}
	switch req.MemoryType {
	case "":
		req.MemoryType = memoryTypeEpisodic
	case memoryTypeEpisodic, memoryTypeSemantic:
	default:
		return reject(fmt.Errorf("memory_type %q: want %q or %q", req.MemoryType, memoryTypeEpisodic, memoryTypeSemantic))
	}
	return storeMemory{
		canonical: canonical,
		memory:    Memory{Coord: req.Coord, Payload: payload, MemoryType: req.MemoryType},
	}
}

func (s *Store) handleDelete(w http.ResponseWriter, r *http.Request, c caller, body []byte) {
	coord := r.PathValue("coord")
	var m mutation
	if canonical, err := canonicalCoord(coord); err != nil {
		m = reject(err)
	} else {
		m = deleteMemory{canonical: canonical, coord: coord}
	}
	s.write(w, r, c, body, m)
}

// linkRequest is SomaFractalMemory's link body. Like SFM it ignores
// fields it does not know, weight among them.
type linkRequest struct {
	FromCoord string          `json:"from_coord"`
	ToCoord   string          `json:"to_coord"`
	LinkType  *string         `json:"link_type"`
	Strength  *float64        `json:"strength"`
	Metadata  *map[string]any `json:"metadata"`
}

func (s *Store) handleLink(w http.ResponseWriter, r *http.Request, c caller, body []byte) {
	s.write(w, r, c, body, parseLink(body))
}

func parseLink(body []byte) mutation {
	var req linkRequest
	if err := decodeObject(body, &req); err != nil {
		return reject(err)
	}
	from, err := canonicalCoord(req.FromCoord)
	if err != nil {
		return reject(fmt.Errorf("from_coord: %w", err))
	}
	to, err := canonicalCoord(req.ToCoord)
	if err != nil {
		return reject(fmt.Errorf("to_coord: %w", err))
	}
	linkType := defaultLinkType
	if req.LinkType != nil && *req.LinkType != "" {
		linkType = *req.LinkType
	}
	strength := defaultLinkStrength
	if req.Strength != nil {
		strength = *req.Strength
	}
	link := storedLink{FromCoord: req.FromCoord, ToCoord: req.ToCoord, LinkType: linkType, Strength: strength}
	if req.Metadata != nil {
		link.Metadata = *req.Metadata
	}
	return linkMemories{fromCanonical: from, toCanonical: to, link: link}
}

func reject(err error) mutation {
	return rejection{answer: errorAnswer(http.StatusUnprocessableEntity, err)}
}

// write executes a mutation and sends its answer. A rejection without an
// idempotency key has nothing to store, so it skips the transaction.
func (s *Store) write(w http.ResponseWriter, r *http.Request, c caller, body []byte, m mutation) {
	if rej, ok := m.(rejection); ok && c.idempotencyKey == "" {
		writeAnswer(w, rej.answer, false)
		return
	}
	res, err := s.execute(c, fingerprint(r.Method, r.URL.Path, body), m)
	if err != nil {
		writeAnswer(w, errorAnswer(http.StatusInternalServerError, fmt.Errorf("storage: %w", err)), false)
		return
	}
	writeAnswer(w, res.answer, res.replayed)
}

func (s *Store) handleGet(w http.ResponseWriter, r *http.Request, c caller, _ []byte) {
	coord := r.PathValue("coord")
	m, found, err := s.Get(c.tenant, coord)
	switch {
	case errors.Is(err, ErrInvalidCoord):
		writeAnswer(w, errorAnswer(http.StatusUnprocessableEntity, err), false)
	case err != nil:
		writeAnswer(w, errorAnswer(http.StatusInternalServerError, err), false)
	case !found:
		writeAnswer(w, errorAnswer(http.StatusNotFound, fmt.Errorf("no memory at coord %q", coord)), false)
	default:
		writeAnswer(w, jsonAnswer(http.StatusOK, m), false)
	}
}

func (s *Store) handleHistory(w http.ResponseWriter, r *http.Request, c caller, _ []byte) {
	coord := r.PathValue("coord")
	if _, err := canonicalCoord(coord); err != nil {
		writeAnswer(w, errorAnswer(http.StatusUnprocessableEntity, err), false)
		return
	}
	entries := s.History(c.tenant, coord)
	if entries == nil {
		entries = []HistoryEntry{}
	}
	writeAnswer(w, jsonAnswer(http.StatusOK, entries), false)
}

// readBody reads at most maxBodyBytes; on failure it has already answered.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err == nil {
		return body, true
	}
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		writeAnswer(w, errorAnswer(http.StatusRequestEntityTooLarge, fmt.Errorf("body is larger than %d bytes", maxBodyBytes)), false)
	} else {
		writeAnswer(w, errorAnswer(http.StatusBadRequest, fmt.Errorf("reading body: %w", err)), false)
	}
	return nil, false
}

// decodeObject unmarshals a JSON object body, with reasons that name the
// offending field rather than Go types.
func decodeObject(body []byte, v any) error {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return errors.New("body is empty: want a JSON object")
	}
	if !json.Valid(trimmed) {
		return errors.New("body is not valid JSON")
	}
	if trimmed[0] != '{' {
		return errors.New("body must be a JSON object")
	}
	err := json.Unmarshal(trimmed, v)
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		return fmt.Errorf("field %q: got a JSON %s", typeErr.Field, typeErr.Value)
	}
	return err
}

func writeAnswer(w http.ResponseWriter, a answer, replayed bool) {
	w.Header().Set("Content-Type", "application/json")
	if replayed {
		w.Header().Set(headerReplayed, "true")
	}
	w.WriteHeader(a.status)
	_, _ = w.Write(a.body)
}
