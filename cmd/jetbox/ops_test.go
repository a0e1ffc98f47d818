package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"runtime"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Profiles are served on the ops listener only when asked for: they show
// the process's command line and stacks.
func TestOpsServesProfilesOnlyWhenEnabled(t *testing.T) {
	t.Cleanup(func() { runtime.SetMutexProfileFraction(0) })
	for _, enabled := range []bool{false, true} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		srv, err := serveOps(addr, prometheus.NewRegistry(), enabled, func() error { return nil },
			func(context.Context) error { return nil }, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		get := func(path string) int {
			resp, err := http.Get("http://" + addr + path)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.StatusCode
		}
		want := http.StatusNotFound
		if enabled {
			want = http.StatusOK
		}
		if got := get("/debug/pprof/goroutine?debug=1"); got != want {
			t.Errorf("profiles enabled %v: /debug/pprof/goroutine answered %d, want %d", enabled, got, want)
		}
		if got := get("/metrics"); got != http.StatusOK {
			t.Errorf("profiles enabled %v: /metrics answered %d", enabled, got)
		}
		// The mutex profile records contention only while profiles are served.
		wantRate := 0
		if enabled {
			wantRate = mutexSampling
		}
		if got := runtime.SetMutexProfileFraction(-1); got != wantRate {
			t.Errorf("profiles enabled %v: mutex profile rate %d, want %d", enabled, got, wantRate)
		}
		srv.Close()
	}
}
