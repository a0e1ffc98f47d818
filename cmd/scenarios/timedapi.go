package main

import (
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/jetbox-dev/jetbox/internal/sfmapi"
)

// timedAPI is a memory API that answers every write after exactly its
// delay and stores nothing: a scenario whose target names the memory
// API's latency measures the worker against that latency, not against the
// development memory API's disk (one bbolt writer, whose commits take 5-10
// ms on this machine with 64 calls at once). It answers 200 with an empty
// JSON object, or 503 for a tenant fail names, as the development memory
// API's Fail does, and counts the writes it applied by tenant and
// idempotency key.
type timedAPI struct {
	delay time.Duration
	fail  func(tenant string) bool

	mu       sync.Mutex
	seen     map[string]struct{}
	repeated uint64
}

func newTimedAPI(delay time.Duration, fail func(string) bool) *timedAPI {
	return &timedAPI{delay: delay, fail: fail, seen: map[string]struct{}{}}
}

func (a *timedAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, err := io.Copy(io.Discard, r.Body); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	tenant := r.Header.Get(sfmapi.HeaderTenant)
	w.Header().Set("Content-Type", "application/json")
	if a.fail != nil && a.fail(tenant) {
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"detail":"memory API unavailable for this tenant"}`)
		return
	}
	t := time.NewTimer(a.delay)
	select {
	case <-t.C:
	case <-r.Context().Done():
		t.Stop()
		return
	}
	key := tenant + "\x00" + r.Header.Get(sfmapi.HeaderIdempotencyKey)
	a.mu.Lock()
	if _, again := a.seen[key]; again {
		a.repeated++
	} else {
		a.seen[key] = struct{}{}
	}
	a.mu.Unlock()
	io.WriteString(w, `{}`)
}

// applied is how many distinct writes it answered 200 to.
func (a *timedAPI) applied() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return uint64(len(a.seen))
}
