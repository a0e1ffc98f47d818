// Package priority is a counting semaphore that serves higher priorities
// first and makes lower priorities yield while higher ones are active.
package priority

import (
	"context"
	"sync"
	"time"
)

// Semaphore bounds work in flight across priority levels. Level 0 is the
// highest. A free slot goes to the highest waiting level, in arrival order
// within a level. Beyond that, while a higher level has been active within
// the yield window, a lower level may hold at most YieldCap slots: the
// downstream (the memory API, the CPU) keeps headroom for the urgent work
// instead of being saturated by the bulk.
type Semaphore struct {
	mu         sync.Mutex
	free       int
	held       []int
	lastActive []time.Time
	window     time.Duration
	yieldCap   int
	waiters    [][]chan struct{}
}

// New returns a semaphore with size slots and levels priority levels.
// While a higher level was active within window, each lower level holds at
// most yieldCap slots (at least 1).
func New(size, levels, yieldCap int, window time.Duration) *Semaphore {
	return &Semaphore{
		free:       size,
		held:       make([]int, levels),
		lastActive: make([]time.Time, levels),
		window:     window,
		yieldCap:   max(1, yieldCap),
		waiters:    make([][]chan struct{}, levels),
	}
}

// Acquire takes a slot at the given level, waiting while none may be
// taken. It returns ctx.Err() if ctx ends first.
func (s *Semaphore) Acquire(ctx context.Context, level int) error {
	for {
		s.mu.Lock()
		now := time.Now()
		s.lastActive[level] = now
		if s.noneWaitingAtOrAbove(level) && s.mayTake(level, now) {
			s.take(level)
			s.mu.Unlock()
			return nil
		}
		ready := make(chan struct{})
		s.waiters[level] = append(s.waiters[level], ready)
		s.mu.Unlock()

		// A yielding level re-checks when the window may have passed.
		recheck := time.NewTimer(s.window)
		select {
		case <-ready:
			recheck.Stop()
			return nil
		case <-ctx.Done():
			recheck.Stop()
			if s.abandon(level, ready) {
				s.Release(level) // granted while giving up: pass it on
			}
			return ctx.Err()
		case <-recheck.C:
			if s.abandon(level, ready) {
				return nil
			}
		}
	}
}

// abandon takes a waiter out of its queue. It reports true when the slot
// had already been granted, in which case the caller owns it.
func (s *Semaphore) abandon(level int, ready chan struct{}) (granted bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-ready:
		return true
	default:
	}
	queue := s.waiters[level]
	for i, c := range queue {
		if c == ready {
			s.waiters[level] = append(queue[:i], queue[i+1:]...)
			break
		}
	}
	return false
}

// Release returns a slot taken at level.
func (s *Semaphore) Release(level int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.held[level]--
	s.free++
	s.grant(time.Now())
}

// Keep reports whether the holder of a slot at level may hand it straight
// to another task of the same level instead of releasing it: true when
// Release would give the slot to that level anyway, that is no higher
// level waits and the level is within its yield cap. The slot stays held
// at level either way; when Keep says false the holder must Release it.
func (s *Semaphore) Keep(level int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for higher := range level {
		if len(s.waiters[higher]) > 0 {
			return false
		}
	}
	now := time.Now()
	s.held[level]--
	s.free++
	ok := s.mayTake(level, now)
	s.take(level)
	if ok {
		s.lastActive[level] = now
	}
	return ok
}

func (s *Semaphore) grant(now time.Time) {
	for level, queue := range s.waiters {
		for len(queue) > 0 && s.mayTake(level, now) {
			s.take(level)
			close(queue[0])
			queue = queue[1:]
		}
		s.waiters[level] = queue
		if len(queue) > 0 {
			return // lower levels wait behind this one
		}
	}
}

func (s *Semaphore) take(level int) {
	s.free--
	s.held[level]++
}

func (s *Semaphore) mayTake(level int, now time.Time) bool {
	if s.free == 0 {
		return false
	}
	for higher := 0; higher < level; higher++ {
		if s.held[higher] > 0 || now.Sub(s.lastActive[higher]) < s.window {
			return s.held[level] < s.yieldCap
		}
	}
	return true
}

func (s *Semaphore) noneWaitingAtOrAbove(level int) bool {
	for l := 0; l <= level; l++ {
		if len(s.waiters[l]) > 0 {
			return false
		}
	}
	return true
}
