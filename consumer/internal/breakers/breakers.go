// Package breakers holds one consumer group's circuit breakers, one per
// tenant (sony/gobreaker), so that a tenant whose memory API is failing
// stops being called while the others go on.
//
// The contract: Set.Get returns the tenant's breaker, made on first use;
// Breaker.Attempt runs a call through it, unless it is open, and counts the
// call a failure when Settings.Failed says so. A breaker opens after
// Settings.Threshold failures in a row and lets one probe through per
// Settings.ResetInterval until a probe succeeds. Breakers unused for
// Settings.IdleTTL are forgotten on Set.EvictIdle, so memory does not grow
// with every tenant ever seen.
package breakers

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
)

// Settings configures a Set whose calls return T.
type Settings[T any] struct {
	Threshold     uint32        // consecutive failures that open a tenant's breaker
	ResetInterval time.Duration // how long a breaker stays open before it half-opens
	IdleTTL       time.Duration // a tenant's breaker is forgotten after this long unused
	// Failed says whether a call's result counts against the breaker.
	Failed func(T) bool
	// OnChange, if set, is told of every change of a tenant's breaker.
	OnChange func(tenant string, to gobreaker.State)
}

// Set is one group's per-tenant breakers.
type Set[T any] struct {
	threshold     uint32
	resetInterval time.Duration
	idleTTL       time.Duration
	failed        func(T) bool
	onChange      func(tenant string, to gobreaker.State)

	mu sync.Mutex
	m  map[string]*Breaker[T]
}

// Breaker is one tenant's breaker.
type Breaker[T any] struct {
	cb       *gobreaker.CircuitBreaker[T]
	failed   func(T) bool
	lastUsed atomic.Int64 // unix nanos
	openedAt atomic.Int64 // unix nanos of the last transition to open
	// openedBy is the run of consecutive failures that opened the breaker:
	// gobreaker clears its counts on every change of state, so an open
	// breaker's own counts read 0.
	openedBy atomic.Uint32
}

// errFailed marks a call the breaker counts as a failure.
var errFailed = errors.New("failed call")

// New returns an empty set of breakers.
func New[T any](s Settings[T]) *Set[T] {
	return &Set[T]{
		threshold:     s.Threshold,
		resetInterval: s.ResetInterval,
		idleTTL:       s.IdleTTL,
		failed:        s.Failed,
		onChange:      s.OnChange,
		m:             map[string]*Breaker[T]{},
	}
}

// Get returns the tenant's breaker, made if it has none, and marks it used
// at now.
func (b *Set[T]) Get(tenant string, now time.Time) *Breaker[T] {
	b.mu.Lock()
	defer b.mu.Unlock()
	tb, ok := b.m[tenant]
	if !ok {
		tb = &Breaker[T]{failed: b.failed}
		threshold := b.threshold
		tb.cb = gobreaker.NewCircuitBreaker[T](gobreaker.Settings{
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

// Attempt runs one call through the breaker. ok is false when the breaker
// refused to let the call through.
func (tb *Breaker[T]) Attempt(call func() T) (a T, ok bool) {
	a, err := tb.cb.Execute(func() (T, error) {
		a := call()
		if tb.failed(a) {
			return a, errFailed
		}
		return a, nil
	})
	if err == gobreaker.ErrOpenState || err == gobreaker.ErrTooManyRequests {
		var none T
		return none, false
	}
	return a, true
}

// ReopensIn is how long until an open breaker lets a probe through.
func (tb *Breaker[T]) ReopensIn(resetInterval time.Duration, now time.Time) time.Duration {
	left := time.Unix(0, tb.openedAt.Load()).Add(resetInterval).Sub(now)
	if left < 0 {
		return 0
	}
	return left
}

// EvictIdle forgets breakers unused for IdleTTL, and returns their tenants.
// An open breaker is kept until it has been idle past its reset interval
// too: its deferred writes will come back to it.
func (b *Set[T]) EvictIdle(now time.Time) (evicted []string) {
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

// State is one tenant's breaker as seen by status.
type State struct {
	Tenant string `json:"tenant"`
	State  string `json:"state"`
	// ConsecutiveFailures is, for a closed breaker, the failures since the
	// last success; for an open or half-open one, the failures that opened
	// it, its failed probes included.
	ConsecutiveFailures uint32    `json:"consecutive_failures"`
	OpenSince           time.Time `json:"open_since,omitzero"` // last opened, unless closed
}

// Snapshot is the state of every breaker in the set, in no order.
func (b *Set[T]) Snapshot() []State {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]State, 0, len(b.m))
	for tenant, tb := range b.m {
		state := tb.cb.State()
		s := State{Tenant: tenant, State: state.String(), ConsecutiveFailures: tb.cb.Counts().ConsecutiveFailures}
		if state != gobreaker.StateClosed {
			s.ConsecutiveFailures = tb.openedBy.Load()
			s.OpenSince = time.Unix(0, tb.openedAt.Load()).UTC()
		}
		out = append(out, s)
	}
	return out
}

// Len is the number of tenants with a breaker in the set.
func (b *Set[T]) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.m)
}

// Closed says whether the breaker lets every call through.
func (tb *Breaker[T]) Closed() bool { return tb.cb.State() == gobreaker.StateClosed }
