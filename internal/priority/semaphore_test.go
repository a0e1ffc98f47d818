package priority

import (
	"context"
	"testing"
	"time"
)

func TestHigherPriorityWaiterIsServedFirst(t *testing.T) {
	s := New(1, 3, 1, time.Millisecond)
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
			s.Release(level)
		}()
	}
	// Low priority arrives first; it must still wait for the higher ones.
	start(2)
	waitForWaiters(t, s, 1)
	start(1)
	waitForWaiters(t, s, 2)
	start(0)
	waitForWaiters(t, s, 3)
	s.Release(2)
	for _, want := range []int{0, 1, 2} {
		if got := <-order; got != want {
			t.Fatalf("served level %d, want %d", got, want)
		}
	}
}

func TestAcquireGivesUpWhenContextEnds(t *testing.T) {
	s := New(1, 1, 1, time.Second)
	if err := s.Acquire(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := s.Acquire(ctx, 0); err == nil {
		t.Fatal("Acquire succeeded without a free slot")
	}
	s.Release(0)
	// The abandoned waiter must not have kept the slot.
	ctx2, cancel2 := context.WithTimeout(context.Background(), time.Second)
	defer cancel2()
	if err := s.Acquire(ctx2, 0); err != nil {
		t.Fatalf("slot lost after a waiter gave up: %v", err)
	}
}

// While a higher level is active, a lower level holds at most the yield
// cap, though slots are free; once the higher level is quiet for the
// window, the lower level may use every slot again.
func TestLowerLevelYieldsWhileAHigherOneIsActive(t *testing.T) {
	const window = 100 * time.Millisecond
	s := New(8, 2, 2, window)
	ctx := context.Background()
	if err := s.Acquire(ctx, 0); err != nil {
		t.Fatal(err)
	}
	s.Release(0) // level 0 was active just now
	for i := 0; i < 2; i++ {
		if err := s.Acquire(ctx, 1); err != nil {
			t.Fatal(err)
		}
	}
	short, cancel := context.WithTimeout(ctx, window/4)
	defer cancel()
	if err := s.Acquire(short, 1); err == nil {
		t.Fatal("level 1 took a third slot while level 0 was active")
	}
	start := time.Now()
	if err := s.Acquire(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < window/2 {
		t.Fatalf("level 1 got its third slot after %s, before level 0 had been quiet for the window", waited)
	}
	// Level 0 is never held back by level 1.
	quick, cancel2 := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel2()
	if err := s.Acquire(quick, 0); err != nil {
		t.Fatalf("level 0 waited behind level 1: %v", err)
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

// Keep lets a level pass a slot on inside itself only when Release would
// have given the slot to that level anyway.
func TestKeepOnlyWhenReleaseWouldGiveTheSlotBack(t *testing.T) {
	ctx := context.Background()
	t.Run("no one else waits", func(t *testing.T) {
		s := New(1, 2, 1, time.Millisecond)
		if err := s.Acquire(ctx, 1); err != nil {
			t.Fatal(err)
		}
		if !s.Keep(1) {
			t.Fatal("Keep refused with no higher level waiting")
		}
		s.Release(1)
		if err := s.Acquire(ctx, 0); err != nil {
			t.Fatalf("the kept slot was not released once: %v", err)
		}
	})
	t.Run("a higher level waits", func(t *testing.T) {
		s := New(1, 2, 1, time.Millisecond)
		if err := s.Acquire(ctx, 1); err != nil {
			t.Fatal(err)
		}
		got := make(chan struct{})
		go func() {
			if err := s.Acquire(ctx, 0); err == nil {
				close(got)
			}
		}()
		waitForWaiters(t, s, 1)
		if s.Keep(1) {
			t.Fatal("Keep allowed while a higher level waits")
		}
		s.Release(1)
		select {
		case <-got:
		case <-time.After(5 * time.Second):
			t.Fatal("the higher level never got the slot")
		}
	})
	t.Run("the level is over its yield cap", func(t *testing.T) {
		s := New(4, 2, 1, time.Minute)
		if err := s.Acquire(ctx, 0); err != nil {
			t.Fatal(err)
		}
		s.Release(0) // the higher level was active within the window
		s.mu.Lock()
		s.held[1] = 2 // two low slots taken before the higher level came
		s.free -= 2
		s.mu.Unlock()
		if s.Keep(1) {
			t.Fatal("Keep allowed a yielding level over its cap")
		}
	})
}
