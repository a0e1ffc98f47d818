package consumer

import (
	"sync"
	"time"
)

// lanes keep the writes to one memory (tenant and coord) in stream order
// inside a worker. The pull loop tells the lanes of every write in delivery
// order (expect) before any starts, and only the lowest stream sequence a
// worker knows to be pending for a memory may be applied: a write that arrives while an
// earlier one is in flight, or while an earlier one is put back for a retry
// or for its tenant's breaker, is put back too, and every write put back is
// remembered until it returns, so whatever order they come back in, the
// earliest goes first.
//
// The order holds for the writes one worker sees. Across workers it needs
// every write of a memory to go to the same worker; see docs/TOPOLOGY.md.
type lanes struct {
	mu    sync.Mutex
	m     map[laneKey]*lane
	grace time.Duration // how long a put-back write is waited for past its due time
}

type laneKey struct{ tenant, coord string }

type lane struct {
	inFlight uint64               // stream sequence being applied, 0 if none
	pending  map[uint64]time.Time // writes put back, with when they are due
}

// minBehind is the least a write waits behind an earlier one: enough for
// the earlier one to arrive first.
const minBehind = 20 * time.Millisecond

func newLanes(grace time.Duration) *lanes { return &lanes{m: map[laneKey]*lane{}, grace: grace} }

// expect records that seq has been pulled and will enter soon, so that a
// later write to the same memory cannot start first.
func (l *lanes) expect(key laneKey, seq uint64, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ln := l.lane(key)
	l.putBack(ln, seq, now)
}

// enter claims the lane for seq, or returns behind > 0: the caller must put
// the write back for that long, because an earlier write to the memory is in
// flight or pending.
func (l *lanes) enter(key laneKey, seq uint64, now time.Time) (behind time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ln := l.lane(key)
	delete(ln.pending, seq)
	lastDue, earlier := time.Time{}, ln.inFlight != 0
	for s, due := range ln.pending {
		if now.After(due.Add(l.grace)) {
			delete(ln.pending, s) // never came back here: another worker has it
			continue
		}
		if s < seq {
			earlier = true
			lastDue = later(lastDue, due)
		}
	}
	if !earlier {
		ln.inFlight = seq
		return 0
	}
	// Come back once every earlier write is due; should one be late, the
	// check above simply puts this one back again.
	behind = max(lastDue.Sub(now), 0) + minBehind
	l.putBack(ln, seq, now.Add(behind))
	return behind
}

// leave releases the lane. retryIn > 0 says the write was put back and is
// due again after retryIn.
func (l *lanes) leave(key laneKey, seq uint64, retryIn time.Duration, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ln := l.m[key]
	if ln == nil {
		return
	}
	if ln.inFlight == seq {
		ln.inFlight = 0
	}
	if retryIn > 0 {
		l.putBack(ln, seq, now.Add(retryIn))
	} else {
		delete(ln.pending, seq)
	}
	if ln.inFlight == 0 && len(ln.pending) == 0 {
		delete(l.m, key)
	}
}

// lane returns key's lane, creating it; l.mu is held.
func (l *lanes) lane(key laneKey) *lane {
	ln := l.m[key]
	if ln == nil {
		ln = &lane{}
		l.m[key] = ln
	}
	return ln
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func (l *lanes) putBack(ln *lane, seq uint64, due time.Time) {
	if ln.pending == nil {
		ln.pending = map[uint64]time.Time{}
	}
	ln.pending[seq] = due
}

// sweep forgets writes that never came back, and empty lanes.
func (l *lanes) sweep(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, ln := range l.m {
		for s, due := range ln.pending {
			if now.After(due.Add(l.grace)) {
				delete(ln.pending, s)
			}
		}
		if ln.inFlight == 0 && len(ln.pending) == 0 {
			delete(l.m, k)
		}
	}
}
