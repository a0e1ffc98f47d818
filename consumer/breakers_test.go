package consumer

import (
	"testing"
	"time"

	"github.com/jetbox-dev/jetbox/consumer/internal/memclient"
	"github.com/jetbox-dev/jetbox/internal/sfmapi"
)

// An open breaker reports the failures that opened it, and since when,
// although gobreaker's own counts start again from 0 when it opens; a
// failed probe lengthens the run.
func TestOpenBreakerReportsTheFailuresThatOpenedIt(t *testing.T) {
	b := newBreakers("sync", Config{FailureThreshold: 3, ResetInterval: 50 * time.Millisecond, BreakerIdleTTL: time.Hour}, nil)
	tb := b.get("acme", time.Now())
	fail := func() memclient.Answer { return memclient.Answer{Class: sfmapi.Transient, Status: 503} }
	before := time.Now()
	for range 3 {
		tb.attempt(fail)
	}
	s := b.snapshot()
	if len(s) != 1 || s[0].State != "open" || s[0].ConsecutiveFailures != 3 || s[0].OpenSince.Before(before.Add(-time.Second)) {
		t.Fatalf("after 3 failures: %+v, want open by 3 since the third", s)
	}
	time.Sleep(60 * time.Millisecond)
	if _, ok := tb.attempt(fail); !ok {
		t.Fatal("no probe let through after the reset interval")
	}
	if s := b.snapshot(); s[0].State != "open" || s[0].ConsecutiveFailures != 4 {
		t.Fatalf("after a failed probe: %+v, want open by 4", s)
	}
	time.Sleep(60 * time.Millisecond)
	tb.attempt(func() memclient.Answer { return memclient.Answer{Class: sfmapi.Applied, Status: 200} })
	if s := b.snapshot(); s[0].State != "closed" || s[0].ConsecutiveFailures != 0 || !s[0].OpenSince.IsZero() {
		t.Fatalf("after a good probe: %+v, want closed with no failures", s)
	}
}
