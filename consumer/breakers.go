package consumer

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/jetbox-dev/jetbox/consumer/internal/memclient"
	"github.com/jetbox-dev/jetbox/internal/sfmapi"
	"github.com/jetbox-dev/jetbox/streams"
)

// breakers holds one group's per-tenant circuit breakers. A breaker counts
// only transient failures: a 4xx says the write is wrong, not that the
// tenant's memory API is unwell.
type breakers struct {
	group         streams.Mode
	threshold     uint32
	resetInterval time.Duration
	idleTTL       time.Duration
	onChange      func(tenant string, to gobreaker.State)

	mu sync.Mutex
	m  map[string]*tenantBreaker
}

type tenantBreaker struct {
	cb       *gobreaker.CircuitBreaker[memclient.Answer]
	lastUsed atomic.Int64 // unix nanos
	openedAt atomic.Int64 // unix nanos of the last transition to open
	// openedBy is the run of consecutive failures that opened the breaker:
	// gobreaker clears its counts on every change of state, so an open
	// breaker's own counts read 0.
	openedBy atomic.Uint32
}

// errTransient marks an attempt the breaker counts as a failure.
var errTransient = errors.New("transient failure")

func newBreakers(group streams.Mode, cfg Config, onChange func(tenant string, to gobreaker.State)) *breakers {
	return &breakers{
		group:         group,
		threshold:     cfg.FailureThreshold,
		resetInterval: cfg.ResetInterval,
		idleTTL:       cfg.BreakerIdleTTL,
		onChange:      onChange,
		m:             map[string]*tenantBreaker{},
	}
}

func (b *breakers) get(tenant string, now time.Time) *tenantBreaker {
	b.mu.Lock()
	defer b.mu.Unlock()
	tb, ok := b.m[tenant]
	if !ok {
		tb = &tenantBreaker{}
		threshold := b.threshold
		tb.cb = gobreaker.NewCircuitBreaker[memclient.Answer](gobreaker.Settings{
			Name:        tenant,
			MaxRequests: 1,
			Timeout:     b.resetInterval,
			ReadyToTrip: func(c gobreaker.Counts) bool {
				if c.ConsecutiveFailures < threshold {
					return false
				}
				tb.openedBy.Store(c.ConsecutiveFailures)
				return true
			},
			OnStateChange: func(name string, from, to gobreaker.State) {
				if to == gobreaker.StateOpen {
					tb.openedAt.Store(time.Now().UnixNano())
					if from == gobreaker.StateHalfOpen {
						tb.openedBy.Add(1) // the probe failed: the run goes on
					}
				}
				if b.onChange != nil {
					b.onChange(name, to)
				}
			},
		})
		b.m[tenant] = tb
	}
	tb.lastUsed.Store(now.UnixNano())
	return tb
}

// attempt runs one memory API call through the breaker. ok is false when the
// breaker refused to let the call through.
func (tb *tenantBreaker) attempt(call func() memclient.Answer) (a memclient.Answer, ok bool) {
	a, err := tb.cb.Execute(func() (memclient.Answer, error) {
		a := call()
		if a.Class == sfmapi.Transient {
			return a, errTransient
		}
		return a, nil
	})
	if err == gobreaker.ErrOpenState || err == gobreaker.ErrTooManyRequests {
		return memclient.Answer{}, false
	}
	return a, true
}

// reopensIn is how long until an open breaker lets a probe through.
func (tb *tenantBreaker) reopensIn(resetInterval time.Duration, now time.Time) time.Duration {
	left := time.Unix(0, tb.openedAt.Load()).Add(resetInterval).Sub(now)
	if left < 0 {
		return 0
	}
	return left
}

// evictIdle forgets breakers unused for idleTTL, so memory does not grow with
// every tenant ever seen. An open breaker is kept until it has been idle past
// its reset interval too: its deferred writes will come back to it.
func (b *breakers) evictIdle(now time.Time) (evicted []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for tenant, tb := range b.m {
		idle := now.Sub(time.Unix(0, tb.lastUsed.Load()))
		if idle < b.idleTTL {
			continue
		}
		if tb.cb.State() != gobreaker.StateClosed && idle < b.idleTTL+b.resetInterval {
			continue
		}
		delete(b.m, tenant)
		evicted = append(evicted, tenant)
	}
	return evicted
}

// BreakerState is one tenant's breaker as seen by status.
type BreakerState struct {
	Tenant string `json:"tenant"`
	State  string `json:"state"`
	// ConsecutiveFailures is, for a closed breaker, the failures since the
	// last success; for an open or half-open one, the failures that opened
	// it, its failed probes included.
	ConsecutiveFailures uint32    `json:"consecutive_failures"`
	OpenSince           time.Time `json:"open_since,omitzero"` // last opened, unless closed
}

func (b *breakers) snapshot() []BreakerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]BreakerState, 0, len(b.m))
	for tenant, tb := range b.m {
		state := tb.cb.State()
		s := BreakerState{Tenant: tenant, State: state.String(), ConsecutiveFailures: tb.cb.Counts().ConsecutiveFailures}
		if state != gobreaker.StateClosed {
			s.ConsecutiveFailures = tb.openedBy.Load()
			s.OpenSince = time.Unix(0, tb.openedAt.Load()).UTC()
		}
		out = append(out, s)
	}
	return out
}

func (b *breakers) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.m)
}
