package priority

import (
	"context"
	"testing"
	"time"
)

func TestHigherPriorityWaiterIsServedFirst(t *testing.T) {
	s := New(1, 3)
	ctx := context.Background()
	if err := s.Acquire(ctx, 2); err != nil {
		t.Fatal(err)
	}
	order := make(chan int, 3)
	start := func(level int) {
		go func() {
			if err := s.Acquire(ctx, level); err != nil {
				t.Error(err)
				return
			}
			order <- level
			s.Release()
		}()
	}
	// Low priority arrives first; it must still wait for the higher ones.
	start(2)
	waitForWaiters(t, s, 1)
	start(1)
	waitForWaiters(t, s, 2)
	start(0)
	waitForWaiters(t, s, 3)
	s.Release()
	for _, want := range []int{0, 1, 2} {
		if got := <-order; got != want {
			t.Fatalf("served level %d, want %d", got, want)
		}
	}
}

func TestAcquireGivesUpWhenContextEnds(t *testing.T) {
	s := New(1, 1)
	if err := s.Acquire(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := s.Acquire(ctx, 0); err == nil {
		t.Fatal("Acquire succeeded without a free slot")
	}
	s.Release()
	// The abandoned waiter must not have kept the slot.
	ctx2, cancel2 := context.WithTimeout(context.Background(), time.Second)
	defer cancel2()
	if err := s.Acquire(ctx2, 0); err != nil {
		t.Fatalf("slot lost after a waiter gave up: %v", err)
	}
}

func waitForWaiters(t *testing.T, s *Semaphore, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		count := 0
		for _, q := range s.waiters {
			count += len(q)
		}
		s.mu.Unlock()
		if count == n {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("never saw %d waiters", n)
}
