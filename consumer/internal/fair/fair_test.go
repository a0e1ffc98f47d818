package fair

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jetbox-dev/jetbox/internal/priority"
)

func TestFairServesATenantsWaitersInArrivalOrder(t *testing.T) {
	s := priority.New(1, 1, 1, time.Millisecond)
	f := New(s, 0)
	hold(t, s, 0)
	served := make(chan string, 20)
	for i := range 20 {
		queue(t, f, "a", fmt.Sprint(i), served)
	}
	s.Release(0)
	for i := range 20 {
		if got := <-served; got != fmt.Sprint(i) {
			t.Fatalf("grant %d went to waiter %s", i, got)
		}
	}
	assertFairIdle(t, f)
}

func TestFairServesTenantsRoundRobin(t *testing.T) {
	t.Run("a flood does not delay a single write", func(t *testing.T) {
		s := priority.New(1, 1, 1, time.Millisecond)
		f := New(s, 0)
		hold(t, s, 0)
		served := make(chan string, 101)
		for i := range 100 {
			queue(t, f, "flood", fmt.Sprint("flood-", i), served)
		}
		queue(t, f, "single", "single", served)
		s.Release(0)
		var order []string
		for range 101 {
			order = append(order, <-served)
		}
		if i := slices.Index(order, "single"); i > 1 {
			t.Fatalf("the single write was served at grant %d, behind %v", i, order[:i])
		}
		flood := slices.DeleteFunc(order, func(s string) bool { return s == "single" })
		for i, got := range flood {
			if got != fmt.Sprint("flood-", i) {
				t.Fatalf("flood out of order: %v", flood)
			}
		}
		assertFairIdle(t, f)
	})
	t.Run("turns alternate between tenants", func(t *testing.T) {
		s := priority.New(1, 1, 1, time.Millisecond)
		f := New(s, 0)
		hold(t, s, 0)
		served := make(chan string, 9)
		for _, tenant := range []string{"a", "b", "c"} {
			for i := range 3 {
				queue(t, f, tenant, fmt.Sprint(tenant, i), served)
			}
		}
		s.Release(0)
		for _, want := range []string{"a0", "b0", "c0", "a1", "b1", "c1", "a2", "b2", "c2"} {
			if got := <-served; got != want {
				t.Fatalf("served %s, want %s", got, want)
			}
		}
		assertFairIdle(t, f)
	})
}

func TestFairWaiterGivingUpHoldsNoSlot(t *testing.T) {
	t.Run("the dispatcher gives up and the others are still served", func(t *testing.T) {
		s := priority.New(1, 1, 1, time.Millisecond)
		f := New(s, 0)
		hold(t, s, 0)
		ctx, cancel := context.WithCancel(context.Background())
		gaveUp := make(chan error, 1)
		go func() { gaveUp <- f.Acquire(ctx, "a") }() // first, so it acquires for the queue
		waitForFairWaiters(t, f, 1)
		served := make(chan string, 2)
		queue(t, f, "a", "a1", served)
		queue(t, f, "b", "b0", served)
		cancel()
		if err := <-gaveUp; !errors.Is(err, context.Canceled) {
			t.Fatalf("acquire after cancel: %v", err)
		}
		s.Release(0)
		got := []string{<-served, <-served}
		if !slices.Equal(got, []string{"a1", "b0"}) {
			t.Fatalf("served %v after the dispatcher gave up, want a1 then b0", got)
		}
		assertFairIdle(t, f)
		assertAllSlotsFree(t, s, 1)
	})
	t.Run("under churn", func(t *testing.T) {
		// Waiters give up at random moments, some just as a slot is granted
		// to them; every slot must come back.
		const size = 3
		s := priority.New(size, 1, size, time.Millisecond)
		f := New(s, 0)
		var wg sync.WaitGroup
		for g := range 24 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 150 {
					ctx, cancel := context.WithTimeout(context.Background(), rand.N(200*time.Microsecond))
					if f.Acquire(ctx, fmt.Sprint("tenant-", g%5)) == nil {
						time.Sleep(rand.N(50 * time.Microsecond))
						f.Release()
					}
					cancel()
				}
			}()
		}
		wg.Wait()
		assertFairIdle(t, f)
		assertAllSlotsFree(t, s, size)
	})
}

