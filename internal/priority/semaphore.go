// Package priority is a counting semaphore that hands free slots to the
// highest-priority waiter first.
package priority

import (
	"context"
	"sync"
)

// Semaphore bounds work in flight across priority levels. Level 0 is served
// first; within a level, waiters are served in arrival order.
type Semaphore struct {
	mu      sync.Mutex
	free    int
	waiters [][]chan struct{}
}

// New returns a semaphore with size slots and levels priority levels.
func New(size, levels int) *Semaphore {
	return &Semaphore{free: size, waiters: make([][]chan struct{}, levels)}
}

// Acquire takes a slot at the given level, waiting while none is free. It
// returns ctx.Err() if ctx ends first.
func (s *Semaphore) Acquire(ctx context.Context, level int) error {
	s.mu.Lock()
	if s.free > 0 && s.noneWaitingAtOrAbove(level) {
		s.free--
		s.mu.Unlock()
		return nil
	}
	ready := make(chan struct{})
	s.waiters[level] = append(s.waiters[level], ready)
	s.mu.Unlock()

	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		defer s.mu.Unlock()
		select {
		case <-ready:
			// Granted while giving up: pass the slot on.
			s.releaseLocked()
		default:
			s.removeLocked(level, ready)
		}
		return ctx.Err()
	}
}

// Release returns a slot.
func (s *Semaphore) Release() {
	s.mu.Lock()
	s.releaseLocked()
	s.mu.Unlock()
}

func (s *Semaphore) releaseLocked() {
	for level, queue := range s.waiters {
		if len(queue) > 0 {
			close(queue[0])
			s.waiters[level] = queue[1:]
			return
		}
	}
	s.free++
}

func (s *Semaphore) noneWaitingAtOrAbove(level int) bool {
	for l := 0; l <= level; l++ {
		if len(s.waiters[l]) > 0 {
			return false
		}
	}
	return true
}

func (s *Semaphore) removeLocked(level int, ready chan struct{}) {
	queue := s.waiters[level]
	for i, c := range queue {
		if c == ready {
			s.waiters[level] = append(queue[:i], queue[i+1:]...)
			return
		}
	}
}
