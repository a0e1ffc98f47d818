package testrig

import (
	"context"
	"net"
	"net/http"
	"time"

	"github.com/jetbox-dev/jetbox/internal/memapi"
)

// MemoryAPI is the development memory API served on a random loopback
// port.
type MemoryAPI struct {
	URL   string        // http://127.0.0.1:<port>
	Token string        // the bearer token it checks; empty: none
	Store *memapi.Store // nil when it serves MemoryAPIOptions.Handler
	srv   *http.Server
}

// MemoryAPIOptions is what a memory API is made of.
type MemoryAPIOptions struct {
	// Store opens the development memory API's store (Path is required).
	Store memapi.Options
	// Handler, when set, is served instead of a store: a stand-in that
	// answers without storing anything.
	Handler http.Handler
	// Wrap puts a handler in front of the memory API: a recorder, a fault
	// injector. Nil serves it as is.
	Wrap func(http.Handler) http.Handler
}

// OpenMemoryAPI opens the store and serves it on 127.0.0.1 with a port
// the kernel picks.
func OpenMemoryAPI(o MemoryAPIOptions) (*MemoryAPI, error) {
	a := &MemoryAPI{Token: o.Store.Token}
	handler := o.Handler
	if handler == nil {
		store, err := memapi.Open(o.Store)
		if err != nil {
			return nil, err
		}
		a.Store = store
		handler = store.Handler()
	}
	if o.Wrap != nil {
		handler = o.Wrap(handler)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		a.Close()
		return nil, err
	}
	a.URL = "http://" + ln.Addr().String()
	a.srv = &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	go a.srv.Serve(ln)
	return a, nil
}

// Close stops serving, letting requests under way finish for up to five
// seconds, then closes the store.
func (a *MemoryAPI) Close() {
	if a.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if a.srv.Shutdown(ctx) != nil {
			a.srv.Close()
		}
		cancel()
	}
	if a.Store != nil {
		a.Store.Close()
	}
}

// Totals sums the store's counters over all tenants.
func (a *MemoryAPI) Totals() memapi.TenantStats {
	var sum memapi.TenantStats
	for _, s := range a.Store.Stats().Tenants {
		sum.Applied += s.Applied
		sum.Repeated += s.Repeated
	}
	return sum
}
