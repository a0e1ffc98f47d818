package consumer

import (
	"bytes"
	"io"
	"net/http"
	"sync"
	"time"
)

// faults sits in front of the memory API: it records what arrived and can
// make a tenant's requests fail.
type faults struct {
	mu       sync.Mutex
	byTenant map[string]func(n int) (status int, retryAfter string) // n: the tenant's request count so far
	down     bool                                                   // every request's connection is dropped
	requests []recorded
	count    map[string]int
	onApply  func(r recorded) // called after the memory API answered
}

type recorded struct {
	At     time.Time
	Tenant string
	Method string
	Path   string
	Header http.Header
	Body   []byte
	Status int
}

func newFaults() *faults {
	return &faults{byTenant: map[string]func(int) (int, string){}, count: map[string]int{}}
}

func (f *faults) set(tenant string, fn func(n int) (int, string)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fn == nil {
		delete(f.byTenant, tenant)
		return
	}
	f.byTenant[tenant] = fn
}

func (f *faults) setDown(down bool) {
	f.mu.Lock()
	f.down = down
	f.mu.Unlock()
}

func (f *faults) log() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recorded(nil), f.requests...)
}

func (f *faults) forTenant(tenant string) []recorded {
	var out []recorded
	for _, r := range f.log() {
		if r.Tenant == tenant {
			out = append(out, r)
		}
	}
	return out
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (f *faults) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			next.ServeHTTP(w, r)
			return
		}
		tenant := r.Header.Get("X-Soma-Tenant")
		f.mu.Lock()
		down := f.down
		fault := f.byTenant[tenant]
		n := f.count[tenant]
		f.count[tenant]++
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := recorded{At: time.Now(), Tenant: tenant, Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body}
		f.mu.Unlock()
		if down {
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					conn.Close()
				}
			}
			return
		}
		if fault != nil {
			if status, retryAfter := fault(n); status != 0 {
				if retryAfter != "" {
					w.Header().Set("Retry-After", retryAfter)
				}
				rec.Status = status
				f.record(rec)
				http.Error(w, `{"error":"injected"}`, status)
				return
			}
		}
		sr := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sr, r)
		rec.Status = sr.status
		f.record(rec)
		f.mu.Lock()
		onApply := f.onApply
		f.mu.Unlock()
		if onApply != nil {
			onApply(rec)
		}
	})
}

func (f *faults) record(r recorded) {
	f.mu.Lock()
	f.requests = append(f.requests, r)
	f.mu.Unlock()
}
