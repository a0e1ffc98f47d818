package memapi

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jetbox-dev/jetbox/internal/pyfloat"
	"github.com/jetbox-dev/jetbox/internal/sfmapi"
)

const (
	// maxBodyBytes is Django's DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MiB), which
	// SFM keeps: reading a larger body raises, and SFM answers 500.
	maxBodyBytes = 2621440
	// maxTenantChars is the length of SFM's tenant column: a longer tenant
	// cannot be written, and SFM answers 500.
	maxTenantChars = 255
	// defaultTenant is SFM's tenant when neither the auth context nor the
	// X-Soma-Tenant header names one.
	defaultTenant = "default"
	// namespace is SFM's SOMA_MEMORY_NAMESPACE default, reported by /stats.
	namespace = "api_ns"
	// version is what GET /health reports.
	version = "jetbox-memapi"
)

// Handler returns the HTTP API: SFM's routes, answered as SFM answers them.
func (s *Store) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle(sfmapi.PathMemories, byMethod{http.MethodPost: s.data(s.handleStore)})
	mux.Handle(sfmapi.PathSearch, byMethod{
		http.MethodGet:  s.data(s.handleSearchQuery),
		http.MethodPost: s.data(s.handleSearchBody),
	})
	mux.Handle(sfmapi.PatternMemory, byMethod{
		http.MethodGet:    s.data(s.handleGet),
		http.MethodDelete: s.data(s.handleDelete),
	})
	mux.Handle(sfmapi.PathLink, byMethod{http.MethodPost: s.data(s.handleLink)})
	mux.Handle(sfmapi.PathNeighbors, byMethod{http.MethodGet: s.data(s.handleNeighbors)})
	mux.Handle(sfmapi.PathGraphPath, byMethod{http.MethodGet: s.data(s.handlePath)})
	mux.Handle(sfmapi.PathHealthz, byMethod{http.MethodGet: s.handleHealthz})
	mux.Handle(sfmapi.PathReadyz, byMethod{http.MethodGet: s.handleHealthBasic})
	mux.Handle(sfmapi.PathHealthBasic, byMethod{http.MethodGet: s.handleHealthBasic})
	mux.Handle(sfmapi.PathHealth, byMethod{http.MethodGet: s.handleHealth})
	mux.Handle(sfmapi.PathStats, byMethod{http.MethodGet: s.handleStats})
	mux.Handle(sfmapi.PathPing, byMethod{http.MethodGet: func(w http.ResponseWriter, _ *http.Request) {
		writeAnswer(w, jsonAnswer(http.StatusOK, map[string]string{"ping": "pong"}))
	}})
	mux.Handle("/{$}", byMethod{http.MethodGet: func(w http.ResponseWriter, _ *http.Request) {
		writeAnswer(w, jsonAnswer(http.StatusOK, map[string]string{"status": "online", "message": "FractalMemory API is running", "metrics": "/metrics"}))
	}})
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeAnswer(w, detailAnswer(http.StatusNotFound, sfmapi.MsgNotFound))
	})
	return mux
}

// byMethod dispatches on the request method and answers 405 otherwise, as
// Ninja does: plain text, with Allow.
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
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusMethodNotAllowed)
	_, _ = io.WriteString(w, sfmapi.MsgMethodNotAllowed)
}

// request is one data request once it passed authentication.
type request struct {
	http   *http.Request
	tenant string
	body   []byte
	caller caller
}

// dataHandler serves one of SFM's data routes.
type dataHandler func(req *request) answer

// data wraps a data route as SFM's bearer auth and tenant resolution do,
// then applies the test aids (Options.Fail, Options.Delay). The body is
// read before the delay because the server notices a client that went
// away only once the body is consumed, and the delay must end with the
// client.
func (s *Store) data(h dataHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.bearerAccepted(r) {
			writeAnswer(w, detailAnswer(http.StatusUnauthorized, sfmapi.MsgUnauthorized))
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
		if err != nil {
			writeAnswer(w, detailAnswer(http.StatusInternalServerError, msgInternal))
			return
		}
		tenant := s.tenantOf(r)
		if utf8.RuneCountInString(tenant) > maxTenantChars {
			writeAnswer(w, detailAnswer(http.StatusInternalServerError, msgInternal))
			return
		}
		if s.opts.Fail != nil && s.opts.Fail(tenant) {
			writeAnswer(w, detailAnswer(http.StatusServiceUnavailable, msgTenantUnavailable))
			return
		}
		if err := pause(r.Context(), s.opts.Delay); err != nil {
			writeAnswer(w, detailAnswer(http.StatusServiceUnavailable, msgRequestEndedInDelay))
			return
		}
		writeAnswer(w, h(&request{
			http:   r,
			tenant: tenant,
			body:   body,
			caller: caller{idempotencyKey: r.Header.Get(sfmapi.HeaderIdempotencyKey), requestID: r.Header.Get(sfmapi.HeaderRequestID)},
		}))
	}
}

// bearerAccepted is Ninja's HttpBearer (sfmapi.BearerToken) with SFM's
// check: the token must equal the configured one, compared in constant
// time.
func (s *Store) bearerAccepted(r *http.Request) bool {
	if s.opts.Token == "" {
		return true
	}
	token, ok := sfmapi.BearerToken(r.Header.Get(sfmapi.HeaderAuthorization))
	return ok && s.tokenMatches(token)
}

func (s *Store) tokenMatches(token string) bool {
	return subtle.ConstantTimeCompare([]byte(token), []byte(s.opts.Token)) == 1
}

// tenantOf is SFM's get_tenant_from_request: the auth context's tenant,
// else the X-Soma-Tenant header stripped of white space, else "default".
func (s *Store) tenantOf(r *http.Request) string {
	if s.opts.Token != "" && s.opts.TokenTenant != "" {
		return s.opts.TokenTenant
	}
	if t := r.Header.Get(sfmapi.HeaderTenant); t != "" {
		return strings.TrimFunc(t, pyfloat.IsSpace)
	}
	return defaultTenant
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

// answer is an HTTP status and JSON body.
type answer struct {
	status int
	body   []byte
}

func jsonAnswer(status int, v any) answer {
	body, err := json.Marshal(v)
	if err != nil {
		// Only our own response types are marshalled; they cannot fail.
		panic(err)
	}
	return answer{status: status, body: body}
}

// detailAnswer is SFM's error answer, {"detail": message}.
func detailAnswer(status int, message string) answer {
	return jsonAnswer(status, map[string]string{"detail": message})
}

// internalError is SFM's answer to anything unexpected; the cause is not
// told to the client.
func internalError(error) answer {
	return detailAnswer(http.StatusInternalServerError, msgInternal)
}

// coordAnswer is the answer to a coordinate parseCoord refused.
func coordAnswer(err error) answer {
	var ce *coordError
	if errors.As(err, &ce) {
		return detailAnswer(http.StatusBadRequest, ce.message)
	}
	return internalError(err)
}

func writeAnswer(w http.ResponseWriter, a answer) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(a.status)
	_, _ = w.Write(a.body)
}