// Two groups share one semaphore; fairness inside each must not undo the
// priority between them.
func TestFairKeepsThePriorityBetweenGroups(t *testing.T) {
	s := priority.New(1, 2, 1, time.Millisecond)
	high, low := New(s, 0), New(s, 1)
	hold(t, s, 1)
	served := make(chan string, 2)
	queue(t, low, "t", "low", served) // arrives first
	time.Sleep(20 * time.Millisecond) // its dispatcher is at the semaphore
	queue(t, high, "t", "high", served)
	time.Sleep(20 * time.Millisecond)
	s.Release(1)
	if first := <-served; first != "high" {
		t.Fatalf("served %s first, want the higher level", first)
	}
	<-served
	assertFairIdle(t, high)
	assertFairIdle(t, low)
}

func hold(t *testing.T, s *priority.Semaphore, level int) {
	t.Helper()
	if err := s.Acquire(context.Background(), level); err != nil {
		t.Fatal(err)
	}
}

// queue starts a waiter that reports name on served when granted, then
// releases, and returns once it is queued.
func queue(t *testing.T, f *Slots, tenant, name string, served chan<- string) {
	t.Helper()
	before := fairWaiters(f)
	go func() {
		if err := f.Acquire(context.Background(), tenant); err != nil {
			t.Error(err)
			return
		}
		served <- name
		f.Release()
	}()
	waitForFairWaiters(t, f, before+1)
}

func fairWaiters(f *Slots) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, q := range f.tenants {
		n += q.waiters.Len()
	}
	return n
}

func waitForFairWaiters(t *testing.T, f *Slots, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for fairWaiters(f) != n {
		if time.Now().After(deadline) {
			t.Fatalf("never saw %d waiters, have %d", n, fairWaiters(f))
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// assertFairIdle checks that nothing is remembered once no one waits.
func assertFairIdle(t *testing.T, f *Slots) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		f.mu.Lock()
		tenants, ring, dispatching := len(f.tenants), f.ring.Len(), f.dispatching
		f.mu.Unlock()
		if tenants == 0 && ring == 0 && !dispatching {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("idle fair still has %d tenants, %d in the ring, dispatching %v", tenants, ring, dispatching)
		}
		time.Sleep(time.Millisecond)
	}
}

func assertAllSlotsFree(t *testing.T, s *priority.Semaphore, size int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i := range size {
		if err := s.Acquire(ctx, 0); err != nil {
			t.Fatalf("only %d of %d slots came back: %v", i, size, err)
		}
	}
	short, cancelShort := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancelShort()
	if s.Acquire(short, 0) == nil {
		t.Fatalf("more than %d slots free", size)
	}
	for range size {
		s.Release(0)
	}
}

// Waiters queued as data take their turns with waiters blocked in Acquire,
// tenants round-robin, and one whose context ends leaves the queue holding
// nothing.
func TestFairServesWaitersQueuedAsData(t *testing.T) {
	s := priority.New(1, 1, 1, time.Millisecond)
	f := New(s, 0)
	hold(t, s, 0)
	served := make(chan string, 10)
	queue(t, f, "a", "blocked", served) // blocked in Acquire: it acquires for the queue
	queueData := func(ctx context.Context, tenant, name string) {
		before := fairWaiters(f)
		held, err := f.AcquireOrQueue(ctx, tenant, func(err error) Then {
			if err != nil {
				served <- name + ": " + err.Error()
				return nil
			}
			served <- name
			return f.ReleaseTo()
		})
		if held || err != nil {
			t.Fatalf("%s: held %v, err %v; want queued", name, held, err)
		}
		waitForFairWaiters(t, f, before+1)
	}
	queueData(context.Background(), "a", "a1")
	queueData(context.Background(), "a", "a2")
	gone, cancel := context.WithCancel(context.Background())
	queueData(gone, "c", "c1")
	queueData(context.Background(), "b", "b1")
	cancel()
	if got := <-served; got != "c1: "+context.Canceled.Error() {
		t.Fatalf("got %q, want c1 abandoned", got)
	}
	s.Release(0)
	var got []string
	for range 4 {
		got = append(got, <-served)
	}
	if want := []string{"blocked", "b1", "a1", "a2"}; !slices.Equal(got, want) {
		t.Fatalf("served %v, want %v", got, want)
	}
	assertFairIdle(t, f)
}
