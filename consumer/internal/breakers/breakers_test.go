package breakers

import (
	"testing"
	"time"
)

// An open breaker reports the failures that opened it, and since when,
// although gobreaker's own counts start again from 0 when it opens; a
// failed probe lengthens the run.
func TestOpenBreakerReportsTheFailuresThatOpenedIt(t *testing.T) {
	// The calls return an HTTP status; a 5xx is a failure.
	b := New(Settings[int]{Threshold: 3, ResetInterval: 50 * time.Millisecond, IdleTTL: time.Hour, Failed: func(status int) bool { return status >= 500 }})
	tb := b.Get("acme", time.Now())
	fail := func() int { return 503 }
	before := time.Now()
	for range 3 {
		tb.Attempt(fail)
	}
	s := b.Snapshot()
	if len(s) != 1 || s[0].State != "open" || s[0].ConsecutiveFailures != 3 || s[0].OpenSince.Before(before.Add(-time.Second)) {
		t.Fatalf("after 3 failures: %+v, want open by 3 since the third", s)
	}
	time.Sleep(60 * time.Millisecond)
	if _, ok := tb.Attempt(fail); !ok {
		t.Fatal("no probe let through after the reset interval")
	}
	if s := b.Snapshot(); s[0].State != "open" || s[0].ConsecutiveFailures != 4 {
		t.Fatalf("after a failed probe: %+v, want open by 4", s)
	}
	time.Sleep(60 * time.Millisecond)
	tb.Attempt(func() int { return 200 })
	if s := b.Snapshot(); s[0].State != "closed" || s[0].ConsecutiveFailures != 0 || !s[0].OpenSince.IsZero() {
		t.Fatalf("after a good probe: %+v, want closed with no failures", s)
	}
}
